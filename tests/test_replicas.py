"""Three bridge replicas on one PostgreSQL store, sharing the ingest through an MQTT 5 shared
subscription on the real mosquitto, while a random replica is SIGKILLed every ~2 s and
restarted: every event is stored once, every flag change is made once, is in exactly one
DTC line across all replicas' folders, and the broker retains each meter point's latest
version; replay finds nothing to correct."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest

from companion import dtc
from companion.store.core import Store
from hil.services import BridgeProcess, identity_files

from .bridge_support import DEVICE_ID, MV, PUBLIC_KEY, Handheld, evidence, make_event

T0 = 1793491200  # 2026-11-01
DAY = 86400
POINTS = 2500  # meter points: an install (I) then a commission (A) each, 5,000 events


@pytest.fixture
def backend() -> str:
    return "postgres"


def _stream() -> list[tuple[str, bytes]]:
    out = []
    for i in range(POINTS):
        mpan = MV.mpan_check(f"1{i:011d}")
        out.append(make_event("install", T0 + i, 2 * i, mpans=[mpan],
                              ev=evidence([("ESME", mpan, "InstalledNotCommissioned")])))
        out.append(make_event("commission", T0 + DAY + i, 2 * i + 1, mpans=[mpan],
                              ev=evidence([("ESME", mpan, "Commissioned")])))
    return out


def test_three_replicas_under_sigkill_lose_nothing_and_repeat_nothing(tmp_path, broker, store_url):
    cfg = tmp_path / "bridge.toml"
    cfg.write_text("dtc_batch_age = 0.5\ndtc_batch_size = 200\nbatch_max = 100\n")
    replicas = []
    for n in (1, 2, 3):
        # Each replica is an identity of its own: the broker makes its certificate's name its
        # client id, so three replicas as one identity would take the session from each other.
        identity_files(broker.pki, f"bridge-r{n}", "bridge")
    broker.reload()
    for n in (1, 2, 3):
        (tmp_path / f"r{n}").mkdir()
        replicas.append(BridgeProcess(tmp_path / f"r{n}", broker.url, "--config", str(cfg), "--share-group",
                                      "bridges", "--name", f"bridge-r{n}", db=store_url, pki=broker.pki.root))
    assert replicas[0].companion("keys", "add", DEVICE_ID, PUBLIC_KEY).returncode == 0
    for r in replicas:
        r.start()
    stream = _stream()
    random.Random(7).shuffle(stream)
    pending = dict(stream)
    hh = Handheld(broker.url, broker.pki)
    kills: list[str] = []
    stop = threading.Event()

    def chaos() -> None:
        rnd = random.Random(11)
        while len(kills) < 5 and not stop.wait(rnd.uniform(1.5, 2.5)):
            victim = rnd.choice(replicas)
            victim.kill()
            kills.append(victim.workdir.name)
            victim.start()

    killer = threading.Thread(target=chaos)
    try:
        killer.start()
        for n, (eid, m) in enumerate(stream):
            hh.send(m)
            if n % 500 == 499:
                time.sleep(0.4)  # a stream that lasts through the kills
        killer.join(60)
        assert len(kills) == 5, kills
        missing = hh.resend_until_acked(pending, timeout=120, every=2.0)
        assert not missing, f"{len(missing)} events never acked"
        store = Store(store_url)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            mqtt_left, dtc_left, _ = store.outbox_depth()
            if mqtt_left == 0 and dtc_left == 0:
                break
            time.sleep(0.5)
        assert store.outbox_depth() == (0, 0, 0)
        time.sleep(1.0)  # the last retained updates reach the watcher
    finally:
        stop.set()
        killer.join(10)
        for r in replicas:
            r.stop()
        hh.close()

    assert store.event_count() == len(stream), "every event stored, once"
    rows = store.conn().execute("SELECT mpxn, version, body FROM outbox ORDER BY mpxn, version").fetchall()
    changes: dict[str, list] = {}
    for mpxn, version, body in rows:
        changes.setdefault(mpxn, []).append((version, json.loads(body)))
    assert len(changes) == POINTS
    for mpxn, ch in changes.items():
        assert [v for v, _ in ch] == list(range(1, len(ch) + 1)), f"{mpxn}: versions {ch}"
        assert ch[-1][1]["flag"] == "A"

    # DTC: every change in exactly one line, across every replica's folder.
    lines: dict[str, list[tuple[str, str]]] = {}
    file_ids = set()
    for r in replicas:
        for path in sorted(Path(r.out).glob("*.dtc")):
            f = dtc.parse(path.read_text())
            assert f["header"][1] not in file_ids, f"DTC file id {f['header'][1]} written twice"
            file_ids.add(f["header"][1])
            for g in f["groups"]:
                lines.setdefault(g[1], []).append((g[2], g[3]))
    for mpxn, ch in changes.items():
        want = sorted((b["flag"], b["effective_from"].replace("-", "")) for _, b in ch)
        assert sorted(lines.get(mpxn, [])) == want, f"{mpxn}: DTC lines {lines.get(mpxn)} for changes {want}"

    # MQTT: the broker's last word on each meter point is its latest version.
    with hh.lock:
        last = {m: f[-1]["version"] for m, f in hh.flags.items()}
    assert last == {m: ch[-1][0] for m, ch in changes.items()}

    r = replicas[0].companion("replay")
    assert r.returncode == 0 and "0 differences" in r.stdout, r.stdout
    # No replica ever lost its broker session to another (each is its own identity).
    for rep in replicas:
        assert "disconnected" not in rep.log.read_text(), rep.workdir.name


def test_a_replica_that_never_returns_holds_its_share_until_the_handheld_sends_again(tmp_path, broker,
                                                                                    store_url):
    """Measured, not assumed: mosquitto goes on giving a shared subscription's messages to a
    member whose persistent session outlives it (QoS 1, round robin), holding them for its
    return. With one of two replicas SIGKILLed for good, about half of a burst waits there;
    the handheld's re-send after its ack timeout goes round again, and every event is acked
    by the replica that is left (docs/operations.md "Scale")."""
    for n in ("bridge-a", "bridge-b"):
        identity_files(broker.pki, n, "bridge")
    broker.reload()
    reps = []
    for n in ("bridge-a", "bridge-b"):
        (tmp_path / n).mkdir()
        reps.append(BridgeProcess(tmp_path / n, broker.url, "--share-group", "bridges", "--name", n,
                                  db=store_url, pki=broker.pki.root))
    assert reps[0].companion("keys", "add", DEVICE_ID, PUBLIC_KEY).returncode == 0
    for r in reps:
        r.start()
    hh = Handheld(broker.url, broker.pki)
    stream = [make_event("commission", T0 + i, i) for i in range(101)]
    try:
        hh.send(stream[0][1])
        hh.wait(lambda h: stream[0][0] in h.acks, what="first ack")
        reps[1].kill()
        time.sleep(1.0)
        for _, m in stream[1:]:
            hh.send(m)
        time.sleep(5.0)
        with hh.lock:
            held = [e for e, _ in stream[1:] if e not in hh.acks]
        assert 20 <= len(held) <= 80, f"{len(held)} of 100 held for the dead member"
        held = hh.resend_until_acked({e: m for e, m in stream if e in held}, timeout=20, every=1.0)
        assert not held, f"{len(held)} never acked after 20 s of re-sends"
    finally:
        hh.close()
        for r in reps:
            r.stop()
    assert Store(store_url).event_count() == 101
