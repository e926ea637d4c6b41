"""DUIS messages in (docs/duis.md): from files and folders (`companion duis import`) and live from
the DCC adaptor (`<prefix>/duis/in`). Each message is read and verified (companion/wire/duis.py)
and stored once by its digest; a refused one is kept aside with its reason and never stops the
rest. Flags of the meter points a stored message names are derived again (both sources)."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from companion.store.smi import HEAD, Inventory
from companion.wire.duis import MAX_BYTES, DccCert, DuisError, DuisMessage, read


@dataclass
class ImportSummary:
    stored: int = 0
    already: int = 0  # stored before: the same bytes again are a no-op
    refused: Counter[str] = field(default_factory=Counter)
    refusals: list[tuple[str, str, str]] = field(default_factory=list)  # (source, reason, detail)
    devices: int = 0
    mpxns: set[str] = field(default_factory=set)

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


class DuisIntake:
    """One message at a time, whatever its source (`take`), or many in a batch (`check` each,
    then `commit`: one transaction for the lot, as a file import does). `changed(mpxns)` is told
    the meter points newly stored messages name (the bridge derives their flags again)."""

    def __init__(self, inventory: Inventory, certs: list[DccCert],
                 changed: Callable[[set[str]], None] | None = None):
        self.inventory = inventory
        self.certs = certs
        self.changed = changed
        self._ok: list[tuple[DuisMessage, bytes, str]] = []
        self._refused: list[tuple[str, str, str, str, bytes, int]] = []

    def take(self, raw: bytes, source: str, summary: ImportSummary, size: int | None = None,
             now: float | None = None) -> DuisMessage | None:
        msg = self.check(raw, source, summary, size, now)
        stored = self.commit(summary)
        return msg if msg is not None and stored else None

    def check(self, raw: bytes, source: str, summary: ImportSummary, size: int | None = None,
              now: float | None = None) -> DuisMessage | None:
        """Read and verify one message; held for `commit` (stored or refused there)."""
        size = len(raw) if size is None else size
        digest = hashlib.sha256(raw).hexdigest()
        try:
            if size > MAX_BYTES:
                raise DuisError("too_large", f"{size} bytes, more than the {MAX_BYTES} a DUIS message may have")
            if self.inventory.has(digest):
                summary.already += 1
                return None
            msg = read(raw, self.certs, time.time() if now is None else now)
        except DuisError as exc:
            summary.refused[exc.reason] += 1
            summary.refusals.append((source, exc.reason, str(exc)))
            self._refused.append((digest, source, exc.reason, str(exc), raw, size))
            return None
        self._ok.append((msg, raw, source))
        return msg

    def commit(self, summary: ImportSummary) -> int:
        """Store what `check` held, in one transaction each for the stored and the refused;
        -> how many were newly stored."""
        ok, self._ok = self._ok, []
        refused, self._refused = self._refused, []
        if refused:
            self.inventory.refuse_many(refused)
        if not ok:
            return 0
        names: set[str] = set()
        new = 0
        for (msg, _, _), stored in zip(ok, self.inventory.add_many(ok)):
            if not stored:
                summary.already += 1
                continue
            new += 1
            summary.stored += 1
            summary.devices += len(msg.devices)
            names |= {m for d in msg.devices for m in d.mpxns}
        summary.mpxns |= names
        if names and self.changed is not None:
            self.changed(names)
        return new


def files(paths: list[str]) -> tuple[list[Path], list[str]]:
    """The files named, folders walked (sorted; hidden files skipped); -> (files, paths not found)."""
    out: list[Path] = []
    missing: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(f for f in path.rglob("*") if f.is_file() and not f.name.startswith(".")))
        elif path.is_file():
            out.append(path)
        else:
            missing.append(p)
    return out, missing


def import_files(intake: DuisIntake, paths: list[Path], summary: ImportSummary, batch: int = 200) -> None:
    """Each file read (bounded), checked, and stored with `batch` others in one transaction."""
    for i, f in enumerate(paths, 1):
        if i % batch == 0:
            intake.commit(summary)
        try:
            size = f.stat().st_size
            with f.open("rb") as fh:
                raw = fh.read(MAX_BYTES + 1 if size <= MAX_BYTES else HEAD)  # a huge file is never read whole
        except OSError as exc:
            summary.refused["unreadable"] += 1
            summary.refusals.append((str(f), "unreadable", str(exc)[:200]))
            continue
        intake.check(raw, str(f), summary, size=max(size, len(raw)))
    intake.commit(summary)
