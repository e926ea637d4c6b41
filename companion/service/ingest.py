"""Ingest: verify a batch of incoming event messages, store them exactly once, re-derive
the flags of the meter points they name, and write flag changes to the outbox -- all in
one transaction per batch (group commit). Transport-free: the MQTT wiring is in bridge.py.

Checks on each message (first failure wins), each a rejection reason:
topic names a device id (`bad_topic`) · size (`oversize`) · COSE structure and CBOR
(`malformed_cbor`, `duplicate_key`, `not_cose_sign1`, `wrong_alg`, `missing_kid`) · kid equals
the topic's device id (`kid_mismatch`) · key registered (`unknown_key`) · key active, with the
revocation rule (`revoked_key`) · signature (`bad_signature`) · payload schema and MPxNs
(`schema`, `unknown_event_type`, `invalid_mpxn`, ...) · device time not too far ahead
(`time_in_future`) · an id already stored with other bytes (`id_conflict`).
"""

from __future__ import annotations
from collections.abc import Callable
from typing import Any, Protocol

from companion.wire.cbor import summary as _summary

import json
import time

import cbor2
from dataclasses import dataclass, field

from companion import policy, sources
from companion.config import Config
from companion.errors import REJECTIONS, WireError
from companion.wire.event import Event, parse_payload
from companion.ids import eui64_bytes, eui64_text, is_mpan
from companion.store.core import DeviceKey, Store, StoredFlag
from companion.store.smi import Inventory
from companion.service.verify_pool import VerifyPool
from companion.wire.cose import BAD_SIGNATURE, Sign1, parse_sign1


# With a hub clock the device clock is only recorded, never trusted; still, a device time
# more than a year ahead of the bridge is refused outright (it would poison counter checks).
MAX_AHEAD = 366 * 86400


def _span(seconds: int) -> str:
    s = abs(seconds)
    return f"{s // 86400} d {s % 86400 // 3600} h" if s >= 86400 else f"{s // 60} min {s % 60} s"


@dataclass
class Incoming:
    topic: str
    payload: bytes
    received_at: float = field(default_factory=time.time)
    token: object = None  # the transport's handle (the MQTT mid), handed back untouched


@dataclass
class Outcome:
    incoming: Incoming
    status: str  # "stored", "duplicate" or "rejected"
    device_id: str | None = None
    event_id: str | None = None
    reason: str | None = None
    detail: str | None = None
    event: Event | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)  # flag changes this event caused
    suspicious: list[str] = field(default_factory=list)  # counter anomalies (store.counter_anomalies)
    flags: list[tuple[str, str | None, str | None, str]] = field(default_factory=list)  # per MPxN, after commit


@dataclass
class Prepared:
    """A batch started (Ingestor.start): what was read of it before its signatures' answers."""

    batch: list[Incoming]
    devices: list[str | Rejected]  # the topic's device, or why it names none
    keys: dict[str, DeviceKey]  # the batch's registered keys, as first read
    parsed: list[tuple[Sign1, DeviceKey] | Rejected]  # each message's COSE structure and key
    answers: Callable[[], list[bool]]  # the signatures' verdicts, in order (waits for them)


class Rejected(Exception):
    def __init__(self, reason: str, detail: str, event_id: str | None = None):
        if reason not in REJECTIONS:  # one list of reasons (companion/errors.py), documented
            raise ValueError(f"undocumented rejection reason {reason!r}")
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.event_id = event_id  # only for a correctly signed event: the device may trust it


