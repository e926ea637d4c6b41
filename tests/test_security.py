"""The trust boundary (docs/security.md), tried as an attacker would: each attack a
regression test against real mosquitto with the shipped configuration, the bridge as a
process and real handhelds (micropython, 64 KiB heap). None may lose an event."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import cbor2
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.enums import CallbackAPIVersion

from companion.errors import BadSignatureError, CompanionError
from companion.service.pki import Pki
from companion.wire.signing import FlagVerifier, KeyRing, Signer, UntrustedError, VersionRegressionError
from hil import hub, premises
from hil.services import BridgeProcess, identity_files, mqtt_client

from .agent_support import Board
from .bridge_support import DEVICE_ID, MV, PUBLIC_KEY, Handheld, make_event

T0 = 1793491200  # 2026-11-01
HANDHELD = "70-B3-D5-F1-00-00-00-21"


def _connect_rc(host: str, port: int, client: mqtt.Client, timeout: float = 5) -> int | str:
    """CONNACK reason, or the error that stopped the connection."""
    got: list = []
    client.on_connect = lambda c, u, f, rc, p=None: got.append(rc.value if hasattr(rc, "value") else rc)
    try:
        client.connect(host, port)
    except (OSError, ssl.SSLError) as exc:
        return type(exc).__name__
    client.loop_start()
    end = time.monotonic() + timeout
    while not got and time.monotonic() < end:
        time.sleep(0.02)
    client.loop_stop()
    client.disconnect()
    return got[0] if got else "no CONNACK"


def _anonymous(tls: bool, ca: str | None = None) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anon", protocol=mqtt.MQTTv311)
    if tls:
        c.tls_set(ca_certs=ca)
    return c


@pytest.fixture
def site():
    with hub.HubEmulator(premises.load("smets2-dual-fuel"), seed=1) as h:
        yield h


# --- identities at the broker ---------------------------------------------------------------

@pytest.mark.parametrize("own_broker", [False, True], ids=["operator-mosquitto", "bridge-own-broker"])
def test_no_anonymous_access_on_plain_tcp_or_tls_without_a_certificate(tmp_path, own_broker, request):
    if own_broker:
        from hil.services import BridgeProcess

        b = BridgeProcess(tmp_path, None).start()
        request.addfinalizer(b.stop)
        host, port = b.broker.split("://")[1].rsplit(":", 1)
        pki = b.pki
    else:
        broker = request.getfixturevalue("broker")
        host, port, pki = "127.0.0.1", str(broker.port), broker.pki
    port_i = int(port)
    # Plain MQTT on the TLS port: no CONNACK, ever.
    assert _connect_rc(host, port_i, _anonymous(False)) != 0
    # TLS, the right CA, but no client certificate: the handshake fails.
    assert _connect_rc(host, port_i, _anonymous(True, str(pki.ca_crt))) != 0
    # A certificate from another CA: refused too.
    rogue = Pki(tmp_path / "rogue")
    rogue.init()
    c2 = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="reader", protocol=mqtt.MQTTv311)
    crt, key = identity_files(rogue, "reader", "consumer")
    c2.tls_set(ca_certs=str(pki.ca_crt), certfile=crt, keyfile=key)
    assert _connect_rc(host, port_i, c2) != 0
    # A real identity gets in.
    assert _connect_rc(host, port_i, mqtt_client(pki, "watcher", "auditor")) == 0


def test_acl_each_party_publishes_and_reads_only_its_own(broker, start_bridge):
    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY)
    hh = Handheld(broker.url, broker.pki)
    try:
        other = "70-B3-D5-F1-00-00-00-99"
        _, m = make_event("commission", T0, 1)
        # A handheld's certificate on another device's topic: refused by the broker.
        identity_files(broker.pki, other, "handheld")
        broker.reload()
        hh.send(make_event("install", T0, 9)[1])  # the broker has reloaded when this goes through
        assert hh.publish_as(other, "handheld", f"flagwise/events/{DEVICE_ID}", m) == 135
        # Consumers and handhelds cannot write acks, rejections or flags.
        for name, role in ((other, "handheld"), ("flag-reader", "consumer")):
            identity_files(broker.pki, name, role)
        broker.reload()
        time.sleep(0.6)
        for name, role in ((other, "handheld"), ("flag-reader", "consumer")):
            for topic in (f"flagwise/acks/{DEVICE_ID}", f"flagwise/rejected/{DEVICE_ID}", f"flagwise/flags/{MV.MPAN}",
                          "flagwise/keys"):
                assert hh.publish_as(name, role, topic, b"forged", retain=True) == 135, (name, topic)
        assert hh.publish_as("flag-reader", "consumer", f"flagwise/events/{DEVICE_ID}", m) == 135
        # A handheld reads only its own acks: subscribe as `other` to everything, see nothing of DEVICE_ID's.
        seen: list[str] = []
        c = mqtt_client(broker.pki, other, "handheld")
        c.on_message = lambda cl, u, msg: seen.append(msg.topic)
        c.on_connect = lambda cl, *a: cl.subscribe("#", qos=1)
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        eid, m = make_event("commission", T0, 2)
        hh.send(m)
        hh.wait(lambda h: eid in h.acks, what="ack")
        time.sleep(0.5)
        c.loop_stop()
        c.disconnect()
        assert not [t for t in seen if DEVICE_ID in t or "/flags/" in t], seen
    finally:
        hh.close()
    assert bridge.get("/healthz")[1]["status"] == "ok"


def test_client_id_takeover_is_impossible_and_loses_nothing(broker, start_bridge):
    """Connecting with the bridge's client id does not displace the bridge: the broker
    sets every client id to the certificate's name."""
    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY)
    hh = Handheld(broker.url, broker.pki)
    try:
        intruders = []
        for n in range(3):
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bridge", protocol=mqtt.MQTTv311,
                            clean_session=True)
            crt, key = identity_files(broker.pki, f"nosy-{n}", "consumer")
            c.tls_set(ca_certs=str(broker.pki.ca_crt), certfile=crt, keyfile=key)
            c.connect("127.0.0.1", broker.port)
            c.loop_start()
            intruders.append(c)
        eids = []
        for n in range(50):
            eid, m = make_event("commission", T0 + n, n, mpans=[MV.mpan_check(f"1{n:011d}")])
            eids.append(eid)
            hh.send(m)
        hh.wait(lambda h: all(e in h.acks for e in eids), what="every event acked")
        for c in intruders:
            c.loop_stop()
            c.disconnect()
    finally:
        hh.close()
    assert bridge.get("/healthz")[1]["status"] == "ok"
    assert '"disconnected"' not in bridge.log.read_text()


