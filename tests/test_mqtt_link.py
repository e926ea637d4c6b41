"""The bridge's MQTT handling against a scripted broker (tests/fake_broker.py): the real paho
client, MqttLink and IngestWorker, and a real store, over a real socket; only the broker is
scripted, so that refusals, takeovers and redeliveries are exact and fast. The same paths run
against the shipped mosquitto in test_bridge.py and test_security.py."""

from __future__ import annotations

import sqlite3
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from companion.config import Config
from companion.service.ingest_worker import IngestWorker
from companion.service.metrics import Metrics
from companion.service.mqtt_link import BrokerRefused, MqttLink
from companion.service.pki import Pki
from companion.service.state import BridgeState
from companion.store.core import Store
from companion.wire.signing import Signer

from .bridge_support import DEVICE_ID, PUBLIC_KEY, make_event
from .fake_broker import CONNECT, PUBACK, PUBLISH, SUBSCRIBE, FakeBroker

EVENTS = f"flagwise/events/{DEVICE_ID}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.init()
    p.new_signing_key("bridge")
    return p


@pytest.fixture
def broker():
    b = FakeBroker()
    yield b
    b.close()


class Rig:
    def __init__(self, tmp_path, pki: Pki, broker: FakeBroker, **options):
        self.config = Config(db=str(tmp_path / "b.db"), pki=str(pki.root), broker=broker.url, insecure=True,
                             username="bridge", password="s3cret", **{"broker_wait": 0, **options}).check()
        self.stop = threading.Event()
        self.state = BridgeState()
        self.metrics = Metrics("bridge", "sqlite")
        self.woken = threading.Event()
        self.link = MqttLink(self.config, pki, self.metrics, self.state, self.stop, on_connected=self.woken.set)
        self.store = Store(self.config.db)
        self.store.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
        self.worker = IngestWorker(self.config, self.store, self.link, Signer(pki.signing_key("bridge")),
                                   self.metrics, self.state, self.stop, stored=lambda: None)

    def connect(self) -> "Rig":
        self.link.await_broker(self.config.broker or "", (mqtt.MQTTv5,))
        return self

    def run_worker(self) -> None:
        threading.Thread(target=self.worker.run, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.link.close()


@pytest.fixture
def rig(tmp_path, pki, broker):
    made: list[Rig] = []

    def make(**options) -> Rig:
        r = Rig(tmp_path, pki, broker, **options)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def test_the_link_logs_in_keeps_its_session_subscribes_and_publishes_the_keys(rig, broker):
    r = rig().connect()
    hello = broker.expect(CONNECT)
    assert hello.fields["username"] == "bridge" and hello.fields["password"], "never anonymous"
    assert hello.fields["client_id"] == "bridge" and not hello.fields["clean_start"], "a persistent session"
    assert broker.expect(SUBSCRIBE).fields["topics"] == [("flagwise/events/+", 1), ("flagwise/duis/in", 1)]
    keys = broker.expect(PUBLISH, topic="flagwise/keys")
    assert keys.fields["retain"] and keys.fields["qos"] == 1 and b'"keys"' in keys.fields["payload"]
    assert r.state.connected and r.state.protocol == "MQTT 5" and r.woken.is_set()


def test_an_event_is_pubacked_only_after_it_is_stored_and_answered(rig, broker):
    r = rig().connect()
    r.run_worker()
    eid, msg = make_event("install", int(time.time()) - 60, 1)
    broker.publish(EVENTS, msg, pid=7)
    ack = broker.expect(PUBLISH, topic=f"flagwise/acks/{DEVICE_ID}")
    assert r.store.event_count() == 1
    broker.expect(PUBACK, pid=7)
    # the handheld's ack went out before the broker was told the message was handled
    order = [(p.kind, p.fields.get("topic")) for p in broker.seen if p.kind in (PUBLISH, PUBACK)]
    assert order.index((PUBLISH, ack.fields["topic"])) < order.index((PUBACK, None))


def test_with_a_verify_pool_every_event_is_answered_in_order_and_a_forgery_refused(rig, broker):
    """verify_workers: the signatures checked on a worker process, batches pipelined (the next
    one's signatures checked while one is stored); each message answered, then PUBACKed."""
    r = rig(verify_workers=1, batch_wait_ms=50).connect()
    r.run_worker()
    now = int(time.time()) - 600
    made = [make_event("install", now + i, i + 1)[1] for i in range(30)]
    made[17] = make_event("install", now + 17, 18, key="1" * 64)[1]  # signed by another key
    for i, msg in enumerate(made):
        broker.publish(EVENTS, msg, pid=100 + i)
    for i in range(len(made)):
        broker.expect(PUBACK, pid=100 + i, timeout=20)
    answers = [p.fields["topic"].split("/")[1] for p in broker.seen
               if p.kind == PUBLISH and p.fields.get("topic", "").endswith(DEVICE_ID)]
    assert answers == ["acks"] * 17 + ["rejected"] + ["acks"] * 12  # one each, in order
    rejected = [p for p in broker.seen if p.kind == PUBLISH and "/rejected/" in p.fields.get("topic", "")]
    assert b"bad_signature" in rejected[0].fields["payload"]
    assert r.store.event_count() == 29 and r.metrics.rejected.labels("bad_signature")._value.get() == 1


def test_a_store_that_is_briefly_down_holds_the_puback(rig, broker, monkeypatch):
    r = rig().connect()
    real = r.worker.ingestor.finish  # where a batch is stored (after Ingestor.start)
    calls: list[float] = []

    def locked_once(prepared):
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(prepared)

    monkeypatch.setattr(r.worker.ingestor, "finish", locked_once)
    r.run_worker()
    _, msg = make_event("install", int(time.time()) - 60, 1)
    broker.publish(EVENTS, msg, pid=8)
    assert broker.nothing(PUBACK, 0.3, pid=8), "acknowledged while the store was down"
    broker.expect(PUBACK, pid=8)
    assert len(calls) == 2 and r.store.event_count() == 1
    assert r.state.storage_error is None and r.metrics.storage_retries._value.get() == 1


def test_a_redelivery_of_a_held_message_is_merged_and_acked_once(rig, broker):
    r = rig().connect()
    _, msg = make_event("install", int(time.time()) - 60, 1)
    broker.publish(EVENTS, msg, pid=9)
    broker.publish(EVENTS, msg, pid=9, dup=True)
    held = r.link.inbox.get(timeout=5)
    time.sleep(0.2)
    assert r.link.inbox.empty() and r.metrics.redeliveries_merged._value.get() == 1
    r.link.settle(held.token)
    broker.expect(PUBACK, pid=9)
    assert broker.nothing(PUBACK, 0.3, pid=9), "a second PUBACK could acknowledge a newer message"


def test_a_handheld_over_its_rate_is_set_aside_unread_and_acked(rig, broker):
    r = rig(device_rate=0.1, device_burst=2).connect()
    for pid in (1, 2, 3):
        broker.publish(EVENTS, b"x", pid=pid)
    broker.expect(PUBACK, pid=3)
    assert r.link.inbox.qsize() == 2 and r.metrics.shed._value.get() == 1


def test_a_refused_subscription_is_said_and_tried_again(rig, broker):
    broker.suback_rc = [0x87]  # not authorised (an ACL without the bridge's topics)
    r = rig().connect()
    broker.expect(SUBSCRIBE)
    deadline = time.monotonic() + 3
    while r.state.subscribed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not r.state.subscribed
    broker.expect(SUBSCRIBE, timeout=5)  # tried again after 2 s; granted this time
    deadline = time.monotonic() + 3
    while not r.state.subscribed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert r.state.subscribed


def test_a_refused_identity_is_not_waited_for(rig, broker):
    broker.connack_rc = 0x87
    r = rig(broker_wait=300)
    started = time.monotonic()
    with pytest.raises(BrokerRefused, match="refused our identity"):
        r.connect()
    assert time.monotonic() - started < 10


def test_a_session_taken_over_stops_the_bridge_and_says_why(rig, broker):
    r = rig().connect()
    broker.expect(SUBSCRIBE)
    broker.disconnect(0x8E)  # MQTT 5 §3.14.2.1: session taken over
    assert r.stop.wait(5)
    assert "client id" in (r.state.fatal or "") and not r.state.connected


def test_a_duis_message_from_the_adaptor_is_stored_or_refused_then_acked(rig, broker, tmp_path):
    """DUIS on <prefix>/duis/in goes to the DUIS worker, not the event ingest: a good message is
    stored (and its flag derived), a forged one refused and counted; both are PUBACKed after."""
    from companion.service.duis_worker import DuisWorker
    from companion.store.smi import Inventory

    from .duis_support import Dcc

    dcc = Dcc()
    r = rig(duis_certs=str(dcc.pem(tmp_path / "dcc.pem"))).connect()
    woken: list[int] = []
    worker = DuisWorker(r.config, r.store, r.link, r.metrics, r.state, r.stop, wake=lambda: woken.append(1))
    threading.Thread(target=worker.run, daemon=True).start()
    good = dcc.inventory([{"DeviceID": "00-1B-C5-0C-00-00-00-10", "DeviceType": "ESME",
                           "DeviceStatus": "Commissioned", "ImportMPxN": "1312345678907"}])
    broker.publish("flagwise/duis/in", good, pid=11)
    broker.expect(PUBACK, pid=11)
    broker.publish("flagwise/duis/in", Dcc(cn="Z9", serial=99).inventory([{"DeviceID": "00-1B-C5-0C-00-00-00-10",
                                                         "DeviceType": "ESME"}]), pid=12)
    broker.expect(PUBACK, pid=12)
    assert Inventory(r.store).counts() == {"messages_inventory": 1, "refused": 1, "devices": 1}
    assert r.store.flag("1312345678907").flag == "A" and woken
    assert r.metrics.duis.labels("unknown_certificate")._value.get() == 1
    assert r.link.inbox.empty(), "DUIS never reaches the event ingest"
