"""Hostile input at the bridge, fast (docs/security.md "Hostile input"): the ingest path
without a broker (the wiring is tested in test_security.py)."""

from __future__ import annotations

import threading
import time
import tracemalloc

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion.service.bridge import Bridge
from companion.config import Config
from companion.service.ingest import Incoming, Ingestor
from companion.store.core import Store

from .bridge_support import DEVICE_ID, MV, PUBLIC_KEY, make_event

T0 = 1793491200  # 2026-11-01
TOPIC = f"flagwise/events/{DEVICE_ID}"


@pytest.fixture
def ingest(tmp_path):
    store = Store(tmp_path / "bridge.db")
    store.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
    return Ingestor(store, Config(db=str(tmp_path / "bridge.db")).check())


def one(ingest: Ingestor, payload: bytes, at: float | None = None):
    return ingest.handle_batch([Incoming(TOPIC, payload, at or time.time())])[0]


def _sign1(protected: bytes, payload: bytes, unprotected=None) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected or {}, payload, b"\0" * 64]))


def value_sharing_bomb(levels: int = 60) -> bytes:
    """~3 KB of CBOR that describes 2**levels leaves through tags 28/29 (shared/pitfalls.md)."""
    # [28([1, 1]), 28([29(0), 29(0)]), 28([29(1), 29(1)]), ...]: item i shares item i-1 twice.
    items = [b"\xd8\x1c\x82\x01\x01"]
    items += [b"\xd8\x1c\x82" + (b"\xd8\x1d" + cbor2.dumps(i)) * 2 for i in range(levels - 1)]
    return bytes([0x98, levels]) + b"".join(items)


def test_value_sharing_bomb_is_refused_fast_and_small(ingest):
    bomb = value_sharing_bomb()
    assert len(bomb) < 4096
    header = cbor2.dumps({1: 0, 4: bytes.fromhex(DEVICE_ID.replace("-", ""))})
    header = header.replace(b"\x01\x00", b"\x01" + bomb)  # alg = the bomb
    msg = _sign1(header, b"\xa0")
    tracemalloc.start()
    started = time.perf_counter()
    out = one(ingest, msg)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out.status == "rejected" and out.reason == "malformed_cbor", out
    assert "tag 28" in out.detail and len(out.detail) < 200
    assert elapsed < 0.05, f"{elapsed * 1000:.1f} ms"
    assert peak < 2 * 1024 * 1024, peak


@pytest.mark.parametrize("tag", [0, 1, 2, 3, 24, 28, 29, 55799, 18])
def test_every_tag_the_schema_does_not_use_is_refused(ingest, tag):
    _, good = make_event("commission", T0, 1)
    payload = cbor2.loads(good).value[2]
    m = cbor2.loads(payload)
    m[5] = cbor2.CBORTag(tag, "WO-1")  # a tagged job reference, signed by the device itself
    kid = bytes.fromhex(DEVICE_ID.replace("-", ""))
    msg = bytes.fromhex(MV.sign1(cbor2.dumps(m), kid)["message"])
    out = one(ingest, msg)
    assert out.reason == "malformed_cbor" and f"tag {tag}" in out.detail


def test_unprotected_header_must_be_empty_and_the_genuine_copy_is_kept(ingest):
    eid, good = make_event("commission", T0, 1)
    prot, _, payload, sig = cbor2.loads(good).value
    rewrapped = cbor2.dumps(cbor2.CBORTag(18, [prot, {99: "ATTACKER"}, payload, sig]))
    out = one(ingest, rewrapped)
    assert (out.status, out.reason, out.event_id) == ("rejected", "not_cose_sign1", None)
    assert one(ingest, good).status == "stored"
    stored = ingest.store.conn().execute("SELECT message FROM events").fetchone()[0]
    assert b"ATTACKER" not in bytes(stored)
    assert one(ingest, good).status == "duplicate"


def test_the_store_keeps_the_signed_content_not_the_received_encoding(ingest):
    eid, good = make_event("commission", T0, 1)
    prot, _, payload, sig = cbor2.loads(good).value
    # The same signed parts with a non-shortest array head: another encoding, same content.
    variant = b"\xd2\x98\x04" + good[2:]
    assert variant != good
    assert one(ingest, variant).status == "stored"
    assert one(ingest, good).status == "duplicate"  # not an id_conflict
    stored = bytes(ingest.store.conn().execute("SELECT message FROM events").fetchone()[0])
    assert stored == good