class Ingestor:
    def __init__(self, store: Store, config: Config, pool: VerifyPool | None = None):
        self.inventory = Inventory(store)
        self.store = store
        self.config = config
        # Signatures are checked here or, with verify_workers, on worker processes.
        self.pool = pool if pool is not None else VerifyPool(0)
        self._writes = FlagWrites()  # the batch's flag writes, flushed before its commit

    # --- one message, no store writes --------------------------------------------------
    def device_of(self, topic: str) -> str:
        prefix = f"{self.config.prefix}/events/"
        if not topic.startswith(prefix):
            raise Rejected("bad_topic", f"topic {_summary(topic)} is not {prefix}<device-id>")
        try:
            return eui64_text(eui64_bytes(topic[len(prefix):]))
        except ValueError:
            raise Rejected("bad_topic", f"topic {_summary(topic)} does not end in an EUI-64 device id") from None

    def parse(self, msg: Incoming, device_id: str,
              keys: dict[str, DeviceKey] | None = None) -> tuple[Sign1, DeviceKey]:
        """The checks before the signature: the COSE structure, its kid and the device's key.
        keys: the batch's registered keys (Store.keys_for), read once for the batch."""
        try:
            sign1 = parse_sign1(msg.payload, self.config.max_message)
        except WireError as exc:
            raise Rejected(exc.reason, str(exc)) from None
        kid = eui64_text(sign1.kid) if len(sign1.kid) == 8 else sign1.kid.hex()
        if kid != device_id:
            raise Rejected("kid_mismatch", f"kid {kid} does not match the topic's device {device_id}")
        key = self.store.key(device_id) if keys is None else keys.get(device_id)
        if key is None:
            raise Rejected("unknown_key", f"no key registered for {device_id}")
        if len(sign1.signature) != 64:
            raise Rejected("bad_signature", f"ES256 signature must be 64 bytes, got {len(sign1.signature)}")
        return sign1, key

    def accept(self, msg: Incoming, sign1: Sign1, key: DeviceKey,
               payload: tuple[Event, bytes] | Rejected | None = None) -> tuple[Event, bytes]:
        """The checks after the signature verified: the payload (`payload`: as read_payload
        gave it already), the revocation, the times."""
        got = self.read_payload(sign1) if payload is None else payload
        if isinstance(got, Rejected):
            raise got
        ev, ev_bytes = got
        self.check_revocation(ev, key)
        self._check_times(ev, msg.received_at)
        return ev, ev_bytes

    @staticmethod
    def read_payload(sign1: Sign1) -> tuple[Event, bytes] | Rejected:
        """The event a signed message carries, and its signed content; or why it is none."""
        try:
            return parse_payload(sign1.payload), sign1.canonical()
        except WireError as exc:  # signed by the device, but not a valid event: say which, if we can
            return Rejected(exc.reason, str(exc), _payload_id(sign1.payload))

    @staticmethod
    def check_revocation(ev: Event, key: DeviceKey) -> None:
        """Fail-closed to the second: device times are whole seconds, so an event stamped in
        the second of the revocation is refused too. A hub clock (v2) counts as well, so a
        handheld clock set back does not slip an event under a revocation."""
        made = max(ev.time, ev.evidence.hub_time or 0)
        if key.revoked_at is not None and (key.hard or made >= int(key.revoked_at)):
            raise Rejected("revoked_key", f"key of {key.device_id} revoked at {int(key.revoked_at)}"
                           + (" (hard: no events accepted)" if key.hard else
                              f"; event made at {made}, after the revocation"), ev.id.hex())

    def _check_times(self, ev: Event, received_at: float) -> None:
        """Times are checked on the hub's clock where the survey read one (v2: the hub keeps
        UTC from the DCC), else on the handheld's. A handheld clock that disagrees with its
        hub is recorded (`clock_skew`), never refused: the hub's time dates the evidence."""
        cfg = self.config
        hub_time = ev.evidence.hub_time
        clock, name = (ev.time, "device") if hub_time is None else (hub_time, "hub")
        for when, whose, limit in ((clock, name, cfg.max_future), (ev.time, "device", MAX_AHEAD)):
            ahead = when - received_at
            if ahead > limit:
                raise Rejected("time_in_future",
                               f"{whose} time {when} is {int(ahead)} s ahead (tolerance {limit} s)",
                               ev.id.hex())
        floor = cfg.time_floor_epoch
        if clock < floor or (hub_time is None and ev.evidence.read_time < floor):
            raise Rejected("time_before_floor",
                           f"{name} or survey time before {cfg.time_floor} (the clock was not set)",
                           ev.id.hex())
        # The survey is read during the job, before the event is made: on the same clock, or,
        # when the handheld set its clock from the hub in between, on the hub's.
        age = ev.time - ev.evidence.read_time
        ok = 0 <= age <= cfg.max_survey_age
        if not ok and hub_time is not None:
            age = ev.time - hub_time
            ok = -cfg.max_future <= age <= cfg.max_survey_age
        if not ok:
            raise Rejected("read_time_out_of_range",
                           f"survey read {age} s before the event (allowed 0..{cfg.max_survey_age} s)",
                           ev.id.hex())

    # --- a batch, one transaction ------------------------------------------------------
    def handle_batch(self, batch: list[Incoming]) -> list[Outcome]:
        """Verify a batch, then store it and derive its flags in one transaction."""
        return self.finish(self.start(batch))

    def start(self, batch: list[Incoming]) -> Prepared:
        """A batch's checks before the signatures, and its signatures set going (on the verify
        pool's workers, if it has any): the caller may store the batch before while they run
        (companion/service/ingest_worker.py). No store writes."""
        devices: list[str | Rejected] = []
        for msg in batch:
            try:
                devices.append(self.device_of(msg.topic))
            except Rejected as rej:
                devices.append(rej)
        keys = self.store.keys_for(d for d in devices if isinstance(d, str))  # one read for the batch
        parsed: list[tuple[Sign1, DeviceKey] | Rejected] = []
        for msg, dev in zip(batch, devices):
            try:
                if isinstance(dev, Rejected):
                    raise dev
                parsed.append(self.parse(msg, dev, keys))
            except Rejected as rej:
                parsed.append(rej)
        answers = self.pool.start([(key.public_key, sign1.to_be_signed(), sign1.signature)
                                   for p in parsed if not isinstance(p, Rejected) for sign1, key in (p,)])
        return Prepared(batch, devices, keys, parsed, answers)

    def finish(self, prepared: Prepared) -> list[Outcome]:
        """The rest of a started batch: its signatures' answers, the checks after them, then the
        batch stored and its flags derived in one transaction."""
        outcomes, accepted, keys = self._verify(prepared)
        self._writes = FlagWrites()  # a batch's own, whatever a batch before it left
        with self.store.db.tx(pipeline=True) as db:
            # Replicas: the batch's devices are locked first, then their keys read again inside
            # the transaction (a revocation committed since the read above is seen), then the
            # counters checked (another replica's events of the device, committed, are seen).
            self.store.db.lock_devices(db, [out.device_id or "" for out, _, _ in accepted])
            accepted = self._recheck_keys(db, accepted, keys)
            stored = self._store_events(db, accepted)
            touched, fresh = self._note_skews(db, stored)
            known = {(out.device_id or "", ev.id): ev for out, ev, _ in accepted}
            self.store.db.lock_mpxns(db, list(touched))  # one writer per meter point (replicas)
            # Read after the locks: what another replica committed before them is seen. The
            # meter points of repeats (duplicates) are read with them, for their acks.
            repeats = {m for out in outcomes if out.status == "duplicate" and out.event is not None
                       for m in out.event.mpxns if m not in touched}
            stored_flags = self.store.flags_for([*touched, *repeats], db)
            now_flags: dict[str, tuple[Any, ...]] = {}  # what _rederive just wrote: no second read for the acks
            dcc = self.inventory.known_mpxns(list(touched), db)  # one query for the batch
            for mpxn, out in sorted(touched.items()):
                change, now_flags[mpxn] = self._rederive(db, mpxn, known, fresh[mpxn], stored_flags.get(mpxn),
                                                         mpxn in dcc)
                if change:
                    out.changes.append(change)
            self._writes.flush(db)
            self._answer(db, outcomes, now_flags, stored_flags)
        return outcomes

    def _verify(self, prepared: Prepared) -> tuple[list[Outcome], list[tuple[Outcome, Event, bytes]],
                                                      dict[str, DeviceKey]]:
        """Each message checked outside the transaction: -> (every outcome, the accepted ones
        with their event and signed content, the batch's keys as first read)."""
        outcomes: list[Outcome] = []
        accepted: list[tuple[Outcome, Event, bytes]] = []
        batch, devices, keys, parsed, answers = (prepared.batch, prepared.devices, prepared.keys, prepared.parsed,
                                                 prepared.answers)
        # With a verify pool, its workers check the signatures while this thread reads the
        # payloads of the messages whose key is registered; a payload so read is used only once
        # its signature has verified, and a message that fails both is refused for its
        # signature, as when checked in order.
        early = [None if isinstance(p, Rejected) else self.read_payload(p[0]) for p in parsed] \
            if self.pool.workers else [None] * len(parsed)
        verdicts = iter(answers())
        for msg, dev, p, payload in zip(batch, devices, parsed, early):
            device_id = dev if isinstance(dev, str) else None
            try:
                if isinstance(p, Rejected):
                    raise p
                if not next(verdicts):
                    raise Rejected("bad_signature", BAD_SIGNATURE)
                ev, signed = self.accept(msg, *p, payload)
            except Rejected as rej:
                outcomes.append(Outcome(msg, "rejected", device_id, rej.event_id, rej.reason, rej.detail))
                continue
            out = Outcome(msg, "stored", device_id, ev.id.hex(), event=ev)
            outcomes.append(out)
            accepted.append((out, ev, signed))
        return outcomes, accepted, keys

    def _store_events(self, db: Any, accepted: list[tuple[Outcome, Event, bytes]]) -> list[tuple[Outcome, Event]]:
        """Insert the accepted events (one statement), judge each as stored, duplicate or
        id_conflict, and record counter anomalies: -> the events stored now."""
        # A batch's statements whose results are read go as one each (a round trip each on
        # PostgreSQL): the counter checks, the inserts.
        prior = self.store.counter_anomalies(db, [(out.device_id or "", ev) for out, ev, _ in accepted])
        statuses = self.store.insert_events(
            db, [(out.device_id or "", ev, signed, out.incoming.received_at) for out, ev, signed in accepted])
        stored: list[tuple[Outcome, Event]] = []
        earlier: dict[str, list[Event]] = {}  # each device's events stored so far in this batch
        # ... and their highest counter and latest time: an event above both, the usual case
        # (a handheld's backlog in order), can match none of them, and is not compared.
        tops: dict[str, tuple[int, int]] = {}
        for (out, ev, _), status, found in zip(accepted, statuses, prior):
            assert out.device_id is not None  # accepted: its topic named a device
            if status == "conflict":
                # Never hand out the event id here: the stored copy is the genuine one, and
                # the handheld must not set its own copy aside on an impostor's account.
                out.status, out.reason, out.event_id = "rejected", "id_conflict", None
                out.detail = f"event id {ev.id.hex()} already stored with different signed content"
                continue
            out.status = status
            if status != "stored":
                continue
            # As if stored one at a time: the batch's earlier events of the device count too.
            top = tops.get(out.device_id)
            if top is not None and not (ev.counter > top[0] and ev.time >= top[1]):
                for e in earlier[out.device_id]:
                    if e.counter == ev.counter:
                        found.setdefault("counter_reused", (e.id, e.counter, e.time))
                    elif (e.counter > ev.counter and e.time < ev.time) or (e.counter < ev.counter and e.time > ev.time):
                        found.setdefault("counter_backwards", (e.id, e.counter, e.time))
            earlier.setdefault(out.device_id, []).append(ev)
            tops[out.device_id] = (ev.counter, ev.time) if top is None else (max(top[0], ev.counter),
                                                                            max(top[1], ev.time))
            out.suspicious = self.store.record_counter_anomalies(db, out.device_id, ev, found,
                                                                 out.incoming.received_at)
            stored.append((out, ev))
        return stored

    def _note_skews(self, db: Any, stored: list[tuple[Outcome, Event]]
                    ) -> tuple[dict[str, Outcome], dict[str, list[Event]]]:
        """Record handheld clocks far from their hub's; -> (each meter point touched, with the
        outcome that touched it last; the events this batch stored, per meter point)."""
        touched: dict[str, Outcome] = {}
        fresh: dict[str, list[Event]] = {}
        for out, ev in stored:
            assert out.device_id is not None
            skew = ev.evidence.clock_skew
            if skew is not None and abs(skew) > self.config.clock_tolerance:
                self.store.record_suspicious(
                    db, ev.id, out.device_id, "clock_skew",
                    f"handheld clock {_span(skew)} {'ahead of' if skew > 0 else 'behind'} its hub "
                    f"at the survey (tolerance {self.config.clock_tolerance} s)", out.incoming.received_at)
                out.suspicious.append("clock_skew")
            for m in ev.mpxns:
                touched[m] = out
                fresh.setdefault(m, []).append(ev)
        return touched, fresh

    def _answer(self, db: Any, outcomes: list[Outcome], now_flags: dict[str, tuple[Any, ...]],
                stored_flags: dict[str, StoredFlag]) -> None:
        """What each handheld is told: each meter point's flag as it now stands; rejections
        recorded."""
        for out in outcomes:
            if out.status in ("stored", "duplicate") and out.event is not None:
                for m in out.event.mpxns:
                    if m in now_flags:
                        out.flags.append((m, *now_flags[m]))
                        continue
                    f = stored_flags.get(m)
                    out.flags.append((m, f.flag, f.effective_from, f.code) if f else (m, None, None, "none"))
            if out.status == "rejected":
                self.store.record_rejection(out.device_id, out.reason or "", out.detail or "",
                                            len(out.incoming.payload), out.incoming.received_at, db)

    def _recheck_keys(self, db: Any, accepted: list[tuple[Outcome, Event, bytes]],
                      before: dict[str, DeviceKey]) -> list[tuple[Outcome, Event, bytes]]:
        """The accepted events whose key, read again in the transaction, still takes them: a
        key revoked since the batch's first read rejects its events now."""
        if not accepted:
            return accepted
        now = self.store.keys_for((out.device_id or "" for out, _, _ in accepted), db)
        kept = []
        for out, ev, signed in accepted:
            key = now.get(out.device_id or "")
            try:
                if key is None or key.public_key != before[out.device_id or ""].public_key:
                    raise Rejected("unknown_key", f"the key of {out.device_id} changed while the batch was read")
                self.check_revocation(ev, key)
            except Rejected as rej:
                out.status, out.reason, out.detail, out.event_id, out.event = (
                    "rejected", rej.reason, rej.detail, rej.event_id, None)
                continue
            kept.append((out, ev, signed))
        return kept

    def _rederive(self, db: Any, mpxn: str, known: dict[tuple[str, bytes], Event], fresh: list[Event],
                  old: StoredFlag | None, dcc_known: bool = False) -> tuple[dict[str, Any] | None, tuple[Any, ...]]:
        """-> (the flag change written to the outbox, or None; (flag, effective_from, code) as stored)."""
        # Incremental in the usual case: events newer than any of the meter point's are folded
        # into its stored flag (policy.extend), at a cost that does not grow with its history.
        # A late event (older than the newest stored) re-derives the whole history.
        # The flags row keeps the latest MAX_FLAG_EVENT_IDS event ids and a count, so that neither
        # grows with the history either (the read API lists them all from the events).
        last = max(policy.order_text(e) for e in fresh)
        dcc = self.inventory.for_mpxn(mpxn, db) if dcc_known else []
        extra: dict[str, Any] = {}
        if dcc:
            # The DCC has said something of this meter point: both sources, from the whole history
            # (companion/sources.py).
            events = [e for _, _, e in self.store.events_for(mpxn, db, known)]
            field_flag = policy.derive(mpxn, events)
            combined = sources.combine(mpxn, field_flag, events, dcc, int(time.time()),
                                       self.config.install_and_leave_days)
            new = combined.flag
            last = max(policy.order_text(e) for e in events)
            count = len(field_flag.event_ids)
            extra = dcc_fields(combined)
        elif (old is not None and old.last_key is not None and old.event_count is not None
                and min(policy.order_text(e) for e in fresh) > old.last_key):
            base = policy.Flag(mpxn, old.flag, old.effective_from, old.reason, old.event_id, old.event_ids,
                               old.override, old.code)
            new = policy.extend(base, fresh)
            count = old.event_count + len(new.event_ids) - len(old.event_ids)
        else:
            # A meter point without a flags row has no events before this batch's (every
            # stored event leaves one, in its transaction): no need to read them back.
            events = list(fresh) if old is None else [e for _, _, e in self.store.events_for(mpxn, db, known)]
            new = policy.derive(mpxn, events)
            last = max(policy.order_text(e) for e in events)
            count = len(new.event_ids)
        tail = json.dumps(list(new.event_ids)[-MAX_FLAG_EVENT_IDS:])
        now = time.time()
        # The flag state is the whole flag: a new deciding event, reason or override is a new
        # version too (an override must never go silent), not only a new value or date.
        if old is not None and state(old) == state(new):
            self._writes.touch_flag(db, mpxn, tail, now, last, count)
            return None, (old.flag, old.effective_from, old.code)
        if old is None and new.flag is None:
            # Events, but none with smart evidence for this point: nothing to send yet.
            self._writes.put_flag(db, (mpxn, None, None, new.reason, None, tail, None, 0, now, new.code, last, count))
            return None, (None, None, new.code)
        body = new_version(self._writes, self.config, db, mpxn, new, old, tail, now, last, count, extra)
        return body, (new.flag, new.effective_from, new.code)