def test_a_10_mb_message_never_reaches_the_bridge(broker, start_bridge):
    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY)
    hh = Handheld(broker.url, broker.pki)
    try:
        hh.send(make_event("install", T0, 1)[1])
        c, acked = hh.publisher(DEVICE_ID)
        gone = []
        c.on_disconnect = lambda *a: gone.append(a)
        c.publish(f"flagwise/events/{DEVICE_ID}", b"\0" * (10 * 1024 * 1024), qos=1)
        end = time.monotonic() + 10
        while not gone and time.monotonic() < end:
            time.sleep(0.05)
        assert gone, "the broker closes a connection that sends an oversize packet"
    finally:
        hh.close()
    _, metrics = bridge.get("/metrics")
    assert "flagwise_events_received_total 1.0" in metrics  # only the install
    assert 'reason="oversize"' not in metrics


def test_revocation_reaches_the_broker_and_the_registry(broker, start_bridge, tmp_path):
    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY)
    hh = Handheld(broker.url, broker.pki)
    try:
        eid, m = make_event("commission", T0, 1)
        hh.send(m)
        hh.wait(lambda h: eid in h.acks, what="ack before revocation")
        r = bridge.companion("keys", "revoke", DEVICE_ID, "--pki", str(bridge.pki.root))
        assert r.returncode == 0 and "revoked at the broker" in r.stdout, r.stdout + r.stderr
        assert broker.pki.crl.read_bytes().count(b"BEGIN X509 CRL") == 1
        from cryptography import x509

        crl = x509.load_pem_x509_crl(broker.pki.crl.read_bytes())
        serial = [i for i in broker.pki.identities() if i.name == DEVICE_ID][0].serial
        assert crl.get_revoked_certificate_by_serial_number(serial) is not None
        # A new connection with the revoked certificate is refused once the broker reloaded.
        end = time.monotonic() + 5
        while time.monotonic() < end:
            if _connect_rc("127.0.0.1", broker.port, mqtt_client(broker.pki, DEVICE_ID, "handheld")) != 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the revoked certificate still connects")
    finally:
        hh.close()


# --- signed acks on a real handheld ------------------------------------------------------------

