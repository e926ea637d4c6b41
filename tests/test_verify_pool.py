"""The verify pool (companion/service/verify_pool.py): signatures checked on worker processes
judge every message as the ingest's own thread does; and the batch's own counter checks."""

from __future__ import annotations

import time

import cbor2
import pytest

from companion.config import Config
from companion.service.ingest import Incoming, Ingestor
from companion.service.verify_pool import VerifyPool, verify_all
from companion.store.core import Store

from .bridge_support import DEVICE_ID, MV, PUBLIC_KEY, make_event

T0 = 1793491200  # 2026-11-01
TOPIC = f"flagwise/events/{DEVICE_ID}"
FORGER = "1" * 64  # a P-256 private key that is not the handheld's
OTHER_DEVICE = "00-1B-C5-0C-00-00-0F-01"


def _batch() -> tuple[list[Incoming], list[tuple[str, str | None]]]:
    """A batch with a message of each kind, and what each must get: (status, reason)."""
    now = time.time()
    signed_nonsense = bytes.fromhex(MV.sign1(cbor2.dumps({0: 2, 1: b"\1" * 16}), bytes.fromhex(
        DEVICE_ID.replace("-", "")))["message"])
    forged_nonsense = bytes.fromhex(MV.sign1(cbor2.dumps({0: 2, 1: b"\1" * 16}), bytes.fromhex(
        DEVICE_ID.replace("-", "")), key=FORGER)["message"])
    cases = [
        (make_event("install", T0, 1)[1], ("stored", None)),
        (make_event("commission", T0 + 60, 2, key=FORGER)[1], ("rejected", "bad_signature")),
        (make_event("commission", T0 + 120, 3)[1], ("stored", None)),
        (signed_nonsense, ("rejected", "schema")),
        # A payload that would fail its schema, under a forged signature: refused for the
        # signature, as the checks run in order.
        (forged_nonsense, ("rejected", "bad_signature")),
        (make_event("commission", T0 + 180, 4)[1][:-1] + b"\0", ("rejected", "bad_signature")),
        (b"\xa0", ("rejected", "not_cose_sign1")),
        (make_event("removal", T0 + 240, 5)[1], ("stored", None)),
    ]
    batch = [Incoming(TOPIC, m, now) for m, _ in cases]
    batch.append(Incoming(f"flagwise/events/{OTHER_DEVICE}", make_event(
        "install", T0, 1, kid_device=OTHER_DEVICE)[1], now))
    return batch, [want for _, want in cases] + [("rejected", "unknown_key")]


def _ingestor(tmp_path, name: str, pool: VerifyPool | None) -> Ingestor:
    store = Store(tmp_path / f"{name}.db")
    store.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
    return Ingestor(store, Config(db=str(tmp_path / f"{name}.db")).check(), pool)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_batch_checked_on_worker_processes_is_judged_as_in_the_ingests_own_thread(tmp_path, workers):
    batch, wanted = _batch()
    pool = VerifyPool(workers)
    try:
        pooled = _ingestor(tmp_path, "pooled", pool).handle_batch(batch)
    finally:
        pool.close()
    inline = _ingestor(tmp_path, "inline", None).handle_batch(batch)
    assert [(o.status, o.reason) for o in pooled] == wanted
    assert [(o.status, o.reason, o.event_id, o.detail, o.flags) for o in pooled] == \
        [(o.status, o.reason, o.event_id, o.detail, o.flags) for o in inline]


def test_a_signature_check_answers_no_for_a_bad_key_or_signature_and_never_raises():
    _, msg = make_event("install", T0, 1)
    from companion.wire.cose import parse_sign1

    s = parse_sign1(msg)
    key = bytes.fromhex(PUBLIC_KEY)
    checks = [(key, s.to_be_signed(), s.signature), (key, s.to_be_signed() + b"x", s.signature),
              (key, s.to_be_signed(), s.signature[:63]), (b"\4" + b"\0" * 64, s.to_be_signed(), s.signature),
              (key, s.to_be_signed(), bytes(64))]
    assert verify_all(checks) == [True, False, False, False, False]


def test_counters_are_checked_against_the_batchs_own_earlier_events(tmp_path):
    """A handheld's backlog arrives as one batch: its events in order pass; a counter used
    twice, or lower on a later event, is found within the batch as across batches."""
    ing = _ingestor(tmp_path, "b", None)
    now = time.time()
    in_order = [make_event("install", T0 + 60 * i, 10 + i, mpans=[MV.mpan_check(f"20000000{i:04d}")])[1]
                for i in range(30)]
    outs = ing.handle_batch([Incoming(TOPIC, m, now) for m in in_order])
    assert [o.status for o in outs] == ["stored"] * 30 and all(o.suspicious == [] for o in outs)
    odd = [make_event("install", T0 + 4000, 100)[1],
           make_event("install", T0 + 4100, 100)[1],  # the same counter again
           make_event("install", T0 + 4200, 101)[1],
           make_event("install", T0 + 4300, 99)[1],  # later, with a lower counter
           make_event("install", T0 + 4400, 102)[1]]
    outs = ing.handle_batch([Incoming(TOPIC, m, now) for m in odd])
    assert [o.suspicious for o in outs] == [[], ["counter_reused"], [], ["counter_backwards"], []]


def test_a_worker_killed_mid_run_costs_no_verdict_and_the_pool_starts_again():
    """A signature worker killed (out of memory, an operator's kill): its batch is checked in
    the ingest's own process instead, never refused, and the pool is replaced."""
    import os
    import signal

    from companion.wire.cose import parse_sign1

    key = bytes.fromhex(PUBLIC_KEY)
    good = [parse_sign1(make_event("install", T0 + i, i + 1)[1]) for i in range(6)]
    forged = parse_sign1(make_event("install", T0, 99, key=FORGER)[1])
    checks = [(key, s.to_be_signed(), s.signature) for s in [*good, forged]]
    pool = VerifyPool(2)
    try:
        assert pool.verify(checks) == [True] * 6 + [False]
        killed = pool.pids()
        assert killed
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        assert pool.verify(checks) == [True] * 6 + [False]
        assert pool.restarts == 1
        assert pool.verify(checks) == [True] * 6 + [False] and pool.restarts == 1
        assert pool.pids() and set(pool.pids()).isdisjoint(killed)  # answered by new workers
    finally:
        pool.close()