class FlagSink(Protocol):
    """Where flag writes go: the store (at once) or a batch's FlagWrites (at its end)."""

    def put_flag(self, db: Any, row: tuple[Any, ...]) -> None: ...

    def queue_change(self, db: Any, mpxn: str, version: int, flow: str, body: str, now: float) -> None: ...


class FlagWrites:
    """A batch's flag writes, kept in order and written at its end in one statement each
    (Store.put_flags, touch_flags, queue_changes), in the batch's transaction. Each meter
    point is written once a batch, so the order between the statements does not matter;
    the outbox keeps the order of the changes."""

    def __init__(self) -> None:
        self.puts: list[tuple[Any, ...]] = []
        self.touches: list[tuple[Any, ...]] = []
        self.changes: list[tuple[Any, ...]] = []

    def put_flag(self, db: Any, row: tuple[Any, ...]) -> None:
        self.puts.append(row)

    def touch_flag(self, db: Any, mpxn: str, event_ids: str, now: float, last_key: str, event_count: int) -> None:
        self.touches.append((event_ids, now, last_key, event_count, mpxn))

    def queue_change(self, db: Any, mpxn: str, version: int, flow: str, body: str, now: float) -> None:
        self.changes.append((mpxn, version, flow, body, now))

    def flush(self, db: Any) -> None:
        Store.put_flags(db, self.puts)
        Store.touch_flags(db, self.touches)
        Store.queue_changes(db, self.changes)