def test_forged_replayed_cross_device_and_poison_acks_delete_nothing(tmp_path, broker, site, start_bridge):
    """An attacker with a broker identity that may write acks (a rogue bridge identity: one
    misconfiguration) forges acks, rejections and retained poison. The handheld ignores
    them all, keeps its evidence and delivers it once the real bridge runs."""
    board = Board(tmp_path / "flash", HANDHELD, broker.port, site.path, pki=broker.pki)
    rc, lines = board.job("commission", "2000012345672", "-", "WO-1", "INST-1")
    assert rc == 0
    eid = bytes.fromhex([lines[i + 1].strip() for i, ln in enumerate(lines) if ln.startswith("SAVED")][0])
    dev = bytes.fromhex(HANDHELD.replace("-", ""))
    rogue_signer = Signer(ec.generate_private_key(ec.SECP256R1()))
    real_signer = Signer(broker.pki.signing_key("bridge"))
    identity_files(broker.pki, "rogue", "bridge")
    broker.reload()
    hh = Handheld(broker.url, broker.pki)
    acks, rejected = f"flagwise/acks/{HANDHELD}", f"flagwise/rejected/{HANDHELD}"
    forged = [
        (acks, rogue_signer.ack(dev, eid, "stored"), True),  # signed by a key the handheld does not know
        (acks, real_signer.ack(bytes(8), eid, "stored"), False),  # a genuine ack, for another device
        (acks, cbor2.dumps({0: eid, 1: "stored"}), False),  # the old unsigned form
        (acks, cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"", b""])), False),
        (rejected, rogue_signer.ack(dev, eid, "rejected", "revoked_key"), False),
        (rejected, json.dumps({"event_id": eid.hex(), "reason": "revoked_key"}).encode(), False),
        (acks, b"\x42" * 60000, True),  # retained poison, large
        (acks, b"\x01", True),  # retained poison, short
    ]
    try:
        end = time.monotonic() + 5
        while hh.publish_as("rogue", "bridge", acks, b"probe") == 135 and time.monotonic() < end:
            time.sleep(0.1)
        for topic, body, retain in forged:
            assert hh.publish_as("rogue", "bridge", topic, body, retain=retain) in (0, 16)
        # Replay: a genuine stored-ack for this event, before the bridge ever saw it, is not
        # possible to make (only the bridge signs); a genuine ack for an event id the
        # handheld does not hold changes nothing.
        assert hh.publish_as("rogue", "bridge", acks, real_signer.ack(dev, bytes(16), "stored")) in (0, 16)
        rc, lines = board.run("--deliver", "4")
        text = "\n".join(lines)
        assert "ACKED" not in text and "REJECTED" not in text, text
        assert "ACK ignored" in text
        assert len(board.outbox()) == 1 and not list((board.flash / "outbox").glob("rejected/*")), text
        # Connects still succeed with the poison retained (no MemoryError, no stuck link).
        assert text.count("LINK up") >= 1 and "MemoryError" not in text, text
        # The real bridge: delivered and acked, despite the retained poison.
        start_bridge(HANDHELD, board.public_key)
        rc, lines = board.run("--deliver", "20")
        assert any(ln.startswith("ACKED " + eid.hex()[:16]) for ln in lines), "\n".join(lines)
        assert board.outbox() == []
    finally:
        hh.close()


# --- flag updates --------------------------------------------------------------------------------

