"""The bridge's MQTT link (paho-mqtt 2): its identity and TLS, the persistent session, the
subscription to events, the retained list of bridge keys, and flow control on what arrives.

A received event is queued for the ingest worker (`inbox`, bounded: back-pressure) with a token;
its PUBACK is sent by `settle(token)` only after the event's batch committed (manual acks), so a
bridge killed mid-batch gets the message again from its persistent session."""

from __future__ import annotations

import json
import queue
import socket
import ssl
import threading
import time
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from companion.config import Config, ConfigError, broker_address
from companion.service.flow import AckLedger, TopicRates
from companion.service.ingest import Incoming
from companion.service.logs import log
from companion.service.metrics import Metrics
from companion.service.pki import Pki
from companion.service.state import BridgeState


class BrokerRefused(ConnectionError):
    """The broker refused our identity: waiting will not help."""


class MqttLink:
    def __init__(self, config: Config, pki: Pki, metrics: Metrics, state: BridgeState,
                 stop: threading.Event, on_connected: Callable[[], None]):
        self.config = config
        self.pki = pki
        self.metrics = metrics
        self.state = state
        self.inbox: queue.Queue[Incoming] = queue.Queue(maxsize=10000)
        self.duis_inbox: queue.Queue[Incoming] = queue.Queue(maxsize=1000)  # DUIS from the DCC adaptor
        self.duis_topic = f"{config.prefix}/duis/in"
        self._stop = stop
        self._on_connected = on_connected  # e.g. wake the flag publisher
        self._acks = AckLedger()
        self._rates = TopicRates(config.device_rate, config.device_burst)
        self._connected = threading.Event()
        self._connack: tuple[int, bool] | None = None
        self.client: mqtt.Client | None = None

    # --- connecting ---------------------------------------------------------------------
    def await_broker(self, url: str, protocols: tuple[MQTTProtocolVersion, ...]) -> None:
        """Connect, waiting up to broker_wait seconds for a broker that is down or starting, with
        a backoff doubling from 1 s to 30 s. A broker that refuses our identity is not waited for."""
        deadline = time.monotonic() + self.config.broker_wait
        delay = 1.0
        while True:
            try:
                self._connect(url, protocols)
                return
            except BrokerRefused:
                raise
            except ConnectionError as exc:
                if time.monotonic() + delay > deadline or self._stop.is_set():
                    raise
                log.warning("waiting for the broker", extra={"fields": {"error": str(exc), "retry_in_s": delay}})
                if self._stop.wait(delay):
                    raise
                delay = min(delay * 2, 30.0)

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def _make_client(self, protocol: MQTTProtocolVersion) -> mqtt.Client:
        cfg = self.config
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.mqtt_client_id, protocol=protocol,
                        manual_ack=True, clean_session=False if protocol == mqtt.MQTTv311 else None)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(1, 30)
        if cfg.username:
            c.username_pw_set(cfg.username, cfg.password)
        elif cfg.insecure:  # plain TCP: the identity logs in with its password (companion/service/broker.py)
            c.username_pw_set(cfg.name, self.pki.secret(cfg.name))
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_socket_open = _nodelay
        return c

    def _connect_props(self, protocol: MQTTProtocolVersion) -> Properties | None:
        if protocol != mqtt.MQTTv5:
            return None
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry
        # Whatever the broker accepts reaches us (its own limit, max_packet_size), so that every
        # event gets an answer: one over max_message is rejected `oversize` and counted here,
        # never dropped unseen between the broker and the bridge.
        props.MaximumPacketSize = self.config.max_packet_size
        return props

    def _connect(self, url: str, protocols: tuple[MQTTProtocolVersion, ...]) -> None:
        host, port, tls = broker_address(url)
        for protocol in protocols:
            c = self._make_client(protocol)
            if tls:
                self._tls(c)
            props = self._connect_props(protocol)
            self._connack = None
            self._connected.clear()
            try:
                if protocol == mqtt.MQTTv5:
                    c.connect(host, port, keepalive=self.config.keepalive, clean_start=False, properties=props)
                else:
                    c.connect(host, port, keepalive=self.config.keepalive)
            except OSError as exc:
                raise ConnectionError(f"cannot reach the broker at {url}: {exc}") from None
            c.loop_start()
            if not self._connected.wait(5 if protocol == mqtt.MQTTv5 else 15):
                _discard(c)
                if protocol == mqtt.MQTTv5 and len(protocols) > 1:
                    continue  # no answer to MQTT 5: try 3.1.1
                raise ConnectionError(f"no CONNACK from the broker at {url}")
            rc, _ = self._connack or (1, False)
            if rc == 0:
                self.client = c
                self.state.protocol = "MQTT 5" if protocol == mqtt.MQTTv5 else "MQTT 3.1.1"
                return
            _discard(c)
            if rc in (134, 135, 4, 5):
                raise BrokerRefused(f"broker at {url} refused our identity {self.config.name} (reason {rc}): "
                                    "check the client certificate and the ACL (docs/security.md)")
            if protocol == mqtt.MQTTv5 and len(protocols) > 1:
                continue  # e.g. the embedded broker: 3.1.1 only
            raise ConnectionError(f"broker at {url} refused the connection (reason {rc})")

    def _tls(self, c: mqtt.Client) -> None:
        cfg = self.config
        ca = cfg.tls_ca or (str(self.pki.ca_crt) if self.pki.ca_crt.exists() else None)
        crt, key = self.pki.client_files(cfg.name)
        cert, keyfile = cfg.tls_cert or str(crt), cfg.tls_key or str(key)
        if ca is None and not cfg.insecure:
            raise ConfigError("mqtts:// needs tls_ca (the CA that signed the broker's certificate); "
                              "without it any server would do (use --insecure to accept that)")
        try:
            if ca is None:
                c.tls_set(certfile=cert, keyfile=keyfile, cert_reqs=ssl.CERT_NONE)
                c.tls_insecure_set(True)
            else:
                c.tls_set(ca_certs=ca, certfile=cert, keyfile=keyfile, cert_reqs=ssl.CERT_REQUIRED)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the TLS files (ca {ca}, cert {cert}): {exc}") from None

    # --- paho's callbacks (its network thread) ------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        rc = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        self._connack = (rc, bool(getattr(flags, "session_present", False)))
        if rc == 0 and not self._connack[1]:
            self._acks.new_session()
        if rc == 0:
            topics = [f"{self.config.prefix}/events/+", self.duis_topic]
            if self.config.share_group:
                topics = [f"$share/{self.config.share_group}/{t}" for t in topics]
            client.subscribe([(t, 1) for t in topics])
            keys = json.dumps({"keys": self.pki.bridge_public_keys()}, sort_keys=True)
            client.publish(f"{self.config.prefix}/keys", keys, qos=1, retain=True)
            self.state.connected = True
            self._on_connected()
            log.info("connected", extra={"fields": {"broker": self.state.broker_url, "topic": topics[0],
                                                    "duis_topic": topics[1]}})
        self._connected.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reason_codes: Any, properties: Any = None) -> None:
        # A refused subscription (ACL) would leave the bridge connected and deaf: say so loudly,
        # fail /readyz, and try again.
        codes = [rc.value if hasattr(rc, "value") else int(rc) for rc in reason_codes]
        if len(codes) > 1 and codes[1] >= 0x80:
            # A broker whose ACL predates the DCC adaptor: events still flow; say what is missing.
            log.warning("the broker refused our subscription to DUIS messages (duis/in): the DCC adaptor's "
                        "messages will not arrive (docs/duis.md)", extra={"fields": {"reason_codes": codes}})
            codes = codes[:1]
        if any(c >= 0x80 for c in codes):
            self.state.subscribed = False
            log.error("the broker refused our subscription to events (check the ACL; docs/security.md)",
                      extra={"fields": {"reason_codes": codes}})
            threading.Timer(2.0, self._resubscribe).start()
        else:
            self.state.subscribed = True

    def _resubscribe(self) -> None:
        if self.client is not None and self.state.connected and not self._stop.is_set():
            self._on_connect(self.client, None, None, 0)

    def _on_publish(self, client: Any, userdata: Any, mid: Any, reason_code: Any = None,
                    properties: Any = None) -> None:
        rc = reason_code.value if hasattr(reason_code, "value") else 0
        if rc >= 0x80:  # MQTT 5 PUBACK: not authorised, packet too large...
            self.metrics.publish_refused.inc()
            log.error("the broker refused one of our publishes (check the ACL; docs/security.md)",
                      extra={"fields": {"reason_code": rc}})

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        self.state.connected = False
        rc = reason_code.value if hasattr(reason_code, "value") else reason_code
        if rc == 142 and not self._stop.is_set():  # MQTT 5 "session taken over" (§3.14.2.1)
            # Another client connected with our client id: two replicas sharing one would take
            # the session from each other every second. This one stops, and says why.
            self.state.fatal = (f"another client connected with this bridge's client id "
                                f"{self.config.mqtt_client_id!r}: each replica needs its own client_id "
                                "(--client-id, FLAGWISE_CLIENT_ID; docs/operations.md)")
            log.error(self.state.fatal)
            client.disconnect()  # no automatic reconnect: it would take the session back
            self._stop.set()
            return
        if not self._stop.is_set():
            log.warning("disconnected", extra={"fields": {"reason": str(reason_code)}})

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.metrics.received.inc()
        # The size limit is enforced again on the worker; a bounded queue applies back-pressure.
        token = self._acks.receive(message.mid, message.qos)
        if token is None:  # a redelivery of a message still held: its first copy is acked, once
            self.metrics.redeliveries_merged.inc()
            return
        if not self._rates.take(message.topic):
            # One handheld past its rate (a flood): PUBACKed and set aside unread, so that the
            # others' events and acks keep flowing. A genuine handheld hears no ack and sends
            # the event again later (at-least-once); nothing it saved is lost.
            self.metrics.shed.inc()
            self.settle(token)
            log.warning("a handheld is over its message rate; its messages are set aside unread",
                        extra={"fields": {"topic": message.topic[:80], "rate": self.config.device_rate}})
            return
        box = self.duis_inbox if message.topic == self.duis_topic else self.inbox
        box.put(Incoming(message.topic, bytes(message.payload), time.time(), token))

    # --- for the workers ----------------------------------------------------------------
    def settle(self, token: Any) -> None:
        """PUBACK a received message, once; released even with no client (a redelivery is then new)."""
        ack = self._acks.release(token)
        client = self.client
        if ack is not None and client is not None:
            client.ack(*ack)


def _discard(c: mqtt.Client) -> None:
    """A client that will not be used: stop its loop and close its socket (no leak)."""
    try:
        c.loop_stop()
    except Exception:
        pass
    try:
        c.disconnect()
    except Exception:
        pass
    sock = c.socket()
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def _nodelay(client: Any, userdata: Any, sock: Any) -> None:
    # QoS 1 round trips crawl with Nagle + delayed ACK (shared/pitfalls.md).
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass
