"""The bridge service: MQTT in (paho-mqtt 2), ingest, acks, flag updates out, read API.

Threads: paho's network loop; one ingest worker (batches -> one transaction -> acks);
a publisher draining the flag outbox to retained MQTT messages; a DTC ticker; the HTTP
server. A message is PUBACKed to the broker (manual ack) only after its batch committed,
so a bridge killed mid-batch gets the message again from its persistent session.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field

import cbor2
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .api import Api
from .broker import EmbeddedBroker
from .config import Config, broker_address, host_port
from .ingest import Incoming, Ingestor, Outcome
from .metrics import Metrics
from .outputs import DtcWriter
from .store import Store

log = logging.getLogger("companion")


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "msg": record.getMessage()}
        out.update(getattr(record, "fields", {}))
        return json.dumps(out, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False


def ack_payload(event_id: str, status: str) -> bytes:
    """<prefix>/acks/<device>: CBOR {0: event id (16 bytes), 1: "stored" | "duplicate"}."""
    return cbor2.dumps({0: bytes.fromhex(event_id), 1: status}, canonical=True)


@dataclass
class BridgeState:
    connected: bool = False
    protocol: str = ""
    broker_url: str = ""
    http_url: str | None = None
    started_at: float = field(default_factory=time.time)


class Bridge:
    def __init__(self, config: Config):
        self.config = config
        self.metrics = Metrics()
        self.store = Store(config.db_path)
        self.ingestor = Ingestor(self.store, config)
        self.dtc = DtcWriter(self.store, config)
        self.state = BridgeState()
        self._queue: queue.Queue[Incoming] = queue.Queue(maxsize=10000)
        self._stop = threading.Event()
        self._publish_wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connected = threading.Event()
        self._connack: tuple[int, bool] | None = None
        self._client: mqtt.Client | None = None
        self._embedded: EmbeddedBroker | None = None
        self._http = None

    # --- life cycle ----------------------------------------------------------------------
    def start(self) -> "Bridge":
        cfg = self.config
        if cfg.broker is None:
            self._embedded = EmbeddedBroker(cfg.listen).start()
            self.state.broker_url = self._embedded.url + " (embedded)"
            url = self._embedded.url
        else:
            url = self.state.broker_url = cfg.broker
        self.dtc.recover()
        # amqtt speaks MQTT 3.1.1 only, and does not answer an MQTT 5 CONNECT with properties.
        self._connect(url, (mqtt.MQTTv311,) if self._embedded else (mqtt.MQTTv5, mqtt.MQTTv311))
        self._spawn("ingest", self._ingest_loop)
        self._spawn("flag-publisher", self._publish_loop)
        self._spawn("dtc", self._dtc_loop)
        if cfg.http:
            self._start_http()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._publish_wake.set()
        for t in self._threads:
            t.join(10)
        if self._http is not None:
            self._http.close()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        if self._embedded is not None:
            self._embedded.stop()

    def run_forever(self) -> None:
        try:
            while not self._stop.wait(1):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def _spawn(self, name: str, target) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # --- MQTT ---------------------------------------------------------------------------
    def _make_client(self, protocol: int) -> mqtt.Client:
        cfg = self.config
        kw = {"clean_session": False} if protocol == mqtt.MQTTv311 else {}
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=protocol,
                        manual_ack=True, **kw)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(1, 30)
        if cfg.username:
            c.username_pw_set(cfg.username, cfg.password)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_socket_open = _nodelay
        return c

    def _connect(self, url: str, protocols: tuple[int, ...]) -> None:
        host, port, tls = broker_address(url)
        for protocol in protocols:
            c = self._make_client(protocol)
            if tls:
                c.tls_set(ca_certs=self.config.tls_ca, certfile=self.config.tls_cert,
                          keyfile=self.config.tls_key, cert_reqs=ssl.CERT_REQUIRED)
            props = None
            if protocol == mqtt.MQTTv5:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.config.session_expiry
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
                c.loop_stop()
                if protocol == mqtt.MQTTv5:
                    continue  # no answer to MQTT 5: try 3.1.1
                raise ConnectionError(f"no CONNACK from the broker at {url}")
            rc, _ = self._connack or (1, False)
            if rc == 0:
                self._client = c
                self.state.protocol = "MQTT 5" if protocol == mqtt.MQTTv5 else "MQTT 3.1.1"
                return
            c.loop_stop()
            c.disconnect()
            if protocol == mqtt.MQTTv5:
                continue  # e.g. the embedded broker: 3.1.1 only
            raise ConnectionError(f"broker at {url} refused the connection (reason {rc})")

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        rc = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        self._connack = (rc, bool(getattr(flags, "session_present", False)))
        if rc == 0:
            topic = f"{self.config.prefix}/events/+"
            if self.config.share_group:
                topic = f"$share/{self.config.share_group}/{topic}"
            client.subscribe(topic, qos=1)
            self.state.connected = True
            self._publish_wake.set()
            log.info("connected", extra={"fields": {"broker": self.state.broker_url, "topic": topic}})
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.state.connected = False
        if not self._stop.is_set():
            log.warning("disconnected", extra={"fields": {"reason": str(reason_code)}})

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self.metrics.received.inc()
        # The size limit is enforced again on the worker; a bounded queue applies back-pressure.
        self._queue.put(Incoming(message.topic, bytes(message.payload), time.time(), (message.mid, message.qos)))

    # --- ingest -------------------------------------------------------------------------
    def _ingest_loop(self) -> None:
        wait = self.config.batch_wait_ms / 1000
        while not self._stop.is_set():
            try:
                batch = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            deadline = time.monotonic() + wait
            while len(batch) < self.config.batch_max:
                left = deadline - time.monotonic()
                try:
                    batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            self._handle(batch)

    def _handle(self, batch: list[Incoming]) -> None:
        try:
            outcomes = self.ingestor.handle_batch(batch)
        except Exception:
            if len(batch) == 1:
                log.exception("internal error handling a message", extra={"fields": {"topic": batch[0].topic}})
                outcomes = [Outcome(batch[0], "rejected", None, None, "internal_error", "internal error")]
            else:  # isolate the message that breaks the batch; the others go through
                for msg in batch:
                    self._handle([msg])
                return
        client = self._client
        for o in outcomes:
            self._report(o)
            if client is None:
                continue
            if o.status in ("stored", "duplicate"):
                client.publish(f"{self.config.prefix}/acks/{o.device_id}", ack_payload(o.event_id, o.status), qos=1)
                self.metrics.ack_latency.observe(time.time() - o.incoming.received_at)
            else:
                device = o.device_id or "unknown"
                body = {"reason": o.reason, "detail": o.detail, "event_id": o.event_id,
                        "size": len(o.incoming.payload), "topic": o.incoming.topic}
                client.publish(f"{self.config.prefix}/rejected/{device}", json.dumps(body), qos=1)
            mid, qos = o.incoming.token if o.incoming.token else (None, 0)
            if mid is not None and qos > 0:
                client.ack(mid, qos)
        self._publish_wake.set()

    def _report(self, o: Outcome) -> None:
        m = self.metrics
        fields = {"status": o.status, "device": o.device_id, "event_id": o.event_id,
                  "size": len(o.incoming.payload)}
        if o.status == "rejected":
            m.rejected.labels(o.reason).inc()
            fields.update(reason=o.reason, detail=o.detail)
        else:
            m.verified.inc()
            if o.status == "stored":
                m.stored.inc()
                fields.update(type=o.event.type, mpxns=list(o.event.mpxns))
            else:
                m.duplicates.inc()
            for ch in o.changes:
                m.flag_changes.labels(str(ch["flag"])).inc()
            if o.changes:
                fields["flag_changes"] = [f"{c['mpxn']}={c['flag']} v{c['version']}" for c in o.changes]
        log.info("event", extra={"fields": fields})

    # --- outputs ------------------------------------------------------------------------
    def _publish_loop(self) -> None:
        store = self.store  # connections are per thread
        while not self._stop.is_set():
            self._publish_wake.wait(0.5)
            self._publish_wake.clear()
            client = self._client
            if client is None or not self.state.connected:
                continue
            while not self._stop.is_set():
                rows = store.pending_mqtt()
                if not rows:
                    break
                sent = []
                infos = [(seq, client.publish(f"{self.config.prefix}/flags/{mpxn}", body, qos=1, retain=True))
                         for seq, mpxn, body in rows]
                for seq, info in infos:
                    try:
                        info.wait_for_publish(timeout=10)
                    except (RuntimeError, ValueError):
                        break
                    if not info.is_published():
                        break
                    sent.append(seq)
                if sent:
                    store.mark_mqtt_done(sent)
                if len(sent) < len(rows):
                    time.sleep(0.5)  # disconnected: paho resends on reconnect; we retry the rest
                    break

    def _dtc_loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                for path in self.dtc.tick():
                    log.info("dtc file", extra={"fields": {"path": str(path)}})
            except Exception:
                log.exception("writing DTC files failed; will retry")

    # --- read API -----------------------------------------------------------------------
    def health(self) -> dict:
        return {"status": "ok" if self.state.connected else "disconnected", "broker": self.state.broker_url,
                "protocol": self.state.protocol, "events": self.store.event_count(),
                "queue": self._queue.qsize(), "uptime_s": round(time.time() - self.state.started_at, 1)}

    def _start_http(self) -> None:
        from waitress.server import create_server

        host, port = host_port(self.config.http, "http")
        try:
            self._http = create_server(Api(self.store, self.config, self.metrics, self.health),
                                       host=host, port=port, threads=4)
        except OSError as exc:
            raise OSError(f"cannot serve the read API on {host}:{port}: {exc.strerror}") from None
        self.state.http_url = f"http://{host}:{self._http.effective_port}"
        # Not joined on stop: closing the server's sockets is what ends it.
        threading.Thread(target=self._http.run, name="http", daemon=True).start()


def _nodelay(client, userdata, sock) -> None:
    # QoS 1 round trips crawl with Nagle + delayed ACK (shared/pitfalls.md).
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass
