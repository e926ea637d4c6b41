"""Defects found by trying the landed code from outside, each with the test that failed
before its fix (the trust boundary's own are in test_security.py and test_hostile_input.py)."""

from __future__ import annotations

import logging
import time

import pytest

from companion import dtc
from companion.bridge import JsonLogFormatter

from .bridge_support import DEVICE_ID, MV, PUBLIC_KEY, evidence, make_event

T0 = 1793491200  # 2026-11-01


def _changes(out) -> dict[str, list[tuple[str, str]]]:
    seen: dict[str, list[tuple[str, str]]] = {}
    for p in sorted(out.glob("*.dtc")):
        for g in dtc.parse(p.read_text())["groups"]:
            seen.setdefault(g[1], []).append((g[2], g[3]))
    return seen


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


def test_a_failed_dtc_write_is_retried_while_the_bridge_runs(tmp_path, broker, start_bridge, watch):
    cfg = tmp_path / "bridge.toml"
    cfg.write_text("dtc_batch_age = 0.2\ndtc_batch_size = 5\n")
    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY, "--config", str(cfg))
    mpans = [MV.mpan_check(f"1{n:011d}") for n in range(30)]

    def send(batch):
        ids = []
        for n, mpan in batch:
            eid, m = make_event("commission", T0 + n, n, mpans=[mpan], ev=evidence([("ESME", mpan, "Commissioned")]))
            ids.append(eid)
            watch.send(m)
        watch.wait(lambda h: all(e in h.acks for e in ids), what="acks")

    send(list(enumerate(mpans[:10])))
    end = time.monotonic() + 20
    while len(_changes(bridge.out)) < 10 and time.monotonic() < end:
        time.sleep(0.1)
    assert len(_changes(bridge.out)) == 10
    # The folder goes away (a full disk, a lost mount): a file where it was.
    saved = tmp_path / "out-saved"
    bridge.out.rename(saved)
    bridge.out.write_text("not a folder")
    send(list(enumerate(mpans[10:], start=10)))
    end = time.monotonic() + 20
    while time.monotonic() < end:
        _, metrics = bridge.get("/metrics")
        if _metric(metrics, "flagwise_dtc_files_pending") >= 1:
            break
        time.sleep(0.2)
    assert _metric(metrics, "flagwise_dtc_files_pending") >= 1
    assert _metric(metrics, 'flagwise_outbox_depth{output="dtc"}') == 20
    assert "retrying with backoff" in bridge.log.read_text()
    # Back again, without a restart: every change lands, exactly once.
    bridge.out.unlink()
    saved.rename(bridge.out)
    end = time.monotonic() + 60
    while len(_changes(bridge.out)) < 30 and time.monotonic() < end:
        time.sleep(0.2)
    seen = _changes(bridge.out)
    assert sorted(seen) == sorted(mpans)
    assert all(v == [("A", "20261101")] or len(v) == 1 for v in seen.values()), seen
    _, metrics = bridge.get("/metrics")
    assert _metric(metrics, "flagwise_dtc_files_pending") == 0
    assert _metric(metrics, 'flagwise_outbox_depth{output="dtc"}') == 0
    assert bridge.proc.poll() is None


def test_internal_error_log_lines_carry_the_traceback():
    try:
        raise KeyError("boom")
    except KeyError:
        import sys

        rec = logging.LogRecord("companion", logging.ERROR, __file__, 1, "internal error", (), sys.exc_info())
    line = JsonLogFormatter().format(rec)
    assert "Traceback" in line and "KeyError" in line


def test_counters_that_repeat_or_go_backwards_are_kept_and_flagged(tmp_path):
    """A handheld restored from an old flash image signs new events with old counters: the
    events are evidence and kept, the device is shown as suspicious."""
    from companion.config import Config
    from companion.ingest import Incoming, Ingestor
    from companion.site import format_site, site_view
    from companion.store import Store

    store = Store(tmp_path / "b.db")
    store.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
    ing = Ingestor(store, Config(db=str(tmp_path / "b.db")).check())
    topic = f"flagwise/events/{DEVICE_ID}"

    def send(m):
        return ing.handle_batch([Incoming(topic, m, time.time())])[0]

    first = send(make_event("install", T0, 5)[1])
    late_backlog = send(make_event("install", T0 - 3600, 4)[1])  # older and lower: normal
    assert first.suspicious == [] and late_backlog.suspicious == []
    reused = send(make_event("commission", T0 + 60, 5)[1])
    backwards = send(make_event("commission", T0 + 120, 2)[1])
    assert reused.status == backwards.status == "stored"
    assert reused.suspicious == ["counter_reused"]
    assert "counter_backwards" in backwards.suspicious
    assert store.event_count() == 4
    view = site_view(store, MV.MPAN, Config())
    assert {s["kind"] for s in view["suspicious"]} == {"counter_reused", "counter_backwards"}
    assert "SUSPICIOUS handheld " + DEVICE_ID in format_site(view, [])
    assert store.suspicious_devices() == 1


def test_junit_time_is_the_runs_wall_time_with_each_scenarios_steps(tmp_path):
    import xml.etree.ElementTree as ET

    from hil.scenario import Result, write_junit

    rs = [Result(name, True, secs, timeline=["   0.1s step 1: do=job"]) for name, secs in (("a", 9.0), ("b", 8.0))]
    write_junit(rs, tmp_path / "j.xml", wall=10.0)
    suite = ET.parse(tmp_path / "j.xml").getroot()
    assert suite.get("time") == "10.0" and suite.get("timestamp")
    assert [c.find("system-out").text for c in suite] == ["   0.1s step 1: do=job"] * 2