def test_id_conflict_never_names_the_event_to_the_handheld(ingest):
    eid, first = make_event("commission", T0, 1)
    _, second = make_event("install", T0, 2, event_id=bytes.fromhex(eid))
    assert one(ingest, first).status == "stored"
    out = one(ingest, second)
    assert (out.status, out.reason, out.event_id) == ("rejected", "id_conflict", None)


@pytest.mark.parametrize("case,read_time,time_,reason", [
    ("read_time far in the future", T0 + 10 * 365 * 86400, T0, "read_time_out_of_range"),
    ("read_time year 10000", 253402300800, T0, "read_time_out_of_range"),
    ("event year 10000", 253402300800, 253402300805, "time_in_future"),
    ("dated 1970", 0, 5, "time_before_floor"),
    ("survey a week before the event", T0 - 7 * 86400, T0, "read_time_out_of_range"),
])
def test_times_are_bounded(ingest, case, read_time, time_, reason):
    _, msg = make_event("commission", read_time, 1, made_at=time_)
    out = one(ingest, msg)
    assert (out.status, out.reason) == ("rejected", reason), (case, out.detail)


def test_revocation_is_fail_closed_to_the_second(ingest):
    revoked_at = T0 + 100.7
    ingest.store.revoke_key(DEVICE_ID, at=revoked_at)
    _, same_second = make_event("commission", T0 + 95, 1, made_at=T0 + 100)
    _, before = make_event("commission", T0 + 90, 2, made_at=T0 + 99)
    assert one(ingest, same_second).reason == "revoked_key"
    assert one(ingest, before).status == "stored"


def test_rejections_are_bounded(tmp_path):
    store = Store(tmp_path / "b.db")
    store.REJECTIONS_KEPT = 1000
    with store.tx() as db:
        for n in range(5000):
            store.record_rejection(DEVICE_ID, "bad_signature", "x" * 400, 100, float(n), db)
    rows = store.conn().execute("SELECT count(*) FROM rejections").fetchone()[0]
    assert rows <= 1100
    assert store.rejection_counts() == [(DEVICE_ID, "bad_signature", 5000)]


_GOOD = make_event("commission", T0, 1)[1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(_GOOD) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, 40))
def test_no_attacker_input_is_an_internal_error(ingest, flips, cut):
    data = bytearray(_GOOD)
    for pos, val in flips:
        data[pos] = val
    data = bytes(data[: len(data) - cut])
    out = one(ingest, data)
    assert out.reason != "internal_error"
    assert len(out.detail or "") < 600


def test_liveness_and_readiness_say_what_fails(tmp_path, monkeypatch):
    cfg = Config(db=str(tmp_path / "b.db"), pki=str(tmp_path / "pki"), http=None).check()
    b = Bridge(cfg)
    b.state.connected = True
    assert b.health()["status"] == "ok", b.health()
    dead = threading.Thread(target=lambda: None, name="ingest")
    dead.start()
    dead.join()
    b._threads.append(dead)
    h = b.health()
    assert h["status"] == "failing" and "worker stopped: ingest" in h["problems"]
    b._threads.clear()

    def broken() -> None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(b.store, "ping", broken)
    # A failing store makes the bridge not ready; it is still alive (a restart would not help).
    h = b.health(ready=True)
    assert h["status"] == "failing" and any("storage" in p for p in h["problems"])
    assert b.health()["status"] == "ok"
    b.state.connected = False
    monkeypatch.undo()
    assert "broker link down" in b.health(ready=True)["problems"] and b.health()["status"] == "ok"


def test_a_worker_that_fails_is_started_again_and_counted(tmp_path):
    """A worker thread that raises is not left dead: logged, counted, started again."""
    cfg = Config(db=str(tmp_path / "b.db"), pki=str(tmp_path / "pki"), http=None).check()
    b = Bridge(cfg)
    runs: list[int] = []
    done = threading.Event()

    def flaky() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("a bad moment")
        done.set()
        b.stopping.wait()

    b._spawn("flaky", flaky)
    try:
        assert done.wait(10), "the worker was not started again"
        assert b.metrics.worker_restarts.labels("flaky")._value.get() == 1
        assert b.health()["status"] == "ok"
    finally:
        b.stopping.set()
        b._threads[-1].join(5)
