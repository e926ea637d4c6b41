"""The bridge's store, on SQLite (WAL, synchronous=FULL: a commit is durable) or PostgreSQL,
chosen by URL (companion/store/db.py, which also holds the schema and its migrations).

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
from collections.abc import Iterable, MutableMapping
from typing import Any

from companion.store.db import Database
from companion.errors import CompanionError
from companion.wire.event import Event, parse_payload
from companion.ids import eui64_bytes, eui64_text
from companion.wire.cose import load_public_key, parse_sign1

def device_rows(device_id: str, event_id: bytes, ev: Event) -> list[tuple[str, str, bytes]]:
    """The event_devices rows of one event: each surveyed device, and the hub."""
    euis = {d.eui.upper() for d in ev.evidence.devices}
    if ev.evidence.hub is not None:
        euis.add(ev.evidence.hub.chf.upper())
    return [(e, device_id, event_id) for e in sorted(euis)]


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

    def keys_for(self, device_ids: Iterable[str], db: Any | None = None) -> dict[str, DeviceKey]:
        """The registered keys of these devices, in one query (a batch's)."""
        ids = sorted(set(device_ids))
        if not ids:
            return {}
        rows = (db or self.conn()).execute(
            "SELECT device_id, public_key, added_at, revoked_at, hard FROM keys WHERE device_id IN "
            f"({','.join('?' * len(ids))})", tuple(ids)).fetchall()
        return {r[0]: DeviceKey(r[0], bytes(r[1]), r[2], r[3], bool(r[4])) for r in rows}

    def keys(self) -> list[DeviceKey]:
        rows = self.conn().execute(
            "SELECT device_id, public_key, added_at, revoked_at, hard FROM keys ORDER BY device_id").fetchall()
        return [DeviceKey(r[0], bytes(r[1]), r[2], r[3], bool(r[4])) for r in rows]

    # --- events ----------------------------------------------------------------------
    @staticmethod
    def insert_events(db: Any, rows: list[tuple[str, Event, bytes, float]]) -> list[str]:
        """insert_event for a batch, (device id, event, signed message, received at) each, in
        one statement and one round trip: -> each row's 'stored', 'duplicate' or 'conflict',
        as if inserted one after the other (a repeat within the batch is judged against the
        first). An event is identified by its device and its id: another handheld's event
        with the same id is a different event, never a conflict."""
        if not rows:
            return []
        first: dict[tuple[str, bytes], int] = {}
        unique = []
        for i, (device_id, ev, message, received_at) in enumerate(rows):
            if (device_id, ev.id) not in first:
                first[device_id, ev.id] = i
                unique.append((ev.id, device_id, ev.counter, ev.type, ev.time, ev.evidence.read_time,
                               received_at, message))
        inserted = {(r[0], bytes(r[1])) for r in db.execute(
            "INSERT INTO events VALUES " + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(unique))
            + " ON CONFLICT DO NOTHING RETURNING device_id, event_id",
            tuple(v for row in unique for v in row)).fetchall()}
        old = [key for key in first if key not in inserted]
        stored_message = {key: rows[i][2] for key, i in first.items() if key in inserted}
        if old:
            stored_message.update(((r[0], bytes(r[1])), bytes(r[2])) for r in db.execute(
                f"WITH v (d, i) AS (VALUES {','.join(['(?, ?)'] * len(old))}) "
                "SELECT e.device_id, e.event_id, e.message FROM events e JOIN v ON e.device_id = v.d "
                "AND e.event_id = v.i", tuple(x for key in old for x in key)).fetchall())
        mpxn_rows = [(m, key[0], key[1]) for key, i in first.items() if key in inserted for m in rows[i][1].mpxns]
        if mpxn_rows:
            db.executemany("INSERT INTO event_mpxns VALUES (?, ?, ?) ON CONFLICT DO NOTHING", mpxn_rows)
        device_index = [r for key, i in first.items() if key in inserted
                        for r in device_rows(key[0], key[1], rows[i][1])]
        if device_index:
            db.executemany("INSERT INTO event_devices VALUES (?, ?, ?) ON CONFLICT DO NOTHING", device_index)
        out = []
        for i, (device_id, ev, message, _) in enumerate(rows):
            key = (device_id, ev.id)
            if first[key] == i and key in inserted:
                out.append("stored")
            else:
                out.append("duplicate" if stored_message.get(key) == message else "conflict")
        return out

    @staticmethod
    def counter_anomalies(db: Any, items: list[tuple[str, Event]]) -> list[dict[str, tuple[bytes, int, int]]]:
        """A device's counter never repeats and rises with its clock. For each (device id,
        event) of a batch, before the batch is stored, in one query: the stored event, if any,
        with the same counter (`counter_reused`), and one with a higher counter made earlier
        or a lower one made later (`counter_backwards`, a handheld restored from an old flash
        image). -> per item {kind: (event id, counter, device time)}. Ingestor.handle_batch
        adds what the batch's own earlier events show."""
        if not items:
            return []
        values = ",".join(["(?, ?, ?, ?, ?)"] * len(items))
        params = tuple(v for i, (d, ev) in enumerate(items) for v in (i, d, ev.counter, ev.id, ev.time))
        rows = db.execute(
            f"WITH v (i, d, c, id, t) AS (VALUES {values}) SELECT v.i, "
            "(SELECT e.event_id FROM events e WHERE e.device_id = v.d AND e.counter = v.c AND e.event_id <> v.id "
            "LIMIT 1), "
            # Backwards, as two probes that each read a short index range (a new event has
            # about the highest counter and the latest time): a higher counter made earlier
            # (on the counter index), or a later time with a lower counter (on the time index).
            # "+ 0" keeps the other column's index out of each probe: a planner without
            # statistics picked the time index for the first and read the device's history.
            "coalesce((SELECT e.event_id FROM events e WHERE e.device_id = v.d AND e.counter > v.c "
            "AND e.device_time + 0 < v.t AND e.event_id <> v.id LIMIT 1), "
            "(SELECT e.event_id FROM events e WHERE e.device_id = v.d AND e.device_time > v.t "
            "AND e.counter + 0 < v.c AND e.event_id <> v.id LIMIT 1)) "
            "FROM v", params).fetchall()
        found = {int(r[0]): {k: bytes(eid) for k, eid in (("counter_reused", r[1]), ("counter_backwards", r[2]))
                             if eid is not None} for r in rows}
        others = sorted({(items[i][0], eid) for i, f in found.items() for eid in f.values()})
        seen: dict[tuple[str, bytes], tuple[int, int]] = {}
        if others:
            seen = {(r[0], bytes(r[1])): (r[2], r[3]) for r in db.execute(
                f"WITH v (d, i) AS (VALUES {','.join(['(?, ?)'] * len(others))}) "
                "SELECT e.device_id, e.event_id, e.counter, e.device_time FROM events e "
                "JOIN v ON e.device_id = v.d AND e.event_id = v.i", tuple(x for o in others for x in o)).fetchall()}
        return [{k: (eid, *seen[items[i][0], eid]) for k, eid in found.get(i, {}).items()
                 if (items[i][0], eid) in seen} for i in range(len(items))]

    @staticmethod
    def record_counter_anomalies(db: Any, device_id: str, ev: Event, found: dict[str, tuple[bytes, int, int]],
                                 now: float) -> list[str]:
        """Keep what counter_anomalies found for a stored event (it is evidence, and kept):
        -> the kinds, reused first."""
        kinds = []
        for kind in ("counter_reused", "counter_backwards"):
            if kind not in found:
                continue
            eid, counter, device_time = found[kind]
            if kind == "counter_reused":
                detail = f"counter {ev.counter} also on event {eid.hex()}"
            else:
                detail = (f"counter {ev.counter} at {ev.time}, but event {eid.hex()} has counter {counter} "
                          f"at {device_time}")
            Store.record_suspicious(db, ev.id, device_id, kind, detail, now)
            kinds.append(kind)
        return kinds

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
                   known: dict[tuple[str, bytes], Event] | None = None) -> list[tuple[str, float, Event]]:
        """(device id, received at, event) for every stored event naming mpxn; `known` holds
        events already parsed (this batch's, by device id and event id), not decoded again."""
        known = known or {}
        rows = (db or self.conn()).execute(
            "SELECT e.event_id, e.device_id, e.received_at, e.message FROM event_mpxns m "
            "JOIN events e ON e.device_id = m.device_id AND e.event_id = m.event_id WHERE m.mpxn=?",
            (mpxn,)).fetchall()
        return [(r[1], r[2], known.get((r[1], bytes(r[0]))) or _event(r[3])) for r in rows]

    def events_for_many(self, mpxns: list[str], known: MutableMapping[tuple[str, bytes], Event]
                        ) -> dict[str, list[Event]]:
        """Every stored event naming each of these meter points (a query per 500 of them); an
        event already in `known` (by device id and event id) is not decoded again, and each one
        decoded is put there."""
        return self._events_by("event_mpxns", "mpxn", mpxns, known)

    def events_for_devices(self, euis: list[str], known: MutableMapping[tuple[str, bytes], Event]
                           ) -> dict[str, list[Event]]:
        """events_for_device for many devices (upper-case EUI-64 text), a query per 500 of them;
        `known` as for events_for_many."""
        return self._events_by("event_devices", "eui", euis, known)

    def _events_by(self, index: str, column: str, keys: list[str],
                   known: MutableMapping[tuple[str, bytes], Event]) -> dict[str, list[Event]]:
        """The stored events an index (event_mpxns by mpxn, event_devices by eui) lists under
        each key."""
        out: dict[str, list[Event]] = {k: [] for k in keys}
        wanted = sorted(out)
        for i in range(0, len(wanted), 500):
            part = wanted[i:i + 500]
            rows = self.conn().execute(
                f"SELECT x.{column}, e.device_id, e.event_id, e.message FROM {index} x JOIN events e "
                "ON e.device_id = x.device_id AND e.event_id = x.event_id "
                f"WHERE x.{column} IN ({','.join('?' * len(part))})", part).fetchall()
            for key, device_id, eid, message in rows:
                out[key].append(_known(known, device_id, bytes(eid), message))
        return out

    def events_for_device(self, eui: str, db: Any | None = None,
                          known: MutableMapping[tuple[str, bytes], Event] | None = None
                          ) -> list[tuple[str, float, Event]]:
        """(device id, received at, event) for every stored event whose survey lists the device
        (or has it as the hub); `known` as for events_for_many."""
        rows = (db or self.conn()).execute(
            "SELECT e.device_id, e.received_at, e.event_id, e.message FROM event_devices x "
            "JOIN events e ON e.device_id = x.device_id AND e.event_id = x.event_id WHERE x.eui=?",
            (eui.upper(),)).fetchall()
        if known is None:
            return [(r[0], r[1], _event(r[3])) for r in rows]
        return [(r[0], r[1], _known(known, r[0], bytes(r[2]), r[3])) for r in rows]

    def events_page(self, mpxn: str, limit: int, after: tuple[int, int, int, str, bytes] | None = None
                    ) -> tuple[list[tuple[str, float, Event, tuple[int, int, int, str, bytes]]], bool]:
        """One page of a meter point's events in stored order (survey time, device time,
        counter, device, id), after the key `after`: ([(device id, received at, event, the
        row's key)], whether more follow). Only the page is read and decoded, whatever the
        history's length (one row more is read, not decoded, to know whether more follow)."""
        sql = ("SELECT e.device_id, e.received_at, e.message, e.read_time, e.device_time, e.counter, e.event_id "
               "FROM event_mpxns m JOIN events e ON e.device_id = m.device_id AND e.event_id = m.event_id "
               "WHERE m.mpxn=?")
        args: tuple[Any, ...] = (mpxn,)
        if after is not None:
            sql += " AND (e.read_time, e.device_time, e.counter, e.device_id, e.event_id) > (?, ?, ?, ?, ?)"
            args += after
        sql += " ORDER BY e.read_time, e.device_time, e.counter, e.device_id, e.event_id LIMIT ?"
        rows = self.conn().execute(sql, args + (limit + 1,)).fetchall()
        return [(r[0], r[1], _event(r[2]), (r[3], r[4], r[5], r[0], bytes(r[6]))) for r in rows[:limit]], \
            len(rows) > limit

    def knows(self, mpxn: str) -> bool:
        """Is anything known of this meter point (an event names it, or it has a flag)?"""
        c = self.conn()
        return (c.execute("SELECT 1 FROM event_mpxns WHERE mpxn=? LIMIT 1", (mpxn,)).fetchone() is not None
                or c.execute("SELECT 1 FROM flags WHERE mpxn=?", (mpxn,)).fetchone() is not None)

    def event_ids(self) -> set[str]:
        """Every stored event's id, hex (the bench's check that what was told saved arrived)."""
        return {bytes(r[0]).hex() for r in self.conn().execute("SELECT event_id FROM events")}

    def latest_message(self, device_id: str) -> bytes | None:
        """A handheld's latest stored event, the signed message as received."""
        row = self.conn().execute("SELECT message FROM events WHERE device_id=? ORDER BY received_at DESC LIMIT 1",
                                  (device_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def mpxns(self) -> list[str]:
        return [r[0] for r in self.conn().execute("SELECT DISTINCT mpxn FROM event_mpxns ORDER BY mpxn")]

    def event_count(self) -> int:
        return int(self.conn().execute("SELECT count(*) FROM events").fetchone()[0])

    # --- flags -----------------------------------------------------------------------
    _FLAG_COLUMNS = ("mpxn, flag, effective_from, reason, event_id, event_ids, override, version, updated_at, code, "
                     "last_key, event_count")

    @staticmethod
    def _stored_flag(row: Any) -> StoredFlag:
        return StoredFlag(row[0], row[1], row[2], row[3], row[4], tuple(json.loads(row[5])), row[6], row[7], row[8],
                          row[9], row[10], row[11])

    def flags_for(self, mpxns: Iterable[str], db: Any | None = None) -> dict[str, StoredFlag]:
        """The stored flags of these meter points, in one query (a batch's)."""
        wanted = sorted(set(mpxns))
        if not wanted:
            return {}
        rows = (db or self.conn()).execute(
            f"SELECT {self._FLAG_COLUMNS} FROM flags WHERE mpxn IN ({','.join('?' * len(wanted))})",
            tuple(wanted)).fetchall()
        return {r[0]: self._stored_flag(r) for r in rows}

    def flag(self, mpxn: str, db: Any | None = None) -> StoredFlag | None:
        row = (db or self.conn()).execute(f"SELECT {self._FLAG_COLUMNS} FROM flags WHERE mpxn=?", (mpxn,)).fetchone()
        return None if row is None else self._stored_flag(row)

    # flag writes, in the ingest's transaction (db)
    @staticmethod
    def touch_flags(db: Any, rows: list[tuple[Any, ...]]) -> None:
        """Flags unchanged: only their latest event ids, time, last key and count,
        (event_ids, now, last_key, event_count, mpxn) each."""
        if rows:
            db.executemany("UPDATE flags SET event_ids=?, updated_at=?, last_key=?, event_count=? WHERE mpxn=?",
                           rows)

    @staticmethod
    def put_flag(db: Any, row: tuple[Any, ...]) -> None:
        """Insert or replace a meter point's flag: (mpxn, flag, effective_from, reason, event_id,
        event_ids JSON, override, version, updated_at, code, last_key, event_count)."""
        Store.put_flags(db, [row])

    @staticmethod
    def put_flags(db: Any, rows: list[tuple[Any, ...]]) -> None:
        """put_flag for many meter points, in one statement."""
        if rows:
            db.executemany(
                "INSERT INTO flags (mpxn, flag, effective_from, reason, event_id, event_ids, override, version, "
                "updated_at, code, last_key, event_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (mpxn) DO UPDATE SET "
                "flag=excluded.flag, effective_from=excluded.effective_from, reason=excluded.reason, "
                "event_id=excluded.event_id, event_ids=excluded.event_ids, override=excluded.override, "
                "version=excluded.version, updated_at=excluded.updated_at, code=excluded.code, "
                "last_key=excluded.last_key, event_count=excluded.event_count", rows)

    @staticmethod
    def queue_change(db: Any, mpxn: str, version: int, flow: str, body: str, now: float) -> None:
        """A flag update into the outbox, in the same transaction as the flag."""
        Store.queue_changes(db, [(mpxn, version, flow, body, now)])

    @staticmethod
    def queue_changes(db: Any, rows: list[tuple[Any, ...]]) -> None:
        """queue_change for many, (mpxn, version, flow, body, now) each, in this order."""
        if rows:
            db.executemany("INSERT INTO outbox (mpxn, version, flow, body, created_at) VALUES (?, ?, ?, ?, ?)", rows)

    # --- replicas: one running bridge per MQTT client id ------------------------------------
    REPLICA_STALE = 15.0  # s without a heartbeat after which a replica's client id is free again

    def claim_replica(self, client_id: str, instance: str, host: str, pid: int, now: float) -> None:
        """Register this bridge as the one running with client_id, or raise StoreError naming the
        replica that already runs with it (its heartbeat is fresh, and it is not a dead process
        of this host: a restart after a crash takes its id back at once)."""
        import os

        from companion.store.db import StoreError
        from companion.times import iso

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

    # --- DTC files: each change assigned to one file before the file is written -------------
    def dtc_pending_files(self) -> list[str]:
        """Files assigned but not yet written (a crash or a failed write in between)."""
        return [r[0] for r in self.conn().execute(
            "SELECT file_id FROM dtc_files WHERE state='pending' ORDER BY file_id").fetchall()]

    def dtc_oldest_unwritten(self) -> float | None:
        """When the oldest change not yet in a written file was made (None: none)."""
        row = self.conn().execute(
            "SELECT min(o.created_at) FROM outbox o LEFT JOIN dtc_files f ON o.dtc_file = f.file_id "
            "WHERE o.dtc_file IS NULL OR f.state = 'pending'").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    @staticmethod
    def dtc_unassigned(db: Any, flow: str, limit: int) -> list[tuple[int, float]]:
        """The flow's changes in no file yet, oldest first: (seq, created at)."""
        return [(int(r[0]), float(r[1])) for r in db.execute(
            "SELECT seq, created_at FROM outbox WHERE flow=? AND dtc_file IS NULL ORDER BY seq LIMIT ?",
            (flow, limit)).fetchall()]

    @staticmethod
    def dtc_assign(db: Any, file_id: str, flow: str, created: str, name: str, seqs: list[int]) -> None:
        db.execute("INSERT INTO dtc_files VALUES (?, ?, ?, ?, 'pending')", (file_id, flow, created, name))
        db.executemany("UPDATE outbox SET dtc_file=? WHERE seq=?", [(file_id, s) for s in seqs])

    @staticmethod
    def dtc_claim(db: Any, file_id: str) -> bool:
        """Hold a pending file's row for this transaction (PostgreSQL replicas: another one
        that holds it, or has written it, makes this False)."""
        return db.execute("SELECT file_id FROM dtc_files WHERE file_id=? AND state='pending' "
                          "FOR UPDATE SKIP LOCKED", (file_id,)).fetchone() is not None

    @staticmethod
    def dtc_written(db: Any, file_id: str) -> None:
        db.execute("UPDATE dtc_files SET state='written' WHERE file_id=?", (file_id,))

    @staticmethod
    def dtc_file(c: Any, file_id: str) -> tuple[str, str, str, list[str]]:
        """(flow, created, name, each change's JSON body in order) of an assigned file."""
        flow, created, name = c.execute("SELECT flow, created, name FROM dtc_files WHERE file_id=?",
                                        (file_id,)).fetchone()
        bodies = [r[0] for r in c.execute("SELECT body FROM outbox WHERE dtc_file=? ORDER BY seq", (file_id,))]
        return flow, created, name, bodies

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
    TOKEN_ROLES = ("read", "dno")

    def add_token(self, name: str, role: str = "read") -> str:
        """A new token: `read` (the read API and the console) or `dno` (alert triage only)."""
        import hashlib
        import secrets

        if not name or len(name) > 64:
            raise RegistryError("a token name is 1-64 characters")
        if role not in self.TOKEN_ROLES:
            raise RegistryError(f"a token's role is one of {', '.join(self.TOKEN_ROLES)}")
        token = "fw_" + secrets.token_urlsafe(32)
        with self.tx() as db:
            if db.execute("SELECT 1 FROM api_tokens WHERE name=?", (name,)).fetchone():
                raise RegistryError(f"a token named {name} exists; revoke it or choose another name")
            db.execute("INSERT INTO api_tokens (name, token_hash, created_at, revoked_at, role) "
                       "VALUES (?, ?, ?, NULL, ?)", (name, hashlib.sha256(token.encode()).digest(), time.time(), role))
        return token

    def revoke_token(self, name: str) -> None:
        with self.tx() as db:
            if db.execute("UPDATE api_tokens SET revoked_at=? WHERE name=? AND revoked_at IS NULL",
                          (time.time(), name)).rowcount == 0:
                raise RegistryError(f"no live token named {name}")
            db.execute("DELETE FROM console_sessions WHERE token_name=?", (name,))  # its sessions end with it

    def tokens(self) -> list[tuple[str, float, float | None, str]]:
        return [tuple(r) for r in self.conn().execute(
            "SELECT name, created_at, revoked_at, role FROM api_tokens ORDER BY name")]

    def token_role(self, token: str) -> tuple[str, str] | None:
        """(name, role) of a live token, or None."""
        import hashlib

        row = self.conn().execute("SELECT name, role FROM api_tokens WHERE token_hash=? AND revoked_at IS NULL",
                                  (hashlib.sha256(token.encode()).digest(),)).fetchone()
        return (row[0], row[1]) if row else None

    def token_name(self, token: str) -> str | None:
        """The name of a live read token, or None (a dno token reads nothing)."""
        who = self.token_role(token)
        return who[0] if who and who[1] == "read" else None

    # --- web console sessions (the cookie holds a random id, stored here hashed) -------------
    SESSION_SECONDS = 8 * 3600

    def start_session(self, token: str, now: float | None = None) -> tuple[str, str] | None:
        """A new session for a live token: (session id, token name), or None. The id is shown
        once, in the cookie; the store keeps its SHA-256."""
        import hashlib
        import secrets

        now = time.time() if now is None else now
        name = self.token_name(token)
        if name is None:
            return None
        sid = secrets.token_urlsafe(32)
        with self.tx() as db:
            db.execute("DELETE FROM console_sessions WHERE expires_at < ?", (now,))
            db.execute("INSERT INTO console_sessions VALUES (?, ?, ?, ?)",
                       (hashlib.sha256(sid.encode()).digest(), name, now, now + self.SESSION_SECONDS))
        return sid, name

    def session_name(self, sid: str, now: float | None = None) -> str | None:
        """The token name of a live session: not expired, not ended, its token not revoked."""
        import hashlib

        row = self.conn().execute(
            "SELECT s.token_name FROM console_sessions s JOIN api_tokens t ON t.name = s.token_name "
            "WHERE s.session_hash=? AND s.expires_at > ? AND t.revoked_at IS NULL AND t.role = 'read'",
            (hashlib.sha256(sid.encode()).digest(), time.time() if now is None else now)).fetchone()
        return row[0] if row else None

    def end_session(self, sid: str) -> None:
        import hashlib

        with self.tx() as db:
            db.execute("DELETE FROM console_sessions WHERE session_hash=?", (hashlib.sha256(sid.encode()).digest(),))

    # --- reads for the surfaces and reconcile ----------------------------------------------
    def flag_changes(self, mpxn: str) -> list[tuple[int, str, float]]:
        """A meter point's flag updates as sent: (version, JSON body, created at), oldest first."""
        rows: list[tuple[int, str, float]] = self.conn().execute(
            "SELECT version, body, created_at FROM outbox WHERE mpxn=? ORDER BY version", (mpxn,)).fetchall()
        return rows

    def recent_rejections(self, limit: int) -> list[tuple[Any, ...]]:
        """The latest rejections: (device id, reason, detail, size, received at), newest first."""
        return [tuple(r) for r in self.conn().execute(
            "SELECT device_id, reason, detail, size, received_at FROM rejections ORDER BY id DESC LIMIT ?",
            (limit,)).fetchall()]

    def last_event_times(self) -> dict[str, float]:
        """Each handheld's latest event, by when it was received."""
        return dict(self.conn().execute("SELECT device_id, max(received_at) FROM events GROUP BY device_id"))

    def evidence_arrow(self) -> Any:
        """(mpxn, flag, effective_from, event_id, reason, code) of every flagged meter point, as
        Arrow record batches read by the database's ADBC driver (a context manager; never a
        Python object per row). A missing date or event id is ''."""
        return self.db.arrow("SELECT mpxn, flag, coalesce(effective_from, '') AS effective_from, "
                             "coalesce(event_id, '') AS event_id, reason, code FROM flags WHERE flag IS NOT NULL")

    def ping(self) -> None:
        """Raises if the database cannot be read (for /healthz)."""
        self.conn().execute("SELECT count(*) FROM sequences").fetchone()


def _known(known: MutableMapping[tuple[str, bytes], Event], device_id: str, eid: bytes, message: Any) -> Event:
    ev = known.get((device_id, eid))
    if ev is None:
        ev = known[(device_id, eid)] = _event(message)
    return ev


def _event(message: Any) -> Event:
    """A stored event's payload, decoded (its signature was verified when it was stored)."""
    return parse_payload(parse_sign1(bytes(message), 1 << 20).payload)


def _device(device_id: str) -> str:
    """Normalise a device id (EUI-64 text) or raise ValueError."""
    return eui64_text(eui64_bytes(device_id))
