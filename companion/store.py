"""The bridge's store, on SQLite (WAL, synchronous=FULL: a commit is durable) or PostgreSQL,
chosen by URL (companion/db.py, which also holds the schema and its migrations).

Tables: the device key registry, events (the signed message as received, once per event
id), the meter points each event names, the current flag per meter point, the flag
outbox (written in the same transaction as the event that changed the flag) and the DTC
files made from it. One connection per thread.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .db import Database
from .errors import CompanionError
from .event import Event, parse_payload
from .ids import eui64_bytes, eui64_text
from .wire import load_public_key, parse_sign1

class RegistryError(CompanionError):
    reason = "key_registry"


@dataclass(frozen=True)
class DeviceKey:
    device_id: str
    public_key: bytes
    added_at: float
    revoked_at: float | None
    hard: bool

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class StoredFlag:
    mpxn: str
    flag: str | None
    effective_from: str | None
    reason: str
    event_id: str | None
    event_ids: tuple[str, ...]
    override: str | None
    version: int
    updated_at: float
    code: str = "none"
    last_key: str | None = None  # policy.order_text of its latest event (None: derive it all next time)
    event_count: int | None = None  # events behind it (event_ids holds the latest MAX_FLAG_EVENT_IDS)


class Store:
    """upgrade: apply the schema's pending migrations on opening (a new store is made);
    otherwise a store behind this companion's schema is refused (db.StoreError)."""

    def __init__(self, url: str | Path, upgrade: bool = True):
        self.db = Database(url)
        self.path = self.db.url
        if upgrade:
            self.db.upgrade()
        else:
            self.db.check()

    def conn(self) -> Any:
        return self.db.conn()

    def tx(self) -> Any:
        return self.db.tx()

    def close(self) -> None:
        self.db.close()

    # --- key registry ----------------------------------------------------------------
    def add_key(self, device_id: str, public_key: bytes) -> None:
        device_id = _device(device_id)
        load_public_key(public_key)  # a valid P-256 point, or ValueError
        with self.tx() as db:
            row = db.execute("SELECT public_key, revoked_at FROM keys WHERE device_id=?", (device_id,)).fetchone()
            if row and (bytes(row[0]) != public_key or row[1] is not None):
                raise RegistryError(f"{device_id} already has a key (revoked or different); a device id is not reused")
            db.execute("INSERT INTO keys (device_id, public_key, added_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                       (device_id, public_key, time.time()))

    def revoke_key(self, device_id: str, at: float | None = None, hard: bool = False) -> None:
        device_id = _device(device_id)
        with self.tx() as db:
            cur = db.execute("UPDATE keys SET revoked_at=?, hard=? WHERE device_id=?",
                             (time.time() if at is None else at, int(hard), device_id))
            if cur.rowcount == 0:
                raise RegistryError(f"no key registered for {device_id}")

    def key(self, device_id: str) -> DeviceKey | None:
        row = self.conn().execute(
            "SELECT device_id, public_key, added_at, revoked_at, hard FROM keys WHERE device_id=?",
            (device_id,)).fetchone()
        return None if row is None else DeviceKey(row[0], bytes(row[1]), row[2], row[3], bool(row[4]))

    def keys(self) -> list[DeviceKey]:
        rows = self.conn().execute(
            "SELECT device_id, public_key, added_at, revoked_at, hard FROM keys ORDER BY device_id").fetchall()
        return [DeviceKey(r[0], bytes(r[1]), r[2], r[3], bool(r[4])) for r in rows]

    # --- events ----------------------------------------------------------------------
    @staticmethod
    def insert_event(db: Any, device_id: str, ev: Event, message: bytes,
                     received_at: float) -> str:
        """'stored', 'duplicate' (same bytes again) or 'conflict' (same id, other bytes)."""
        # RETURNING, not rowcount: a result read is one the PostgreSQL pipeline waits for.
        inserted = db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING event_id",
            (ev.id, device_id, ev.counter, ev.type, ev.time, ev.evidence.read_time, received_at, message)).fetchone()
        if inserted is None:
            row = db.execute("SELECT message FROM events WHERE event_id=?", (ev.id,)).fetchone()
            return "duplicate" if bytes(row[0]) == message else "conflict"
        db.executemany("INSERT INTO event_mpxns VALUES (?, ?) ON CONFLICT DO NOTHING", [(m, ev.id) for m in ev.mpxns])
        return "stored"

    @staticmethod
    def check_counter(db: Any, device_id: str, ev: Event, now: float) -> list[str]:
        """A device's counter never repeats and rises with its clock. An event that breaks
        this is kept (it is evidence) and recorded: `counter_reused` (the same counter under
        another event id) or `counter_backwards` (a lower counter on a later event, or a
        higher one on an earlier: a handheld restored from an old flash image)."""
        found = []
        rows = db.execute(  # one round trip for both checks
            "SELECT * FROM (SELECT 0, event_id, counter, device_time FROM events WHERE device_id=? AND counter=? "
            "AND event_id<>? LIMIT 1) AS reused UNION ALL "
            "SELECT * FROM (SELECT 1, event_id, counter, device_time FROM events WHERE device_id=? AND event_id<>? "
            "AND ((counter > ? AND device_time < ?) OR (counter < ? AND device_time > ?)) LIMIT 1) AS backwards",
            (device_id, ev.counter, ev.id, device_id, ev.id, ev.counter, ev.time, ev.counter, ev.time)).fetchall()
        for kind_, eid, counter, device_time in sorted(rows):
            if kind_ == 0:
                found.append(("counter_reused", f"counter {ev.counter} also on event {bytes(eid).hex()}"))
            else:
                found.append(("counter_backwards", f"counter {ev.counter} at {ev.time}, but event "
                                                   f"{bytes(eid).hex()} has counter {counter} at {device_time}"))
        for kind, detail in found:
            Store.record_suspicious(db, ev.id, device_id, kind, detail, now)
        return [k for k, _ in found]

    @staticmethod
    def record_suspicious(db: Any, event_id: bytes, device_id: str, kind: str, detail: str,
                          now: float) -> None:
        db.execute("INSERT INTO suspicious VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                   (event_id, device_id, kind, detail, now))

    def suspicious(self, device_ids: list[str] | None = None) -> list[dict[str, Any]]:
        sql = "SELECT device_id, kind, detail, event_id, at FROM suspicious"
        args: tuple[Any, ...] = ()
        if device_ids is not None:
            if not device_ids:
                return []
            sql += f" WHERE device_id IN ({','.join('?' * len(device_ids))})"
            args = tuple(device_ids)
        return [{"device_id": r[0], "kind": r[1], "detail": r[2], "event_id": bytes(r[3]).hex(), "at": r[4]}
                for r in self.conn().execute(sql + " ORDER BY at", args)]

    def suspicious_devices(self) -> int:
        return int(self.conn().execute("SELECT count(DISTINCT device_id) FROM suspicious").fetchone()[0])

    def events_for(self, mpxn: str, db: Any | None = None,
                   known: dict[bytes, Event] | None = None) -> list[tuple[str, float, Event]]:
        """(device id, received at, event) for every stored event naming mpxn; `known` holds
        events already parsed (this batch's), which are not decoded again."""
        known = known or {}
        rows = (db or self.conn()).execute(
            "SELECT e.event_id, e.device_id, e.received_at, e.message FROM event_mpxns m "
            "JOIN events e USING (event_id) WHERE m.mpxn=?", (mpxn,)).fetchall()
        return [(r[1], r[2], known.get(bytes(r[0])) or parse_payload(parse_sign1(bytes(r[3]), 1 << 20).payload))
                for r in rows]

    def mpxns(self) -> list[str]:
        return [r[0] for r in self.conn().execute("SELECT DISTINCT mpxn FROM event_mpxns ORDER BY mpxn")]

    def event_count(self) -> int:
        return int(self.conn().execute("SELECT count(*) FROM events").fetchone()[0])

    # --- flags -----------------------------------------------------------------------
    def flag(self, mpxn: str, db: Any | None = None) -> StoredFlag | None:
        row = (db or self.conn()).execute(
            "SELECT mpxn, flag, effective_from, reason, event_id, event_ids, override, version, updated_at, code, "
            "last_key, event_count FROM flags WHERE mpxn=?", (mpxn,)).fetchone()
        if row is None:
            return None
        return StoredFlag(row[0], row[1], row[2], row[3], row[4], tuple(json.loads(row[5])), row[6], row[7], row[8],
                          row[9], row[10], row[11])

    # --- replicas: one running bridge per MQTT client id ------------------------------------
    REPLICA_STALE = 15.0  # s without a heartbeat after which a replica's client id is free again

    def claim_replica(self, client_id: str, instance: str, host: str, pid: int, now: float) -> None:
        """Register this bridge as the one running with client_id, or raise StoreError naming the
        replica that already runs with it (its heartbeat is fresh, and it is not a dead process
        of this host: a restart after a crash takes its id back at once)."""
        import os

        from .db import StoreError
        from .times import iso

        with self.tx() as db:
            self.db.lock(db, "replicas")
            row = db.execute("SELECT instance, host, pid, heartbeat_at FROM replicas WHERE client_id=?",
                             (client_id,)).fetchone()
            if row is not None and row[0] != instance and now - row[3] < self.REPLICA_STALE:
                alive = True
                if row[1] == host:
                    try:
                        os.kill(int(row[2]), 0)
                    except ProcessLookupError:
                        alive = False
                    except PermissionError:
                        pass
                if alive:
                    raise StoreError(
                        f"the MQTT client id {client_id!r} is in use by a running bridge on {row[1]} (pid {row[2]}, "
                        f"last seen {iso(row[3])}): each replica needs its own client id (--client-id or "
                        "FLAGWISE_CLIENT_ID; docs/operations.md). Two bridges with one id take the broker "
                        "session from each other every second.")
            db.execute("INSERT INTO replicas VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET "
                       "instance=excluded.instance, host=excluded.host, pid=excluded.pid, "
                       "started_at=excluded.started_at, heartbeat_at=excluded.heartbeat_at",
                       (client_id, instance, host, pid, now, now))

    def heartbeat_replica(self, client_id: str, instance: str, now: float) -> bool:
        """False when another bridge has taken the client id (ours had gone stale)."""
        with self.tx() as db:
            n: int = db.execute("UPDATE replicas SET heartbeat_at=? WHERE client_id=? AND instance=?",
                                (now, client_id, instance)).rowcount
            return n == 1

    def release_replica(self, client_id: str, instance: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM replicas WHERE client_id=? AND instance=?", (client_id, instance))

    def republish_flags(self) -> int:
        """Queue each meter point's current flag (its outbox row at the flag's version) for
        MQTT again; the bridge publishes it, retained. -> how many."""
        with self.tx() as db:
            return int(db.execute(
                "UPDATE outbox SET mqtt_done=0 WHERE mqtt_done=1 AND EXISTS (SELECT 1 FROM flags f "
                "WHERE f.mpxn = outbox.mpxn AND f.version = outbox.version AND f.version > 0)").rowcount)

    # --- outbox ----------------------------------------------------------------------
    def pending_mqtt(self, limit: int = 500, db: Any = None) -> list[tuple[int, str, str]]:
        rows: list[tuple[int, str, str]] = (db or self.conn()).execute(
            "SELECT seq, mpxn, body FROM outbox WHERE mqtt_done=0 ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return rows

    def mark_mqtt_done(self, seqs: list[int], db: Any = None) -> None:
        if db is not None:
            db.executemany("UPDATE outbox SET mqtt_done=1 WHERE seq=?", [(s,) for s in seqs])
            return
        with self.tx() as db:
            db.executemany("UPDATE outbox SET mqtt_done=1 WHERE seq=?", [(s,) for s in seqs])

    def outbox_depth(self) -> tuple[int, int, int]:
        """(changes not yet published on MQTT, changes not yet in a written DTC file, DTC files
        assigned but not yet written)."""
        c = self.conn()
        return (c.execute("SELECT count(*) FROM outbox WHERE mqtt_done=0").fetchone()[0],
                c.execute("SELECT count(*) FROM outbox o LEFT JOIN dtc_files f ON o.dtc_file = f.file_id "
                          "WHERE o.dtc_file IS NULL OR f.state = 'pending'").fetchone()[0],
                c.execute("SELECT count(*) FROM dtc_files WHERE state='pending'").fetchone()[0])

    def next_sequence(self, db: Any, name: str) -> int:
        db.execute("INSERT INTO sequences VALUES (?, 0) ON CONFLICT DO NOTHING", (name,))
        db.execute("UPDATE sequences SET value = value + 1 WHERE name=?", (name,))
        return int(db.execute("SELECT value FROM sequences WHERE name=?", (name,)).fetchone()[0])

    REJECTIONS_KEPT = 10000  # detailed rows; older ones live on only in rejection_counts

    def record_rejection(self, device_id: str | None, reason: str, detail: str, size: int,
                         received_at: float, db: Any | None = None) -> None:
        """Bounded whatever a flood of bad messages does: a count per (device, reason), and
        the details of the latest REJECTIONS_KEPT rejections."""
        c = db or self.conn()
        c.execute("INSERT INTO rejection_counts VALUES (?, ?, 1, ?, ?) ON CONFLICT (device_id, reason) "
                  "DO UPDATE SET count = rejection_counts.count + 1, last_at = excluded.last_at",
                  (device_id or "unknown", reason, received_at, received_at))
        row_id = c.execute(
            "INSERT INTO rejections (device_id, reason, detail, size, received_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
            (device_id, reason, detail[:500], size, received_at)).fetchone()[0]
        if row_id % 100 == 0:
            c.execute("DELETE FROM rejections WHERE id <= ?", (row_id - self.REJECTIONS_KEPT,))

    def rejection_counts(self) -> list[tuple[str, str, int]]:
        return [tuple(r) for r in self.conn().execute(
            "SELECT device_id, reason, count FROM rejection_counts ORDER BY device_id, reason")]

    # --- read API tokens (stored as SHA-256; the token itself is shown once) -----------------
    def add_token(self, name: str) -> str:
        import hashlib
        import secrets

        if not name or len(name) > 64:
            raise RegistryError("a token name is 1-64 characters")
        token = "fw_" + secrets.token_urlsafe(32)
        with self.tx() as db:
            if db.execute("SELECT 1 FROM api_tokens WHERE name=?", (name,)).fetchone():
                raise RegistryError(f"a token named {name} exists; revoke it or choose another name")
            db.execute("INSERT INTO api_tokens VALUES (?, ?, ?, NULL)",
                       (name, hashlib.sha256(token.encode()).digest(), time.time()))
        return token

    def revoke_token(self, name: str) -> None:
        with self.tx() as db:
            if db.execute("UPDATE api_tokens SET revoked_at=? WHERE name=? AND revoked_at IS NULL",
                          (time.time(), name)).rowcount == 0:
                raise RegistryError(f"no live token named {name}")

    def tokens(self) -> list[tuple[str, float, float | None]]:
        return [tuple(r) for r in self.conn().execute(
            "SELECT name, created_at, revoked_at FROM api_tokens ORDER BY name")]

    def token_name(self, token: str) -> str | None:
        """The name of a live token, or None."""
        import hashlib

        row = self.conn().execute("SELECT name FROM api_tokens WHERE token_hash=? AND revoked_at IS NULL",
                                  (hashlib.sha256(token.encode()).digest(),)).fetchone()
        return row[0] if row else None

    def ping(self) -> None:
        """Raises if the database cannot be read (for /healthz)."""
        self.conn().execute("SELECT count(*) FROM sequences").fetchone()


def _device(device_id: str) -> str:
    """Normalise a device id (EUI-64 text) or raise ValueError."""
    return eui64_text(eui64_bytes(device_id))
