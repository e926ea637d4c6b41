"""The bridge against real mosquitto, as a process: ingest, acks, rejections, flags out,
read API, metrics, and a SIGKILL in the middle of a stream."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from companion import dtc

from companion import policy
from companion.wire.event import parse_payload
from companion.store.core import Store
from companion.wire.cose import parse_sign1

from .bridge_support import (DEVICE_ID, MV, PUBLIC_KEY, BridgeProcess, Handheld, evidence,
                             make_event)

T0 = 1793491200  # 2026-11-01, in the past: the bridge rejects events from the future
DAY = 86400


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    """Every test here runs on both stores (SQLite, and a PostgreSQL cluster of its own)."""
    return request.param


@pytest.fixture
def bridge(start_bridge):
    return start_bridge(DEVICE_ID, PUBLIC_KEY)


@pytest.fixture
def hh(watch):
    return watch


def test_event_is_stored_acked_and_flag_published(bridge, hh):
    eid, msg = make_event("commission", T0, 1)
    hh.send(msg)
    hh.wait(lambda h: eid in h.acks, what="ack")
    assert hh.acks[eid] == "stored"
    hh.wait(lambda h: MV.MPAN in h.flags, what="flag update")
    f = hh.flags[MV.MPAN][-1]
    assert (f["flag"], f["effective_from"], f["version"], f["event_id"]) == ("A", "2026-11-01", 1, eid)
    # The ack came after the commit: the event is in the store.
    assert Store(bridge.db).event_count() == 1

    hh.send(msg)  # a re-send: acked again, nothing changes
    hh.wait(lambda h: h.ack_count.get(eid) == 2, what="second ack")
    assert hh.acks[eid] == "duplicate"
    assert Store(bridge.db).event_count() == 1
    time.sleep(0.3)
    assert len(hh.flags[MV.MPAN]) == 1

    status, site = bridge.get(f"/v1/sites/{MV.MPAN}")
    assert status == 200
    assert (site["flag"], site["since"], site["version"]) == ("A", "2026-11-01", 1)
    assert site["event_ids"] == [eid] and site["hub"]["chf"] == "00-1B-C5-0C-00-00-00-01"
    status, events = bridge.get(f"/v1/sites/{MV.MPAN}/events")
    assert status == 200 and [e["event_id"] for e in events["events"]] == [eid]
    assert bridge.get("/v1/sites/1312345678906")[0] == 400
    assert bridge.get("/v1/sites/2000012345672")[0] == 404
    assert bridge.get("/healthz")[1]["status"] == "ok"
    status, metrics = bridge.get("/metrics")
    assert "flagwise_events_stored_total 1.0" in metrics
    assert "flagwise_events_duplicate_total 1.0" in metrics
    assert 'flagwise_flag_changes_total{flag="A"} 1.0' in metrics
    # Per replica: what it is (version, client id, store) and its process.
    backend = "postgres" if str(bridge.db).startswith("postgresql://") else "sqlite"
    assert f'flagwise_build_info{{replica="bridge",store="{backend}",version="0.2.0"}} 1.0' in metrics
    assert "process_cpu_seconds_total" in metrics and "process_open_fds" in metrics
    assert bridge.get("/readyz")[1]["status"] == "ok"
    assert "flagwise_ready 1.0" in bridge.get("/metrics")[1]


def test_every_rejection_reason_is_reported_counted_and_survived(tmp_path, bridge, hh):
    forged_key = "2" * 64
    other_device = "70-B3-D5-F1-00-00-00-09"
    revoked_device = "70-B3-D5-F1-00-00-00-0A"
    assert bridge.companion("keys", "add", revoked_device, MV.public_hex(forged_key)).returncode == 0
    now = int(time.time())
    # The registry alone refuses them here (--no-pki: the broker still lets the device in);
    # tests/test_security.py revokes at the broker too.
    assert bridge.companion("keys", "revoke", revoked_device, "--at", str(now - 3600),
                            "--no-pki").returncode == 0

    cases = []
    _, m = make_event("commission", T0, 1, key=forged_key)
    cases.append(("bad_signature", m, DEVICE_ID))
    _, m = make_event("commission", T0, 2, kid_device=other_device, key=forged_key)
    cases.append(("unknown_key", m, other_device))
    _, m = make_event("commission", T0, 3)
    cases.append(("kid_mismatch", m, other_device))
    cases.append(("malformed_cbor", b"\xff\x00garbage", DEVICE_ID))
    cases.append(("oversize", b"\x00" * 5000, DEVICE_ID))  # over max_message, under the broker's limit
    _, m = make_event("commission", now + 3600, 4)
    cases.append(("time_in_future", m, DEVICE_ID))
    _, m = make_event("commission", T0, 5, mpans=["1312345678906"])
    cases.append(("invalid_mpxn", m, DEVICE_ID))
    _, m = make_event("commission", now - 60, 6, kid_device=revoked_device, key=forged_key)
    cases.append(("revoked_key", m, revoked_device))  # made after the revocation
    for _, m, device in cases:
        hh.send(m, device)
    hh.wait(lambda h: len(h.rejected) == len(cases), what="rejections")
    got = sorted(r["reason"] for r in hh.rejected)
    assert got == sorted(c[0] for c in cases)
    # Only a correctly signed event names its id to the handheld.
    assert {r["reason"] for r in hh.rejected if r["event_id"]} == {"time_in_future", "invalid_mpxn", "revoked_key"}

    # Made before the revocation (a backlog): still accepted.
    eid, m = make_event("install", now - 7200 - 10, 7, kid_device=revoked_device, key=forged_key)
    hh.send(m, revoked_device)
    # The bridge is still working: a good event after all that.
    good, m = make_event("commission", T0, 8)
    hh.send(m)
    hh.wait(lambda h: good in h.acks and eid in h.acks, what="acks after rejections")
    _, metrics = bridge.get("/metrics")
    for reason, _, _ in cases:
        assert f'flagwise_events_rejected_total{{reason="{reason}"}} 1.0' in metrics, reason
    # hard revocation: nothing accepted any more, whatever its time
    assert bridge.companion("keys", "revoke", revoked_device, "--hard", "--no-pki").returncode == 0
    _, m = make_event("install", now - 7200 - 20, 9, kid_device=revoked_device, key=forged_key)
    hh.send(m, revoked_device)
    hh.wait(lambda h: len(h.rejected) == len(cases) + 1, what="hard revocation")
    assert hh.rejected[-1]["reason"] == "revoked_key"


def test_late_and_permuted_arrival_gives_the_in_order_flags(bridge, hh):
    gas = ("GSME", MV.MPRN, "Commissioned")
    elec = ("ESME", MV.MPAN, "Commissioned")
    history = [
        make_event("install_and_leave", T0, 1, ev=evidence([elec, gas], wan=False, dcc=False), mprns=[MV.MPRN]),
        make_event("commission", T0 + DAY, 2, ev=evidence([elec, gas]), mprns=[MV.MPRN]),
        make_event("removal", T0 + 9 * DAY, 3, ev=evidence(hub=False), mprns=[MV.MPRN]),
        make_event("install", T0 + 10 * DAY, 4, ev=evidence([("ESME", MV.MPAN, "InstalledNotCommissioned")])),
        make_event("commission", T0 + 12 * DAY, 5, ev=evidence([elec])),
    ]
    events = [parse_payload(parse_sign1(m).payload) for _, m in history]
    want = policy.derive_all(events)
    shuffled = list(history)
    random.Random(7).shuffle(shuffled)
    for eid, m in shuffled:
        hh.send(m)
        hh.wait(lambda h, e=eid: e in h.acks, what="ack")
    for mpxn, f in want.items():
        status, site = bridge.get(f"/v1/sites/{mpxn}")
        assert (site["flag"], site["since"]) == (f.flag, f.effective_from), mpxn
    assert (want[MV.MPAN].flag, want[MV.MPAN].effective_from) == ("A", "2026-11-13")
    assert (want[MV.MPRN].flag, want[MV.MPRN].effective_from) == ("N", "2026-11-10")
    r = bridge.companion("replay")
    assert r.returncode == 0 and "0 differences" in r.stdout
    s = bridge.companion("site", MV.MPAN)
    assert s.returncode == 0 and "flag A since 2026-11-13" in s.stdout


def dtc_changes(out: Path) -> dict[str, list[tuple[str, str]]]:
    """Every flag change in the DTC files, per meter point, in file order."""
    seen: dict[str, list[tuple[str, str]]] = {}
    ids = set()
    for path in sorted(out.glob("*.dtc")):
        f = dtc.parse(path.read_text())
        assert f["header"][1] not in ids, "file ids are unique"
        ids.add(f["header"][1])
        for g in f["groups"]:
            seen.setdefault(g[1], []).append((g[2], g[3]))
    return seen


def test_sigkill_during_a_stream_loses_nothing_and_repeats_nothing(tmp_path, broker, store_url):
    cfg = tmp_path / "bridge.toml"
    cfg.write_text("dtc_batch_age = 0.3\ndtc_batch_size = 40\nbatch_max = 50\n")
    b = BridgeProcess(tmp_path, broker.url, "--config", str(cfg), "--client-id", "bridge-under-test", db=store_url)
    assert b.companion("keys", "add", DEVICE_ID, PUBLIC_KEY).returncode == 0
    b.start()
    hh = Handheld(broker.url, broker.pki)
    rnd = random.Random(42)
    mpans = [MV.mpan_check(f"1{n:011d}") for n in range(60)]
    stream = []
    for i, mpan in enumerate(mpans):  # each meter point: install (I), then commission (A)
        stream.append(make_event("install", T0 + i, 2 * i, mpans=[mpan],
                                 ev=evidence([("ESME", mpan, "InstalledNotCommissioned")])))
        stream.append(make_event("commission", T0 + DAY + i, 2 * i + 1, mpans=[mpan],
                                 ev=evidence([("ESME", mpan, "Commissioned")])))
    rnd.shuffle(stream)
    pending = dict(stream)
    kills = 0
    try:
        for n, (eid, m) in enumerate(stream):
            hh.send(m)
            if n in (40, 80):
                time.sleep(rnd.uniform(0.0, 0.15))
                b.kill()
                kills += 1
                b.start()
        missing = hh.resend_until_acked(pending, timeout=60, every=1.0)
        assert not missing, f"{len(missing)} events never acked"
        time.sleep(1.5)  # let the last DTC batch close
    finally:
        b.stop()
        hh.close()
    assert kills == 2
    store = Store(b.db)
    assert store.event_count() == len(stream)
    # Each meter point: I then A, in the store's outbox exactly once each, and in the DTC
    # files exactly once each, in version order.
    rows = store.conn().execute("SELECT mpxn, version, body, mqtt_done, dtc_file FROM outbox ORDER BY mpxn, version")
    by_mpxn: dict[str, list] = {}
    for mpxn, version, body, done, file_id in rows:
        by_mpxn.setdefault(mpxn, []).append((version, json.loads(body), done, file_id))
    assert sorted(by_mpxn) == sorted(mpans)
    files = dtc_changes(b.out)
    for mpxn, changes in by_mpxn.items():
        assert [c[0] for c in changes] == list(range(1, len(changes) + 1))
        assert all(c[2] == 1 and c[3] for c in changes), "every change published and filed"
        assert files[mpxn] == [(c[1]["flag"], c[1]["effective_from"].replace("-", "")) for c in changes]
        assert changes[-1][1]["flag"] == "A"
    r = b.companion("replay")
    assert r.returncode == 0, r.stdout


def test_embedded_broker_is_a_complete_deployment(tmp_path):
    b = BridgeProcess(tmp_path, None)
    assert b.companion("keys", "add", DEVICE_ID, PUBLIC_KEY).returncode == 0
    b.start()
    try:
        assert b.broker.startswith("mqtts://127.0.0.1:")
        hh = Handheld(b.broker, b.pki)
        eid, m = make_event("commission", T0, 1)
        hh.send(m)
        hh.wait(lambda h: eid in h.acks and MV.MPAN in h.flags, what="ack and flag via embedded broker")
        hh.close()
    finally:
        b.stop()


def test_keys_cli_errors_are_clear(tmp_path):
    b = BridgeProcess(tmp_path, None)
    r = b.companion("keys", "add", DEVICE_ID, "04" + "00" * 64)
    assert r.returncode == 2 and "not a P-256 public key" in r.stderr
    r = b.companion("keys", "add", "not-an-eui", PUBLIC_KEY)
    assert r.returncode == 2 and "EUI-64" in r.stderr
    r = b.companion("keys", "revoke", DEVICE_ID, "--no-pki")
    assert r.returncode == 2 and "no key registered" in r.stderr
    assert b.companion("keys", "add", DEVICE_ID, PUBLIC_KEY).returncode == 0
    r = b.companion("keys", "list")
    assert r.returncode == 0 and DEVICE_ID in r.stdout and "active" in r.stdout
    r = b.companion("site", "12345")
    assert r.returncode == 2 and "MPRN must be 6 to 10 digits" in r.stderr


def test_shared_subscription_on_mqtt5(tmp_path, broker):
    b = BridgeProcess(tmp_path, broker.url, "--share-group", "bridges")
    assert b.companion("keys", "add", DEVICE_ID, PUBLIC_KEY).returncode == 0
    b.start()
    try:
        hh = Handheld(broker.url, broker.pki)
        eid, m = make_event("commission", T0, 1)
        hh.send(m)
        hh.wait(lambda h: eid in h.acks, what="ack through $share/bridges/...")
        hh.close()
        assert b.get("/healthz")[1]["protocol"] == "MQTT 5"
    finally:
        b.stop()
    assert '"topic": "$share/bridges/flagwise/events/+"' in b.log.read_text()


def test_bridge_start_errors_are_clear(tmp_path):
    import socket
    import subprocess

    from hil.services import BIN

    # The admin listener on a free port: its default (8081) may be another test's at the time.
    pki = ["--pki", str(tmp_path / "pki"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
    r = subprocess.run([str(BIN / "companion"), "bridge", "--db", str(tmp_path / "no" / "such" / "x.db"),
                        "--http", "off", *pki], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cannot open the database" in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([str(BIN / "companion"), "bridge", "--db", str(tmp_path / "x.db"), "--out",
                            str(tmp_path / "out"), "--http", f"127.0.0.1:{port}", *pki], capture_output=True,
                           text=True, timeout=30)
    assert r.returncode == 1 and f"cannot serve the read API on 127.0.0.1:{port}" in r.stderr
    r = subprocess.run([str(BIN / "companion"), "bridge", "--broker", "mqtts://127.0.0.1:1", "--db",
                        str(tmp_path / "x.db"), "--http", "off", *pki], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "FLAGWISE_BROKER_WAIT": "0"})
    assert r.returncode == 1 and "cannot reach the broker" in r.stderr
    # Plain TCP is refused unless asked for, loudly.
    r = subprocess.run([str(BIN / "companion"), "bridge", "--broker", "mqtt://127.0.0.1:1", "--db",
                        str(tmp_path / "x.db"), "--http", "off", *pki], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--insecure" in r.stderr and "Traceback" not in r.stderr


def test_the_bridge_waits_for_a_broker_that_is_down_at_start(tmp_path, store_url):
    """Started before its broker (a reboot, a compose file), the bridge waits with a bounded
    backoff: alive (/healthz) but not ready (/readyz) until the broker comes, then it works."""
    from hil.services import Mosquitto, identity_files

    m = Mosquitto(tmp_path / "broker")
    identity_files(m.pki, "bridge", "bridge")
    b = BridgeProcess(tmp_path, m.url, "--pki", str(m.pki.root), db=store_url)
    assert b.companion("keys", "add", DEVICE_ID, PUBLIC_KEY).returncode == 0
    import threading

    started: list = []
    t = threading.Thread(target=lambda: started.append(b.start()))
    t.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (b.log.exists() and "waiting for the broker" in b.log.read_text()):
            time.sleep(0.2)
        assert "waiting for the broker" in b.log.read_text()
        m.start()
        t.join(60)
        assert started, b.log.read_text()[-2000:]
        hh = Handheld(m.url, m.pki)
        try:
            eid, msg = make_event("commission", T0, 1)
            hh.send(msg)
            hh.wait(lambda h: eid in h.acks, what="ack after the broker came up")
        finally:
            hh.close()
        assert b.get("/readyz")[0] == 200 and b.get("/healthz")[0] == 200
    finally:
        b.stop()
        t.join(10)
        m.stop()


def test_a_second_replica_with_the_same_client_id_is_refused_with_a_message(tmp_path, broker, store_url):
    """Two bridges sharing a client id would take the broker session from each other every
    second. The second is refused at start (exit 2), before it connects, and says why; the
    running one is never disturbed. A restart after a crash takes its own id back at once
    (test_replicas.py)."""
    first = BridgeProcess(tmp_path / "a", broker.url, "--share-group", "g", db=store_url, pki=broker.pki.root)
    (tmp_path / "a").mkdir()
    assert first.companion("keys", "add", DEVICE_ID, PUBLIC_KEY).returncode == 0
    first.start()
    (tmp_path / "b").mkdir()
    second = BridgeProcess(tmp_path / "b", broker.url, "--share-group", "g", db=store_url, pki=broker.pki.root)
    try:
        with pytest.raises(RuntimeError) as refused:
            second.start()
        assert second.proc.wait(20) == 2
        text = str(refused.value)
        assert "in use by a running bridge" in text and "each replica needs its own client id" in text
        assert "Traceback" not in text
        assert first.proc.poll() is None, "the running replica is left alone"
        assert "disconnected" not in first.log.read_text()
        hh = Handheld(broker.url, broker.pki)
        try:
            eid, msg = make_event("commission", T0, 1)
            hh.send(msg)
            hh.wait(lambda h: eid in h.acks, what="ack from the remaining replica")
        finally:
            hh.close()
    finally:
        second.stop()
        first.stop()
