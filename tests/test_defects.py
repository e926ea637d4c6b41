"""Defects found by trying the landed code from outside, each with the test that failed
before its fix (the trust boundary's own are in test_security.py and test_hostile_input.py)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path

import pytest

from companion import dtc
from companion.service.logs import JsonLogFormatter
from hil.services import BIN

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
    end = time.monotonic() + 15  # the store's gauges are read at most every 5 s (defect 16)
    while time.monotonic() < end:
        _, metrics = bridge.get("/metrics")
        if _metric(metrics, "flagwise_dtc_files_pending") == 0:
            break
        time.sleep(0.5)
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


def test_log_lines_go_out_in_batches_in_order_and_a_warning_at_once():
    """The bridge's log (BatchedStreamHandler): info lines within a fraction of a second, in
    their order; a warning written at once, with every line before it; nothing left at close."""
    import io

    from companion.service.logs import BatchedStreamHandler

    out = io.StringIO()
    h = BatchedStreamHandler(out)
    h.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("test-batched")
    logger.handlers[:] = [h]
    logger.propagate, logger.level = False, logging.INFO
    try:
        for i in range(3):
            logger.info("event", extra={"fields": {"n": i}})
        logger.warning("store down")
        lines = [json.loads(x) for x in out.getvalue().splitlines()]
        assert [(x["msg"], x.get("n")) for x in lines] == \
            [("event", 0), ("event", 1), ("event", 2), ("store down", None)]
        logger.info("event", extra={"fields": {"n": 3}})
        deadline = time.monotonic() + 5
        while '"n": 3' not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert '"n": 3' in out.getvalue(), "an info line waited more than the flush interval"
        logger.info("last", extra={"fields": {"n": 4}})
    finally:
        h.close()
    assert json.loads(out.getvalue().splitlines()[-1])["msg"] == "last"


def test_counters_that_repeat_or_go_backwards_are_kept_and_flagged(tmp_path):
    """A handheld restored from an old flash image signs new events with old counters: the
    events are evidence and kept, the device is shown as suspicious."""
    from companion.config import Config
    from companion.service.ingest import Incoming, Ingestor
    from companion.surfaces.site import format_site, site_view
    from companion.store.core import Store

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

    from companion.service.mqtt_link import _discard

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
    from companion.service.ingest import Incoming, Ingestor
    from companion.surfaces.replay import replay
    from companion.store.core import Store

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
    from companion.service.ingest import Incoming, Ingestor
    from companion.store.core import Store

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



def _ingestor(tmp_path, *devices):
    from companion.config import Config
    from companion.service.ingest import Ingestor
    from companion.store.core import Store

    store = Store(tmp_path / "b.db")
    for device_id, public in devices:
        store.add_key(device_id, bytes.fromhex(public))
    return store, Ingestor(store, Config(db=str(tmp_path / "b.db")).check())


SQUATTER_KEY = "1" * 64
SQUATTER_ID = "70-B3-D5-F1-00-00-00-66"


def test_a_handheld_cannot_squat_another_handhelds_event_id(tmp_path):
    """Defect 1: event ids were unique across handhelds, so a registered handheld that learnt
    another's event id stored its own event under it first, and the genuine one was refused
    as id_conflict on every re-send."""
    from companion.service.ingest import Incoming
    from companion.surfaces.site import events_view

    store, ing = _ingestor(tmp_path, (DEVICE_ID, PUBLIC_KEY), (SQUATTER_ID, MV.public_hex(SQUATTER_KEY)))
    genuine_id, genuine = make_event("commission", T0, 7)
    _, squat = make_event("removal", T0 + 60, 1, ev=evidence([("ESME", MV.MPAN, "Decommissioned")]),
                          key=SQUATTER_KEY, kid_device=SQUATTER_ID, event_id=bytes.fromhex(genuine_id))
    first = ing.handle_batch([Incoming(f"flagwise/events/{SQUATTER_ID}", squat, time.time())])[0]
    assert first.status == "stored"
    for _ in range(2):  # the genuine event, and its re-send
        out = ing.handle_batch([Incoming(f"flagwise/events/{DEVICE_ID}", genuine, time.time())])[0]
        assert (out.status, out.reason, out.event_id) in (("stored", None, genuine_id), ("duplicate", None, genuine_id))
    assert out.status == "duplicate"
    assert store.event_count() == 2
    devices = sorted(e["device_id"] for e in events_view(store, MV.MPAN))
    assert devices == sorted([DEVICE_ID, SQUATTER_ID])
    # The same handheld re-using its own id for other content is still a conflict.
    _, changed = make_event("install", T0 + 5, 8, event_id=bytes.fromhex(genuine_id))
    out = ing.handle_batch([Incoming(f"flagwise/events/{DEVICE_ID}", changed, time.time())])[0]
    assert (out.status, out.reason, out.event_id) == ("rejected", "id_conflict", None)


def test_the_event_key_migration_keeps_every_event_and_its_meter_points(tmp_path):
    """Defect 1's migration (schema v4): a v3 store's events, meter points and suspicious rows
    carry over, each under its device."""
    import sqlite3

    from companion.store import db as dbmod
    from companion.config import Config
    from companion.surfaces.site import events_view, site_view
    from companion.store.core import Store

    path = tmp_path / "v3.db"
    d = dbmod.Database(path)
    saved = dbmod.MIGRATIONS[:]
    try:
        dbmod.MIGRATIONS[:] = [m for m in saved if m[0] <= 3]
        d.upgrade()
    finally:
        dbmod.MIGRATIONS[:] = saved
    eid, msg = make_event("commission", T0, 1)
    c = sqlite3.connect(path)
    c.execute("INSERT INTO keys (device_id, public_key, added_at) VALUES (?, ?, ?)",
              (DEVICE_ID, bytes.fromhex(PUBLIC_KEY), 1.0))
    c.execute("INSERT INTO events VALUES (?, ?, 1, 'commission', ?, ?, ?, ?)",
              (bytes.fromhex(eid), DEVICE_ID, T0 + 5, T0, float(T0), msg))
    c.execute("INSERT INTO event_mpxns VALUES (?, ?)", (MV.MPAN, bytes.fromhex(eid)))
    c.execute("INSERT INTO suspicious VALUES (?, ?, 'clock_skew', 'x', 1.0)", (bytes.fromhex(eid), DEVICE_ID))
    c.commit()
    c.close()
    store = Store(path)
    assert store.db.version() == dbmod.LATEST
    assert [(e["device_id"], e["event_id"]) for e in events_view(store, MV.MPAN)] == [(DEVICE_ID, eid)]
    assert [s["kind"] for s in site_view(store, MV.MPAN, Config())["suspicious"]] == ["clock_skew"]


def test_reissuing_an_identity_revokes_its_earlier_certificate(tmp_path):
    """Defect 2: the CRL listed only the newest serial per identity, so a re-issued
    handheld's earlier certificate still connected with the same name and ACL."""
    from cryptography import x509

    from companion.service.pki import Pki

    pki = Pki(tmp_path / "pki")
    pki.init()
    first = x509.load_pem_x509_certificate(pki.issue_handheld(DEVICE_ID, bytes.fromhex(PUBLIC_KEY)).read_bytes())
    second = x509.load_pem_x509_certificate(pki.issue_handheld(DEVICE_ID, bytes.fromhex(PUBLIC_KEY)).read_bytes())
    crl = x509.load_pem_x509_crl(pki.crl.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(first.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(second.serial_number) is None
    ident = [i for i in pki.identities() if i.name == DEVICE_ID][0]
    assert ident.earlier == (first.serial_number,) and not ident.revoked
    pki.revoke(DEVICE_ID)
    crl = x509.load_pem_x509_crl(pki.crl.read_bytes())
    assert {r.serial_number for r in crl} >= {first.serial_number, second.serial_number}
    from .bridge_support import companion

    r = companion("pki", "list", "--pki", str(pki.root))
    assert r.returncode == 0 and f"earlier (revoked): {first.serial_number:x}" in r.stdout


def test_published_bridge_keys_follow_the_registry(tmp_path):
    """Defect 3: the bridge was named by name.split('.')[0], so revoking bridge.eu-1 left its
    key published and revoking `bridge` hid bridge.eu-1's; rolled-over keys stayed forever."""
    import datetime

    from companion.service.pki import Pki

    pki = Pki(tmp_path / "pki")
    pki.init()
    pki.issue("bridge", "bridge")
    pki.issue("bridge", "bridge.eu-1")
    by = {k["bridge"]: k for k in pki.bridge_public_keys()}
    assert set(by) == {"bridge", "bridge.eu-1"}
    pki.revoke("bridge.eu-1")
    assert [k["bridge"] for k in pki.bridge_public_keys()] == ["bridge"]
    assert by["bridge.eu-1"]["public_key"] not in {k["public_key"] for k in pki.bridge_public_keys()}
    old = pki.bridge_public_keys()[0]["public_key"]
    new = pki.new_signing_key("bridge", overlap_days=2).hex()
    now = datetime.datetime.now(datetime.timezone.utc)
    published = {k["public_key"]: k for k in pki.bridge_public_keys()}
    assert published[new]["status"] == "current" and published[old]["status"] == "rolled"
    assert published[old]["until"] is not None
    later = pki.bridge_public_keys(now + datetime.timedelta(days=3))
    assert [k["public_key"] for k in later] == [new]


def test_pki_commands_refuse_a_missing_pki(tmp_path):
    """Defect 21: `companion pki list --pki MISSING` printed nothing and exited 0."""
    from .bridge_support import companion

    r = companion("pki", "list", "--pki", str(tmp_path / "missing"))
    assert r.returncode == 2 and "no PKI in" in r.stderr and "companion pki init" in r.stderr
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("key, value", [("batch_max", 100_000), ("batch_max", 0), ("keepalive", -1),
                                        ("dtc_batch_age", 0), ("max_future", 10**12)])
def test_every_numeric_setting_is_bounded_at_load(tmp_path, key, value):
    """Defect 8: batch_max had no bound; past the databases' parameter limits every batch
    failed, and was retried forever. A bound is refused at load, exit 2 naming the key."""
    from .bridge_support import companion

    cfg = tmp_path / "bridge.toml"
    cfg.write_text(f"{key} = {value}\n")
    r = companion("bridge", "--config", str(cfg), "--db", str(tmp_path / "b.db"), "--pki", str(tmp_path / "pki"))
    assert r.returncode == 2 and key in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "b.db").exists() and not (tmp_path / "pki").exists()
    env_r = subprocess.run([str(BIN / "companion"), "bridge", "--db", str(tmp_path / "b.db")], capture_output=True,
                           text=True, timeout=60, env={**os.environ, f"FLAGWISE_{key.upper()}": str(value)})
    assert env_r.returncode == 2 and key in env_r.stderr


def test_store_errors_are_transient_only_on_a_positive_list(tmp_path, postgres):
    """Defect 8: every sqlite3.OperationalError (a statement with too many variables among
    them) and every psycopg.OperationalError was retried forever."""
    import sqlite3

    import psycopg

    from companion.store.db import Database, StoreUnavailable

    lite = Database(tmp_path / "x.db")
    try:
        lite.conn().execute("SELECT " + ",".join(["?"] * 40_000), (1,) * 40_000)
    except sqlite3.OperationalError as exc:
        too_many = exc
    assert not lite.is_transient(too_many)
    assert lite.is_transient(sqlite3.OperationalError("database is locked"))
    assert not lite.is_transient(sqlite3.IntegrityError("UNIQUE constraint failed"))
    pg = Database(postgres.new_database())
    with pytest.raises(psycopg.Error) as syntax:
        pg.conn().execute("SELEC 1")
    assert not pg.is_transient(syntax.value)
    with pytest.raises(psycopg.Error) as params:
        pg.conn().execute("SELECT " + ",".join(["?"] * 70_000), (1,) * 70_000)
    assert not pg.is_transient(params.value)
    pid = pg.conn().execute("SELECT pg_backend_pid()").fetchone()[0]
    Database(pg.url).conn().execute("SELECT pg_terminate_backend(?)", (pid,))
    with pytest.raises(psycopg.Error) as gone:
        pg.conn().execute("SELECT 1")
    assert pg.is_transient(gone.value)
    assert pg.is_transient(StoreUnavailable("down"))


def test_an_outage_is_a_503_with_a_generic_message_not_a_400(tmp_path):
    """Defect 11: StoreError was a ValueError, so the read API answered 400 with the store's
    message (its URL among it) when the database was down."""
    from companion.surfaces.api import Api
    from companion.config import Config
    from companion.store.db import Database
    from companion.service.metrics import Metrics
    from companion.store.core import Store

    store = Store(tmp_path / "b.db")
    token = store.add_token("ops")
    api = Api(store, Config(), Metrics(), lambda ready=False: {"status": "ok"})
    store.db = Database("postgresql://flagwise:secret@127.0.0.1:1/gone")
    got: list[str] = []
    body = b"".join(api({"REQUEST_METHOD": "GET", "PATH_INFO": f"/v1/sites/{MV.MPAN}",
                         "HTTP_AUTHORIZATION": f"Bearer {token}"}, lambda status, headers: got.append(status)))
    assert got == ["503 Service Unavailable"]
    assert b"secret" not in body and b"127.0.0.1" not in body and b"unavailable" in body


def test_a_store_failure_in_the_dtc_writer_backs_off_and_is_reported(tmp_path):
    """Defect 14: only OSError was caught, so a database error while assigning a file logged
    a traceback every second; the writer now backs off on any failure and keeps the error."""
    from companion.config import Config
    from companion.service.ingest import Incoming
    from companion.service.dtc_writer import DtcWriter

    store, ing = _ingestor(tmp_path, (DEVICE_ID, PUBLIC_KEY))
    ing.handle_batch([Incoming(f"flagwise/events/{DEVICE_ID}", make_event("commission", T0, 1)[1], time.time())])
    writer = DtcWriter(store, Config(out=str(tmp_path / "out"), dtc_batch_age=0.01))
    store.conn().execute("ALTER TABLE dtc_files RENAME TO dtc_files_gone")
    with pytest.raises(Exception):
        writer.tick(now=time.time() + 5)
    assert writer.error is not None and "dtc_files" in writer.error
    assert writer.tick(now=time.time() + 5) == []  # backing off: not tried again at once
    store.conn().execute("ALTER TABLE dtc_files_gone RENAME TO dtc_files")
    assert writer.oldest_pending(time.time() + 100) >= 99
    assert len(writer.tick(now=time.time() + 5, force=True)) == 1 and writer.error is None
    assert writer.oldest_pending() == 0


def test_readyz_names_dtc_changes_waiting_past_the_alarm(tmp_path, broker, start_bridge, watch):
    """Defect 14: an unwritable DTC folder was invisible to /readyz."""
    cfg = tmp_path / "bridge.toml"
    cfg.write_text("dtc_batch_age = 0.1\ndtc_alarm_age = 1\n")
    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY, "--config", str(cfg))
    bridge.out.rmdir() if bridge.out.exists() else None
    bridge.out.write_text("not a folder")
    eid, m = make_event("commission", T0, 1)
    watch.send(m)
    watch.wait(lambda h: eid in h.acks, what="ack")
    end = time.monotonic() + 20
    while time.monotonic() < end:
        status, body = bridge.get("/readyz")
        problems = " ".join(body["problems"])
        # The alarm can come before the writer's first failed attempt (it tries once a second):
        # wait for both, as an operator would see them.
        if "DTC files" in problems and "last error" in problems:
            break
        time.sleep(0.2)
    assert status == 503 and "DTC files" in problems and "last error FileExistsError" in problems, body
    _, metrics = bridge.get("/metrics")
    assert _metric(metrics, 'flagwise_dtc_errors_total{kind="folder"}') >= 1


