"""The outputs of the flag outbox: DTC flow files, exactly once per change.

Each change (an outbox row: meter point and version) is assigned to one DTC file in a
transaction *before* the file is written; the file's content is a function of the rows
assigned to it. So a bridge killed at any point either re-writes the same file on restart
(the rename is atomic, the content identical) or had not yet assigned the rows: a change
never lands in two files, and never in none.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from companion import dtc

from companion import policy
from companion.config import Config
from companion.store.core import Store


class DtcWriter:
    MAX_BACKOFF = 60.0  # s between retries while the folder cannot be written

    def __init__(self, store: Store, config: Config):
        self.store = store
        self.config = config
        self.out = Path(config.out)
        self._backoff = 0.0
        self._retry_at = 0.0  # time.monotonic() before which tick() does not try again
        self.error: str | None = None  # the last failure, while failing (for /readyz)

    def recover(self) -> list[Path]:
        """Write the files that were assigned but not yet written (a crash in between)."""
        return [p for p in (self._write(f) for f in self.store.dtc_pending_files()) if p is not None]

    def tick(self, now: float | None = None, force: bool = False) -> list[Path]:
        """Write the files assigned but not yet written (a failed write, a crash), then close
        the batches that are big enough or old enough (all of them with force). A write that
        fails (folder gone, disk full) raises; the next ticks retry it with a backoff doubling
        to MAX_BACKOFF, and no new file is assigned until the pending ones are written. A
        store that fails (while assigning) is retried the same way: every failure backs off,
        so that a lasting one is logged once a backoff, never once a second."""
        mono = time.monotonic()
        if mono < self._retry_at and not force:
            return []
        now = time.time() if now is None else now
        written: list[Path] = []
        try:
            written += self.recover()
            for flow in dtc.FLOWS.values():
                while True:
                    file_id = self._assign(flow, now, force)
                    if file_id is None:
                        break
                    path = self._write(file_id)
                    if path is not None:
                        written.append(path)
        except Exception as exc:
            self._backoff = min(max(self._backoff * 2, 1.0), self.MAX_BACKOFF)
            self._retry_at = mono + self._backoff
            self.error = f"{type(exc).__name__}: {str(exc)[:160]}"
            raise
        self._backoff, self._retry_at, self.error = 0.0, 0.0, None
        return written

    def oldest_pending(self, now: float | None = None) -> float:
        """Seconds since the oldest change not yet in a written file was made (0: none): the
        age /readyz and flagwise_dtc_oldest_pending_seconds report."""
        oldest = self.store.dtc_oldest_unwritten()
        return 0.0 if oldest is None else max(0.0, (time.time() if now is None else now) - oldest)

    def pending_files(self) -> int:
        return len(self.store.dtc_pending_files())

    def _assign(self, flow: dtc.Flow, now: float, force: bool) -> str | None:
        cfg = self.config
        with self.store.tx() as db:
            if not self.store.db.try_lock(db, "dtc"):
                return None  # another replica is assigning: it takes these rows
            rows = self.store.dtc_unassigned(db, flow.name, cfg.dtc_batch_size)
            if not rows:
                return None
            full = len(rows) >= cfg.dtc_batch_size
            old = now - rows[0][1] >= cfg.dtc_batch_age
            if not (full or old or force):
                return None
            n = self.store.next_sequence(db, "dtc_file")
            file_id = f"FW{n:08d}"
            created = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d%H%M%S")
            name = f"{flow.flow_version}_{file_id}.dtc"
            self.store.dtc_assign(db, file_id, flow.name, created, name, [r[0] for r in rows])
        return file_id

    def _write(self, file_id: str) -> Path | None:
        # Written while holding the file's row, so that two replicas never both write it (their
        # folders may differ); None when another replica has it or has written it.
        if self.store.db.kind == "postgres":
            with self.store.tx() as db:
                if not self.store.dtc_claim(db, file_id):
                    return None
                path = self._render(db, file_id)
                self.store.dtc_written(db, file_id)
            return path
        path = self._render(self.store.conn(), file_id)
        with self.store.tx() as db:
            self.store.dtc_written(db, file_id)
        return path

    def _render(self, c: Any, file_id: str) -> Path:
        flow_name, created, name, bodies = self.store.dtc_file(c, file_id)
        changes = [json.loads(b) for b in bodies]
        if self.config.legacy_flags:
            for ch in changes:
                ch["flag"] = policy.legacy(ch["flag"], self.config.legacy_mapping)
        text = dtc.render(
            dtc.FLOWS[flow_name], file_id, datetime.strptime(created, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc),
            changes, from_participant=self.config.dtc_from_participant,
            to_participant=self.config.dtc_electricity_to if flow_name == "electricity" else self.config.dtc_gas_to,
            test_flag=self.config.dtc_test_flag)
        return dtc.write_atomically(self.out, name, text)