def new_version(store: FlagSink, config: Config, db: Any, mpxn: str, new: policy.Flag, old: StoredFlag | None,
                tail: str, now: float, last: str | None, count: int, extra: dict[str, Any]) -> dict[str, Any]:
    """A changed flag: its next version stored and queued for MQTT and DTC, in the caller's
    transaction; -> the flag update as published (with `extra`: the two sources' fields)."""
    version = 1 if old is None else old.version + 1
    store.put_flag(db, (mpxn, new.flag, new.effective_from, new.reason, new.event_id, tail, new.override, version,
                        now, new.code, last, count))
    body = flag_message(new, version, config, count)
    body.update(extra)
    store.queue_change(db, mpxn, version, "electricity" if is_mpan(mpxn) else "gas",
                       json.dumps(body, sort_keys=True), now)
    return body


def dcc_fields(combined: sources.Combined) -> dict[str, Any]:
    """What a flag update decided with the DCC's inventory carries besides the flag."""
    return {"sources": list(combined.sources), "conflicts": sorted({c.cls for c in combined.conflicts})}


def _payload_id(payload: bytes) -> str | None:
    try:
        eid = cbor2.loads(payload).get(1)
    except Exception:
        return None
    return eid.hex() if isinstance(eid, bytes) and len(eid) == 16 else None


MAX_FLAG_EVENT_IDS = 20


def state(flag: Any) -> tuple[Any, ...]:
    """What makes a flag update: value, date, deciding event, reason and override (a stored
    flag or a derived one)."""
    return (flag.flag, flag.effective_from, flag.event_id, flag.reason, flag.override)


def flag_message(flag: policy.Flag, version: int, config: Config, event_count: int | None = None) -> dict[str, Any]:
    """The flag update as published on <prefix>/flags/<mpxn> (docs/bridge.md)."""
    return {
        "mpxn": flag.mpxn,
        "flag": flag.flag,
        "legacy_flag": policy.legacy(flag.flag, config.legacy_mapping),
        "effective_from": flag.effective_from,
        "reason": flag.reason,
        "event_id": flag.event_id,
        # Bounded, so that a meter point with a long history never makes a message over the
        # broker's packet limit; the read API lists them all.
        "event_ids": list(flag.event_ids)[-MAX_FLAG_EVENT_IDS:],
        "event_count": len(flag.event_ids) if event_count is None else event_count,
        "override": flag.override,
        "code": flag.code,
        "version": version,
    }