def test_replicas_see_each_others_revocations_and_counters(postgres):
    """Defect 10: keys and revocation times were read before the batch's transaction and
    counters checked before any lock, so a revocation committed in between let an event in,
    and two replicas could each miss the other's event with the same counter."""
    import threading

    from companion.config import Config
    from companion.service.ingest import Incoming, Ingestor
    from companion.store.core import Store

    url = postgres.new_database()
    store_a = Store(url)
    store_a.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
    a, b = (Ingestor(Store(url), Config(db=url).check()) for _ in range(2))
    topic = f"flagwise/events/{DEVICE_ID}"

    # A revocation that lands between the batch's key read and its transaction.
    revoking = Store(url)
    real_tx = a.store.db.tx

    def tx_after_revocation(*args, **kw):
        revoking.revoke_key(DEVICE_ID, at=T0 - 86400)
        return real_tx(*args, **kw)

    a.store.db.tx = tx_after_revocation  # type: ignore[method-assign]
    out = a.handle_batch([Incoming(topic, make_event("commission", T0, 1)[1], time.time())])[0]
    assert (out.status, out.reason) == ("rejected", "revoked_key")
    assert store_a.event_count() == 0
    a.store.db.tx = real_tx  # type: ignore[method-assign]

    # Two replicas, one event each with the same counter: the second sees the first's.
    url2 = postgres.new_database()
    Store(url2).add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
    a, b = (Ingestor(Store(url2), Config(db=url2).check()) for _ in range(2))
    inserted = threading.Event()
    real_insert = a.store.insert_events

    def slow_insert(db, rows):
        result = real_insert(db, rows)
        inserted.set()
        time.sleep(1.0)  # holding the transaction open, as a busy replica does
        return result

    a.store.insert_events = slow_insert  # type: ignore[method-assign]
    outs: dict[str, object] = {}
    t = threading.Thread(target=lambda: outs.update(a=a.handle_batch(
        [Incoming(topic, make_event("commission", T0, 9, mpans=[MV.MPAN])[1], time.time())])[0]))
    t.start()
    assert inserted.wait(10)
    other = MV.mpan_check("177777777777")
    outs["b"] = b.handle_batch([Incoming(topic, make_event("install", T0 + 30, 9, mpans=[other])[1], time.time())])[0]
    t.join(10)
    assert [o.status for o in (outs["a"], outs["b"])] == ["stored", "stored"]  # type: ignore[attr-defined]
    assert outs["b"].suspicious == ["counter_reused"]  # type: ignore[attr-defined]