def test_flag_updates_are_signed_and_forgeries_refused(broker, start_bridge, tmp_path):
    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY)
    hh = Handheld(broker.url, broker.pki)
    raw: list[tuple[str, bytes]] = []
    c = mqtt_client(broker.pki, "flag-consumer", "consumer")
    got_sub = []
    c.on_connect = lambda cl, *a: cl.subscribe("flagwise/flags/#", qos=1)
    c.on_subscribe = lambda *a: got_sub.append(1)
    c.on_message = lambda cl, u, msg: raw.append((msg.topic, bytes(msg.payload)))
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        eid, m = make_event("commission", T0, 1)
        hh.send(m)
        end = time.monotonic() + 20
        while not raw and time.monotonic() < end:
            time.sleep(0.05)
        topic, message = raw[0]
        # The published keys: GET /v1/keys (no token needed) and the retained topic.
        status, keys = bridge.get("/v1/keys")
        assert status == 200 and keys["keys"][0]["current"]
        ring = KeyRing.of(keys["keys"])
        body = FlagVerifier(ring).verify(message, topic)
        assert (body["mpxn"], body["flag"], body["event_id"]) == (MV.MPAN, "A", eid)
        # The consumer's verifier refuses: unsigned, signed by someone else, regressions, wrong topic.
        v = FlagVerifier(ring)
        v.verify(message, topic)
        with pytest.raises(VersionRegressionError):
            v.verify(message, topic)  # replay of the same version
        forged = dict(body, version=2 ** 53, flag="N")
        with pytest.raises(CompanionError):
            FlagVerifier(ring).verify(json.dumps(forged).encode(), topic)
        with pytest.raises(UntrustedError):
            FlagVerifier(ring).verify(Signer(ec.generate_private_key(ec.SECP256R1())).flag(forged), topic)
        tampered = message.replace(b'"A"', b'"N"')
        with pytest.raises(BadSignatureError):
            FlagVerifier(ring).verify(tampered, topic)
        with pytest.raises(UntrustedError):
            FlagVerifier(ring).verify(message, "flagwise/flags/2000012345672")
        # The command line does the same for a consumer's scripts.
        keys_file = tmp_path / "keys.json"
        keys_file.write_text(json.dumps(keys))
        good, bad = tmp_path / "good.cose", tmp_path / "bad.cose"
        good.write_bytes(message)
        bad.write_bytes(tampered)
        def verify(*args: str):
            import subprocess

            from hil.services import BIN

            return subprocess.run([str(BIN / "companion"), "flags", "verify", *args, "--keys", str(keys_file)],
                                  capture_output=True, text=True, timeout=30)

        r = verify(str(good), "--topic", topic)
        assert r.returncode == 0 and json.loads(r.stdout)["flag"]["flag"] == "A"
        r = verify(str(bad))
        assert r.returncode == 1 and json.loads(r.stdout)["reason"] == "bad_signature"
        r = verify(str(good), "--last-version", "1")
        assert r.returncode == 1 and json.loads(r.stdout)["reason"] == "version_regression"
        r = verify(str(tmp_path / "missing"))
        assert r.returncode == 2 and "Traceback" not in r.stderr
        # A consumer cannot place a retained forgery at all.
        assert hh.publish_as("flag-consumer", "consumer", topic, Signer(
            ec.generate_private_key(ec.SECP256R1())).flag(forged), retain=True) == 135
    finally:
        c.loop_stop()
        c.disconnect()
        hh.close()


# --- the read API ----------------------------------------------------------------------------------

def _get(url: str, token: str | None = None) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_read_api_needs_a_token_and_survives_slowloris(broker, start_bridge):
    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY)
    hh = Handheld(broker.url, broker.pki)
    eid, m = make_event("commission", T0, 1)
    hh.send(m)
    hh.wait(lambda h: eid in h.acks, what="ack")
    hh.close()
    url = f"{bridge.http}/v1/sites/{MV.MPAN}"
    assert _get(url) == 401
    assert _get(url, "fw_not-a-token") == 401
    assert _get(url, bridge.token) == 200
    r = bridge.companion("tokens", "add", "night-shift")
    token = r.stdout.strip()
    assert _get(url, token) == 200 and "shown once" in r.stderr
    assert token.encode() not in Path(bridge.db).read_bytes(), "tokens are stored hashed"
    assert bridge.companion("tokens", "revoke", "night-shift").returncode == 0
    assert _get(url, token) == 401
    assert _get(f"{bridge.http}/healthz") == 200  # open, as are /metrics and /v1/keys

    # Slowloris: 300 connections that send half a request line and hold on.
    host, port = bridge.http.split("://")[1].rsplit(":", 1)
    held = []
    for _ in range(300):
        s = socket.create_connection((host, int(port)), timeout=5)
        s.sendall(b"GET /v1/sites/1312345678907 HTTP/1.1\r\nHost: x\r\n")
        held.append(s)
    try:
        assert _get(f"{bridge.http}/healthz") == 200
        # ... and 1,000 concurrent requests alongside them.
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            codes = list(pool.map(lambda _: _get(url, bridge.token), range(1000)))
        assert codes.count(200) == 1000, {c: codes.count(c) for c in set(codes)}
    finally:
        for s in held:
            s.close()


