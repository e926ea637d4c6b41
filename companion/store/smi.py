"""The DCC's side in the store (schema v6): each DUIS message as received (verbatim, so it can
be verified again), the refused ones with their reason, and the Smart Metering Inventory per
device with its history (one row per device a message states), indexed by meter point.

The drafted service requests' counter (`RequestID` = user EUI : recipient EUI : counter, never
reused) is a store sequence, `duis_request`."""

from __future__ import annotations

import json
import time
from typing import Any

from companion.sources import SmiFact
from companion.store.core import Store
from companion.wire.duis import DuisMessage, SmiDevice

HEAD = 65536  # bytes of a refused message kept beside its reason (a 100 MB file is not kept whole)


class Inventory:
    def __init__(self, store: Store):
        self.store = store

    def outcome(self, digest: str) -> str | None:
        """"stored", "refused <reason>" (the latest refusal), or None: not seen."""
        if self.has(digest):
            return "stored"
        r = self.store.conn().execute("SELECT reason FROM duis_refused WHERE digest=? ORDER BY id DESC LIMIT 1",
                                      (digest,)).fetchone()
        return f"refused {r[0]}" if r else None

    def has(self, digest: str) -> bool:
        return self.store.conn().execute("SELECT 1 FROM duis_messages WHERE digest=?", (digest,)).fetchone() is not None

    def add(self, msg: DuisMessage, raw: bytes, source: str) -> bool:
        """Store one verified message and what it states; False when it was stored before."""
        return self.add_many([(msg, raw, source)])[0]

    def add_many(self, items: list[tuple[DuisMessage, bytes, str]]) -> list[bool]:
        """Store verified messages in one transaction; for each, False when it was stored before
        (by an earlier import, or earlier in this batch)."""
        with self.store.tx() as db:
            return [self._add(db, msg, raw, source) for msg, raw, source in items]

    def _add(self, db: Any, msg: DuisMessage, raw: bytes, source: str) -> bool:
        if db.execute("SELECT 1 FROM duis_messages WHERE digest=?", (msg.digest,)).fetchone():
            return False
        db.execute("INSERT INTO duis_messages (digest, kind, service, change, response_id, request_id, "
                   "response_code, at, signer, source, received_at, message) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                   (msg.digest, msg.kind, msg.service, msg.change, msg.response_id, msg.request_id,
                    msg.response_code, msg.at, msg.signer, source[:300], time.time(), raw))
        seq = int(db.execute("SELECT seq FROM duis_messages WHERE digest=?", (msg.digest,)).fetchone()[0])
        for d in msg.devices:
            self._add_device(db, d, seq)
        return True

    def _add_device(self, db: Any, d: SmiDevice, seq: int) -> None:
        db.execute("INSERT INTO smi_status (device_id, message_seq, device_type, status, since, at, mpxns, chf, "
                   "manufacturer, model) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                   (d.device_id, seq, d.device_type, d.status, d.since, d.at, json.dumps(list(d.mpxns)), d.chf,
                    d.manufacturer, d.model))
        for m in d.mpxns:
            db.execute("INSERT INTO smi_mpxns (mpxn, device_id) VALUES (?, ?) ON CONFLICT DO NOTHING", (m, d.device_id))
        if d.chf:
            # A hub's place is its meters': the CHF serves the meter points of the devices it carries.
            for m in d.mpxns:
                db.execute("INSERT INTO smi_mpxns (mpxn, device_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                           (m, d.chf))

    def refuse(self, digest: str, source: str, reason: str, detail: str, raw: bytes, size: int) -> None:
        self.refuse_many([(digest, source, reason, detail, raw, size)])

    REFUSALS_KEPT = 1000  # the latest refusals kept (at most 64 KiB each), whatever a flood does

    def refuse_many(self, items: list[tuple[str, str, str, str, bytes, int]]) -> None:
        """Refusals, each with its reason, the first HEAD bytes kept (one transaction); only the
        latest REFUSALS_KEPT are kept, as the handhelds' rejections (Store.record_rejection)."""
        with self.store.tx() as db:
            for digest, source, reason, detail, raw, size in items:
                db.execute("INSERT INTO duis_refused (digest, source, reason, detail, size, received_at, head) "
                           "VALUES (?,?,?,?,?,?,?)", (digest, source[:300], reason, detail[:500], size, time.time(),
                                                      raw[:HEAD]))
            if items:
                db.execute("DELETE FROM duis_refused WHERE id <= (SELECT max(id) FROM duis_refused) - ?",
                           (self.REFUSALS_KEPT,))

    # --- reading ------------------------------------------------------------------------------
    _ROW = ("SELECT s.device_id, s.device_type, s.status, s.since, s.at, s.mpxns, s.chf, m.response_id, "
            "s.message_seq FROM smi_status s JOIN duis_messages m ON m.seq = s.message_seq ")

    @staticmethod
    def _row(r: Any) -> SmiFact:
        """A statement as the flag policy reads it (companion/sources.py); its message is named by
        its ResponseID, or by its place in the store (#seq)."""
        return SmiFact(r[0], r[1], r[2], int(r[3]), int(r[4]), tuple(json.loads(r[5])), r[6],
                       r[7] or f"#{r[8]}", int(r[8]))

    def history(self, device_id: str) -> list[SmiFact]:
        """Every statement about one device, oldest first (by the time each applied)."""
        rows = self.store.conn().execute(self._ROW + "WHERE s.device_id=? ORDER BY s.since, s.at, s.message_seq",
                                         (device_id,)).fetchall()
        return [self._row(r) for r in rows]

    def for_mpxn(self, mpxn: str, db: Any | None = None) -> list[SmiFact]:
        """Every statement about every device the DCC has tied to this meter point (and their hubs)."""
        rows = (db or self.store.conn()).execute(
            self._ROW + "WHERE s.device_id IN (SELECT device_id FROM smi_mpxns WHERE mpxn=?) "
            "ORDER BY s.since, s.at, s.message_seq", (mpxn,)).fetchall()
        return [self._row(r) for r in rows]

    def known_mpxns(self, mpxns: list[str], db: Any | None = None) -> set[str]:
        """Which of these meter points the DCC's inventory has spoken of (one query)."""
        wanted = sorted(set(mpxns))
        if not wanted:
            return set()
        marks = ",".join("?" * len(wanted))
        return {r[0] for r in (db or self.store.conn()).execute(
            f"SELECT DISTINCT mpxn FROM smi_mpxns WHERE mpxn IN ({marks})", wanted).fetchall()}

    def for_devices(self, device_ids: list[str], db: Any | None = None) -> list[SmiFact]:
        """Every statement about these devices, wherever the DCC places them."""
        wanted = sorted({d.upper() for d in device_ids})
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        rows = (db or self.store.conn()).execute(
            self._ROW + f"WHERE s.device_id IN ({marks}) ORDER BY s.since, s.at, s.message_seq", wanted).fetchall()
        return [self._row(r) for r in rows]

    def all_devices(self) -> list[str]:
        """Every device either source knows: listed by a survey, or named by the DCC's inventory."""
        return [r[0] for r in self.store.conn().execute(
            "SELECT eui FROM event_devices UNION SELECT device_id FROM smi_status ORDER BY 1")]

    def mpxns(self) -> list[str]:
        return [r[0] for r in self.store.conn().execute("SELECT DISTINCT mpxn FROM smi_mpxns ORDER BY mpxn")]

    def devices(self) -> list[str]:
        return [r[0] for r in self.store.conn().execute("SELECT DISTINCT device_id FROM smi_status ORDER BY 1")]

    def message(self, seq: int) -> tuple[str, bytes] | None:
        r = self.store.conn().execute("SELECT source, message FROM duis_messages WHERE seq=?", (seq,)).fetchone()
        return (r[0], bytes(r[1])) if r else None

    def counts(self) -> dict[str, int]:
        c = self.store.conn()
        out = {f"messages_{k}": int(n) for k, n in c.execute("SELECT kind, count(*) FROM duis_messages GROUP BY kind")}
        out["refused"] = int(c.execute("SELECT count(*) FROM duis_refused").fetchone()[0])
        out["devices"] = int(c.execute("SELECT count(DISTINCT device_id) FROM smi_status").fetchone()[0])
        return out

    def refusals(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.store.conn().execute("SELECT source, reason, detail, size, received_at FROM duis_refused "
                                         "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(source=r[0], reason=r[1], detail=r[2], size=int(r[3]), received_at=float(r[4])) for r in rows]

    def next_request_counter(self) -> int:
        with self.store.tx() as db:
            return self.store.next_sequence(db, "duis_request")