def test_only_the_bridge_and_db_upgrade_make_a_store(tmp_path):
    """Defect 21: `keys add` with a bad key and `tokens add` with a mistyped --db left an
    empty store behind."""
    from .bridge_support import companion

    db = tmp_path / "typo.db"
    r = companion("keys", "add", DEVICE_ID, "04" + "00" * 64, "--db", str(db))
    assert r.returncode == 2 and "P-256" in r.stderr and not db.exists()
    r = companion("keys", "add", DEVICE_ID, PUBLIC_KEY, "--db", str(db))
    assert r.returncode == 2 and "no store at" in r.stderr and not db.exists()
    r = companion("tokens", "add", "ops", "--db", str(db))
    assert r.returncode == 2 and "no store at" in r.stderr and not db.exists()
    assert companion("db", "upgrade", "--db", str(db)).returncode == 0
    assert companion("keys", "add", DEVICE_ID, PUBLIC_KEY, "--db", str(db)).returncode == 0


def test_console_cookies_are_secure_behind_a_trusted_tls_proxy(tmp_path, broker, start_bridge):
    """Defect 4: `Secure` was never set behind a TLS-terminating reverse proxy. With
    trusted_proxy set, the proxy's X-Forwarded-Proto: https makes the cookie Secure; the same
    header from anyone else is not believed."""
    import urllib.request

    cfg = tmp_path / "proxy.toml"
    cfg.write_text('trusted_proxy = "127.0.0.1"\n')
    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY, "--config", str(cfg))

    def login(headers: dict[str, str]) -> str:
        req = urllib.request.Request(bridge.http + "/console/login", data=f"token={bridge.token}".encode(),
                                     headers={"Content-Type": "application/x-www-form-urlencoded", **headers})

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **kw):
                return None

        try:
            urllib.request.build_opener(NoRedirect).open(req, timeout=10)
        except urllib.error.HTTPError as e:
            assert e.code == 303, e.read()[:200]
            return str(e.headers["Set-Cookie"])
        raise AssertionError("no redirect")

    host = bridge.http.split("://", 1)[1]
    cookie = login({"X-Forwarded-Proto": "https", "Origin": f"https://{host}"})
    assert "; Secure" in cookie
    plain = login({"Origin": f"http://{host}"})
    assert "Secure" not in plain