def test_make_firmware_says_whether_anything_was_rebuilt(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parent.parent / "tools" / "build_firmware.py"
    first = subprocess.run([sys.executable, str(tool), "--out", str(tmp_path)], capture_output=True, text=True)
    again = subprocess.run([sys.executable, str(tool), "--out", str(tmp_path)], capture_output=True, text=True)
    assert first.returncode == again.returncode == 0
    n = len(list(tmp_path.rglob("*.mpy")))
    assert f"rebuilt {n} of {n} modules" in first.stdout
    assert f"{n} modules up to date" in again.stdout


def test_a_discarded_mqtt_client_closes_its_socket():
    """The MQTT 5 attempt that a 3.1.1-only broker never answers is dropped with its socket
    (it stayed open before)."""
    import socket

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from companion.bridge import _discard

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="x", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", srv.getsockname()[1])
    c.loop_start()
    conn, _ = srv.accept()
    conn.settimeout(5)
    conn.recv(1024)  # the CONNECT, never answered
    _discard(c)
    rest = b""
    while chunk := conn.recv(1024):  # a DISCONNECT may come first; then the end of the stream
        rest += chunk
    assert rest in (b"", b"\xe0\x00"), rest
    conn.close()
    srv.close()


def test_a_late_event_that_moves_the_deciding_event_is_a_new_version(tmp_path):
    """Same value, same date, a new deciding event with an override: a new version, so the
    override is shown (it went silent before), and replay sees the whole flag."""
    import json

    from companion.config import Config
    from companion.ingest import Incoming, Ingestor
    from companion.replay import replay
    from companion.store import Store

    store = Store(tmp_path / "b.db")
    store.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
    ing = Ingestor(store, Config(db=str(tmp_path / "b.db")).check())
    topic = f"flagwise/events/{DEVICE_ID}"
    later, m1 = make_event("commission", T0 + 3600, 2)
    earlier, m0 = make_event("commission", T0 + 60, 1,
                             override={"reason": "DCC confirmed the hub by phone", "checks": ["wan_down"]})
    for m in (m1, m0):  # the earlier one arrives late
        ing.handle_batch([Incoming(topic, m, time.time())])
    rows = [json.loads(b) for (b,) in store.conn().execute("SELECT body FROM outbox ORDER BY version")]
    assert [(r["version"], r["flag"], r["effective_from"], r["event_id"]) for r in rows] == [
        (1, "A", "2026-11-01", later), (2, "A", "2026-11-01", earlier)]
    assert rows[1]["override"].startswith("DCC confirmed the hub by phone")
    assert rows[1]["code"] == "commissioned"
    n, diffs = replay(store)
    assert (n, diffs) == (1, [])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_batch_is_judged_as_its_events_one_at_a_time(tmp_path, request, store_url, backend):
    """The ingest reads and writes a batch in a few statements (keys, inserts, counter checks,
    flags): its outcomes, anomalies, final flags and stored links are those of the same
    events handled one at a time, on both backends."""
    from companion.config import Config
    from companion.ingest import Incoming, Ingestor
    from companion.store import Store

    m1, m2, m3 = MV.mpan_check("100000000001"), MV.mpan_check("100000000002"), MV.mpan_check("100000000003")
    dup = make_event("install", T0 + 10, 11, mpans=[m2], ev=evidence([("ESME", m2, "InstalledNotCommissioned")]))
    same_id = bytes(range(16))
    stream = [
        make_event("install", T0, 10, mpans=[m1], ev=evidence([("ESME", m1, "InstalledNotCommissioned")]))[1],
        dup[1],
        make_event("commission", T0 + 20, 12, mpans=[m1, m3],
                   ev=evidence([("ESME", m1, "Commissioned"), ("ESME", m3, "Commissioned")]))[1],
        dup[1],  # the same event again: a duplicate
        make_event("commission", T0 + 30, 12, mpans=[m2], ev=evidence([("ESME", m2, "Commissioned")]))[1],  # reused
        make_event("commission", T0 + 40, 3, mpans=[m3], ev=evidence([("ESME", m3, "Commissioned")]))[1],  # backwards
        make_event("install", T0 + 50, 20, mpans=[m3], event_id=same_id)[1],
        make_event("removal", T0 + 60, 21, mpans=[m3], event_id=same_id)[1],  # same id, other content
    ]

    def judge(url: str, batches: list[list[bytes]]) -> tuple[list, dict]:
        store = Store(url, upgrade=True)
        store.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
        ing = Ingestor(store, Config(db=url).check())
        topic = f"flagwise/events/{DEVICE_ID}"
        outs = []
        for batch in batches:
            # (An ack tells the flag as the batch left it, so acks of one batch may differ.)
            outs += [(o.status, o.reason, o.suspicious) for o in
                     ing.handle_batch([Incoming(topic, m, T0 + 100) for m in batch])]
        points = {}
        for m in (m1, m2, m3):
            f = store.flag(m)
            points[m] = (f.flag, f.effective_from, f.event_count,  # not the version: fewer steps in one batch
                         sorted(e.id.hex() for _, _, e in store.events_for(m)))
        return outs, points

    one_at_a_time = judge(store_url, [[m] for m in stream])
    other = str(tmp_path / "batch.db") if backend == "sqlite" else request.getfixturevalue("postgres").new_database()
    as_one_batch = judge(other, [stream])
    assert as_one_batch == one_at_a_time
    outs, points = one_at_a_time
    assert [o[0] for o in outs] == ["stored", "stored", "stored", "duplicate", "stored", "stored", "stored",
                                    "rejected"]
    assert outs[4][2] == ["counter_reused"] and "counter_backwards" in outs[5][2] and outs[7][1] == "id_conflict"
    assert points[m1][0] == "A" and points[m2][0] == "A" and len(points[m3][3]) == 3