def test_the_shipped_broker_files_are_what_the_pki_writes(tmp_path):
    """deploy/mosquitto/ holds the configuration for an operator's broker; it must never
    drift from what the bridge runs for itself."""
    import subprocess
    from pathlib import Path

    from companion.service.pki import Identity, acl_text
    from hil.services import BIN

    deploy = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto"
    r = subprocess.run([str(BIN / "companion"), "pki", "mosquitto-conf", "--pki", "/etc/flagwise/pki",
                        "--listen", "0.0.0.0:8883", "--persistence", "/var/lib/mosquitto"],
                       capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == (deploy / "flagwise.conf").read_text()
    shipped = (deploy / "flagwise.conf").read_text()
    for line in ("allow_anonymous false", "require_certificate true", "use_identity_as_username true",
                 "use_username_as_clientid true", "crlfile ", "acl_file ", "max_packet_size 65536"):
        assert line in shipped, line
    example = (deploy / "acl.example").read_text()
    ids = [Identity("bridge-1", "bridge", 1, False), Identity("dno-feed", "consumer", 3, False),
           Identity("dcc-gateway", "dcc-adaptor", 4, False), Identity("70-B3-D5-F1-00-00-00-21", "handheld", 5, False)]
    for block in acl_text(ids, "flagwise").split("\n\n")[1:]:
        assert block.strip() in example


def test_insecure_mode_is_plain_tcp_but_never_anonymous(tmp_path):
    """--insecure drops TLS, not identities: the bridge's own broker still refuses anonymous
    and wrong-password clients, and takes an identity by its password under the same ACL."""
    from hil.services import BridgeProcess

    b = BridgeProcess(tmp_path, None, "--insecure").start()
    try:
        assert "WARNING: --insecure" in b.log.read_text()
        host, port = b.broker.split("://")[1].rsplit(":", 1)
        assert b.broker.startswith("mqtt://")
        assert _connect_rc(host, int(port), _anonymous(False)) != 0
        wrong = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bridge", protocol=mqtt.MQTTv311)
        wrong.username_pw_set("bridge", "not-its-password")
        assert _connect_rc(host, int(port), wrong) != 0
        end = time.monotonic() + 10
        while _connect_rc(host, int(port), mqtt_client(b.pki, "watcher", "auditor", insecure=True)) != 0:
            assert time.monotonic() < end, "an issued identity logs in once the broker has reloaded"
            time.sleep(0.2)
    finally:
        b.stop()


def test_a_future_revocation_reaches_the_broker_when_its_time_comes(broker, start_bridge):
    """Defect 6: `keys revoke --at FUTURE` revoked the certificate at the broker at once, and
    without --pki it silently used ./pki."""
    from cryptography import x509

    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY)
    identity_files(broker.pki, DEVICE_ID, "handheld")  # the handheld's identity at the broker
    r = bridge.companion("keys", "revoke", DEVICE_ID, "--at", str(int(time.time()) + 4))
    assert r.returncode == 2 and "--pki" in r.stderr and "--no-pki" in r.stderr  # which PKI? never ./pki by default

    def revoked() -> bool:
        serial = [i for i in broker.pki.identities() if i.name == DEVICE_ID][0].serial
        return x509.load_pem_x509_crl(broker.pki.crl.read_bytes()).get_revoked_certificate_by_serial_number(
            serial) is not None

    r = bridge.companion("keys", "revoke", DEVICE_ID, "--at", str(int(time.time()) + 4), "--pki", str(bridge.pki.root))
    assert r.returncode == 0 and "will be revoked at the broker" in r.stdout, r.stdout + r.stderr
    assert not revoked()
    assert _connect_rc("127.0.0.1", broker.port, mqtt_client(broker.pki, DEVICE_ID, "handheld")) == 0
    end = time.monotonic() + 30
    while not revoked() and time.monotonic() < end:
        time.sleep(0.3)
    assert revoked(), "the bridge did not revoke the certificate when the time came"
    assert "revocation's time has come" in bridge.log.read_text()


def test_the_bridges_own_broker_never_runs_as_root(tmp_path):
    """Defect 7: started as root, the bridge ran its embedded mosquitto as root too."""
    if os.geteuid() != 0:
        pytest.skip("the privilege drop is a root's concern; as another user the broker runs as that user")
    b = BridgeProcess(tmp_path, None).start()
    try:
        pid = int(subprocess.run(["pgrep", "-f", f"{tmp_path}.*mosquitto.conf"], capture_output=True,
                                 text=True).stdout.split()[0])
        user = subprocess.run(["ps", "-o", "user=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
        assert user in ("mosquitto", "nobody"), user
        hh = Handheld(b.broker, b.pki)  # and it still serves TLS with the PKI's certificates
        hh.close()
        # A revocation still reaches it (it reads its copies of the CRL and ACL on reload).
        b.pki.revoke(hh_name := [i.name for i in b.pki.identities() if i.role == "auditor"][0])
        end = time.monotonic() + 5
        while time.monotonic() < end and _connect_rc("127.0.0.1", int(b.broker.rsplit(":", 1)[1]),
                                                     mqtt_client(b.pki, hh_name, "auditor")) == 0:
            time.sleep(0.2)
        assert _connect_rc("127.0.0.1", int(b.broker.rsplit(":", 1)[1]), mqtt_client(b.pki, hh_name, "auditor")) != 0
    finally:
        b.stop()