def test_liveness_answers_while_the_public_api_is_exhausted(tmp_path, broker, start_bridge):
    """Defect 5: 2,100 slow connections (past the 2,000 cap) made /healthz time out, so a
    liveness probe restarted a healthy bridge. The admin listener is apart from them."""
    import socket
    import urllib.request

    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY)
    host, port = bridge.http.split("://", 1)[1].rsplit(":", 1)
    held = []
    try:
        for _ in range(2100):
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"GET /v1/keys HTTP/1.1\r\nHost: x\r\n")  # never finished
            held.append(s)
        with pytest.raises(OSError):  # the public port is exhausted (its liveness would time out)
            urllib.request.urlopen(bridge.http + "/healthz", timeout=2).read()
        for path in ("/healthz", "/readyz", "/metrics"):
            with urllib.request.urlopen(bridge.admin + path, timeout=2) as r:
                assert r.status == 200, path
        with pytest.raises(urllib.error.HTTPError) as nothing_else:
            urllib.request.urlopen(bridge.admin + "/v1/keys", timeout=2)
        assert nothing_else.value.code == 404
    finally:
        for s in held:
            s.close()


def test_each_received_message_is_acknowledged_once():
    """Defect 9: a message still queued and its redelivery (the same packet id) both got a
    PUBACK; the second could acknowledge a newer message reusing the id before it was stored."""
    from companion.service.flow import AckLedger

    ledger = AckLedger()
    first = ledger.receive(5, 1)
    assert first is not None
    assert ledger.receive(5, 1) is None  # the redelivery, while the first copy is held: merged
    assert ledger.release(first) == (5, 1)  # one PUBACK for packet id 5
    newer = ledger.receive(5, 1)  # the broker reuses id 5 for a newer message
    assert newer is not None
    assert ledger.release(first) is None  # a stale token never acknowledges it
    assert ledger.release(newer) == (5, 1)
    assert ledger.release(newer) is None  # and never twice
    # A new session (no session_present): acks of messages held from the old one are not sent.
    held = ledger.receive(7, 1)
    ledger.new_session()
    again = ledger.receive(7, 1)  # the broker sends it again in the new session
    assert again is not None and ledger.release(held) is None and ledger.release(again) == (7, 1)
    assert ledger.release(ledger.receive(9, 0)) is None  # QoS 0: nothing to acknowledge


