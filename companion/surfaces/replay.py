"""Re-derive every flag from the stored events and compare with what was sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from companion import policy
from companion.service.ingest import state
from companion.store.core import Store


@dataclass(frozen=True)
class Difference:
    mpxn: str
    sent: tuple[Any, ...]  # ingest.state(): (flag, effective_from, deciding event, reason, override) as last sent
    derived: tuple[Any, ...]
    reason: str


def replay(store: Store) -> tuple[int, list[Difference]]:
    diffs = []
    mpxns = store.mpxns()
    for mpxn in mpxns:
        derived = policy.derive(mpxn, [e for _, _, e in store.events_for(mpxn)])
        sent = store.flag(mpxn)
        a = state(sent) if sent else (None, None, None, None, None)
        b = state(derived) if derived.flag is not None or sent is not None else a
        if a != b:
            diffs.append(Difference(mpxn, a, b, derived.reason))
    return len(mpxns), diffs
