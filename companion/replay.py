"""Re-derive every flag from the stored events and compare with what was sent."""

from __future__ import annotations

from dataclasses import dataclass

from . import policy
from .store import Store


@dataclass(frozen=True)
class Difference:
    mpxn: str
    sent: tuple[str | None, str | None]  # (flag, effective_from) as last sent
    derived: tuple[str | None, str | None]
    reason: str


def replay(store: Store) -> tuple[int, list[Difference]]:
    diffs = []
    mpxns = store.mpxns()
    for mpxn in mpxns:
        derived = policy.derive(mpxn, [e for _, _, e in store.events_for(mpxn)])
        sent = store.flag(mpxn)
        a = (sent.flag, sent.effective_from) if sent else (None, None)
        b = (derived.flag, derived.effective_from)
        if a != b:
            diffs.append(Difference(mpxn, a, b, derived.reason))
    return len(mpxns), diffs