def test_an_event_over_the_bridges_limit_is_answered_not_dropped(broker, start_bridge, watch):
    """Defect 12: the bridge asked the broker for nothing over max_message + 1 KiB, so events of
    5-64 KiB were dropped by mosquitto with no answer to the handheld and no metric."""
    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY)
    for size in (6_000, 60_000):
        watch.send(b"\xa0" * size)
    watch.wait(lambda h: sum(r.get("reason") == "oversize" for r in h.rejected) == 2, what="two oversize rejections")
    _, metrics = bridge.get("/metrics")
    assert _metric(metrics, 'flagwise_events_rejected_total{reason="oversize"}') == 2


def test_reconcile_keeps_every_row_once_and_never_reuses_a_file_id(tmp_path):
    """Defect 17: a valid row after a bad row for the same meter point was neither reconciled
    nor listed as bad; correction files restarted at RC00000001 every run."""
    import csv
    import json

    from companion.service.ingest import Incoming

    from .bridge_support import companion

    store, ing = _ingestor(tmp_path, (DEVICE_ID, PUBLIC_KEY))
    ing.handle_batch([Incoming(f"flagwise/events/{DEVICE_ID}", make_event("commission", T0, 1)[1], time.time())])
    store.close()
    extract = tmp_path / "extract.csv"
    extract.write_text(f"mpxn,flag,effective_from\n{MV.MPAN},Q,2024-03-01\n{MV.MPAN},,\n{MV.MPAN},I,2024-01-01\n")
    names = []
    for run in ("one", "two"):
        r = companion("reconcile", str(extract), "--db", str(tmp_path / "b.db"), "--out", str(tmp_path / run),
                      "--no-progress", "--correct", "blank_after_install")
        assert r.returncode == 0, r.stderr
        summary = json.loads((tmp_path / run / "summary.json").read_text())
        assert (summary["rows"], summary["reconciled"], summary["bad_rows"], summary["duplicates"]) == (3, 1, 1, 1)
        bad = list(csv.DictReader((tmp_path / run / "bad_rows.csv").open()))
        assert [(b["line"], b["problem"][:4]) for b in bad] == [("2", "flag"), ("4", "dupl")]
        assert "duplicate of line 3" in bad[1]["problem"]
        found = list(csv.DictReader((tmp_path / run / "discrepancies.csv").open()))
        assert [(d["mpxn"], d["class"]) for d in found] == [(MV.MPAN, "blank_after_install")]
        names += summary["files"]
    assert len(names) == 2 and len(set(names)) == 2, names


def _wsgi(api, path: str, token: str | None = None) -> tuple[str, bytes]:
    import urllib.parse

    got: list[str] = []
    p, _, q = path.partition("?")
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": urllib.parse.unquote(p), "QUERY_STRING": q}
    if token:
        env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    body = b"".join(api(env, lambda status, headers: got.append(status)))
    return got[0], body


def test_open_endpoints_cost_little_whatever_the_rate(tmp_path, monkeypatch):
    """Defect 16: /v1/keys read every private key per request, /metrics ran count(*) queries
    per scrape, and /v1/sites/{mpxn}/events decoded the whole history twice with no paging."""
    import json

    from cryptography.hazmat.primitives import serialization

    from companion.surfaces.api import Api
    from companion.config import Config
    from companion.service.ingest import Incoming
    from companion.service.metrics import Metrics
    from companion.service.pki import Pki

    pki = Pki(tmp_path / "pki")
    pki.init()
    pki.issue("bridge", "bridge")
    store, ing = _ingestor(tmp_path, (DEVICE_ID, PUBLIC_KEY))
    for n in range(25):
        ing.handle_batch([Incoming(f"flagwise/events/{DEVICE_ID}", make_event("install", T0 + n * 60, n)[1],
                                   time.time())])
    token = store.add_token("ops")
    api = Api(store, Config(), Metrics(), lambda ready=False: {"status": "ok"}, pki)

    def no_private_keys(*a, **kw):
        raise AssertionError("a private key was read to answer /v1/keys")

    monkeypatch.setattr(serialization, "load_pem_private_key", no_private_keys)
    for _ in range(3):
        status, body = _wsgi(api, "/v1/keys")
        assert status.startswith("200") and len(json.loads(body)["keys"]) == 1
    monkeypatch.undo()

    counted = {"n": 0}
    real_depth = store.outbox_depth

    def depth():
        counted["n"] += 1
        return real_depth()

    store.outbox_depth = depth  # type: ignore[method-assign]
    for _ in range(50):
        assert _wsgi(api, "/metrics")[0].startswith("200")
    assert counted["n"] == 1  # one read for fifty scrapes

    decoded = {"n": 0}
    import companion.store.core as event_mod  # where stored events are decoded (Store._event)

    real = event_mod.parse_payload

    def counting(payload):
        decoded["n"] += 1
        return real(payload)

    monkeypatch.setattr(event_mod, "parse_payload", counting)
    seen, cursor, pages = [], None, 0
    while True:
        status, body = _wsgi(api, f"/v1/sites/{MV.MPAN}/events?limit=10" + (f"&cursor={cursor}" if cursor else ""),
                             token)
        assert status.startswith("200"), body
        page = json.loads(body)
        pages += 1
        assert len(page["events"]) <= 10
        seen += [(e["device_id"], e["event_id"]) for e in page["events"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 25
    assert decoded["n"] == 25  # each event decoded once, on its own page
    assert [e["counter"] for e in json.loads(_wsgi(api, f"/v1/sites/{MV.MPAN}/events?limit=3", token)[1])["events"]] \
        == [0, 1, 2]
    for bad in ("limit=0", "limit=1001", "limit=x", "cursor=abc", "cursor=" + "9" * 200):
        status, body = _wsgi(api, f"/v1/sites/{MV.MPAN}/events?{bad}", token)
        assert status.startswith("400"), (bad, body)
    assert _wsgi(api, "/v1/sites/2000012345672/events", token)[0].startswith("404")


FLOOD_KEY = "2" * 64
FLOOD_ID = "70-B3-D5-F1-00-00-00-F1"


def test_a_flooding_handheld_leaves_the_others_acks_flowing(tmp_path, broker, start_bridge, watch):
    """Defect 15: one registered handheld sending 4 KB garbage for 10 s grew the broker to
    548 MiB, the bridge log by 32 MB, and delayed another handheld's acks 22 s. Its messages
    past device_rate are set aside unread, repeated log lines are suppressed with a count,
    and the other handheld's events are acked during the flood."""
    import threading

    from hil.services import mqtt_client

    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY)
    assert bridge.companion("keys", "add", FLOOD_ID, MV.public_hex(FLOOD_KEY)).returncode == 0
    watch.send(make_event("install", T0, 0)[1], FLOOD_ID)  # its identity at the broker, and the ACL loaded
    flood = mqtt_client(broker.pki, FLOOD_ID, "handheld")
    flood.max_inflight_messages_set(1000)
    flood.connect("127.0.0.1", broker.port)
    flood.loop_start()
    stop = threading.Event()
    sent = {"n": 0}

    def pour():
        garbage = b"\xa0" + b"\x00" * 4095
        while not stop.is_set():
            flood.publish(f"flagwise/events/{FLOOD_ID}", garbage, qos=1)
            sent["n"] += 1
            if sent["n"] % 1000 == 0:
                time.sleep(0.01)

    t = threading.Thread(target=pour, daemon=True)
    began = time.monotonic()
    t.start()
    try:
        time.sleep(1.0)
        # The other handheld's view: its own ack topic only (the watch reads everything, the
        # flood included, and would time its own backlog).
        acks: list[float] = []
        listener = mqtt_client(broker.pki, f"ack-listener-{os.getpid()}", "auditor")
        listener.on_message = lambda c, u, msg: acks.append(time.monotonic())
        listener.on_connect = lambda c, *a: c.subscribe(f"flagwise/acks/{DEVICE_ID}", qos=1)
        listener.connect("127.0.0.1", broker.port)
        listener.loop_start()
        time.sleep(0.5)
        delays: list[float] = []
        for n in range(5):  # the other handheld, during the flood
            _, m = make_event("commission", T0 + 60 * n, n + 1)
            start = time.monotonic()
            watch.send(m)
            end = start + 30
            while len(acks) <= n and time.monotonic() < end:
                time.sleep(0.005)
            assert len(acks) > n, "no ack during the flood"
            delays.append(acks[n] - start)
        listener.loop_stop()
        listener.disconnect()
    finally:
        stop.set()
        t.join(10)
        flood.loop_stop()
        flood.disconnect()
        lasted = time.monotonic() - began
        status = Path(f"/proc/{broker._broker.proc.pid}/status").read_text()
        peak = [ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM")][0]
        print(f"flood: {sent['n']} messages in {lasted:.1f} s; broker peak RSS {int(peak) // 1024} MiB; "
              "the other handheld's ack delays (s): " + ", ".join(f"{d:.2f}" for d in delays))
    _, metrics = bridge.get("/metrics")
    assert _metric(metrics, "flagwise_events_shed_total") > 0
    log_text = bridge.log.read_text()
    windows = lasted // 10 + 2
    assert log_text.count('"reason": "malformed_cbor"') <= 20 * windows, "repeated rejections were not rate-limited"
    assert len(log_text) < 1_000_000
