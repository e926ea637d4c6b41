"""The bridge service: MQTT in (paho-mqtt 2), ingest, acks, flag updates out, read API.

Threads: paho's network loop; one ingest worker (batches -> one transaction -> acks);
a publisher draining the flag outbox to retained MQTT messages; a DTC ticker; the HTTP
server. A message is PUBACKed to the broker (manual ack) only after its batch committed,
so a bridge killed mid-batch gets the message again from its persistent session.
"""

from __future__ import annotations

import json
import queue
import socket
import ssl
import threading
import time
from typing import Any, Callable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from companion.service.broker import ManagedBroker
from companion.config import Config, ConfigError, broker_address
from companion.ids import eui64_bytes
from companion.service.ingest import Incoming, Ingestor, Outcome
from companion.service.metrics import Metrics
from companion.service.dtc_writer import DtcWriter
from companion.service.pki import Pki, PkiError
from companion.wire.signing import Signer
from companion.store.db import is_postgres
from companion.store.core import Store
from companion.service.flow import AckLedger, TopicRates
from companion.service.logs import log


def prepare_pki(config: Config) -> Pki:
    """The bridge's identity and signing key, made on first start if missing (docs/security.md)."""
    pki = Pki(config.pki, config.prefix)
    try:
        if not pki.exists:
            pki.init()
            log.warning("created a new certificate authority", extra={"fields": {"pki": str(pki.root)}})
        crt, _ = pki.client_files(config.name)
        if not crt.exists() and not (config.broker and config.tls_cert):
            pki.issue("bridge", config.name)
            log.info("issued the bridge identity", extra={"fields": {"name": config.name}})
        if not pki.signing_key_path(config.name).exists():
            pki.new_signing_key(config.name)
    except PkiError as exc:
        raise ConfigError(str(exc)) from None
    return pki


def _device_bytes(device_id: str | None) -> bytes:
    try:
        return eui64_bytes(device_id) if device_id else bytes(8)
    except ValueError:
        return bytes(8)


@dataclass
class BridgeState:
    connected: bool = False
    subscribed: bool = True
    protocol: str = ""
    broker_url: str = ""
    http_url: str | None = None
    admin_url: str | None = None
    started_at: float = field(default_factory=time.time)
    storage_error: str | None = None  # the store's last failure, until a batch goes through
    fatal: str | None = None  # why the bridge stopped itself (another replica with our client id)


class BrokerRefused(ConnectionError):
    """The broker refused our identity: waiting will not help."""


class Bridge:
    def __init__(self, config: Config, serve_http: Callable[["Bridge"], list[Any]] | None = None):
        """serve_http: started first in start(), -> the servers stop() closes (the read API,
        console and admin listener: companion/surfaces/http.py; the service layer never
        imports the surfaces, which hand it this)."""
        self.config = config
        self.store = Store(config.db, upgrade=config.db_upgrade)
        self.metrics = Metrics(config.mqtt_client_id, self.store.db.kind)
        self.ingestor = Ingestor(self.store, config)
        self.dtc = DtcWriter(self.store, config)
        self.state = BridgeState()
        self._queue: queue.Queue[Incoming] = queue.Queue(maxsize=10000)
        self._acks = AckLedger()
        self._rates = TopicRates(config.device_rate, config.device_burst)
        self._stop = threading.Event()
        self._publish_wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connected = threading.Event()
        self._connack: tuple[int, bool] | None = None
        self._client: mqtt.Client | None = None
        self._embedded: ManagedBroker | None = None
        self._serve_http = serve_http
        self._servers: list[Any] = []  # waitress's servers (untyped)
        self.pki = prepare_pki(config)
        self._instance: str | None = None  # this run's token in the replicas table
        self.signer = Signer(self.pki.signing_key(config.name))

    # --- life cycle ----------------------------------------------------------------------
    def start(self) -> "Bridge":
        cfg = self.config
        if cfg.insecure:
            log.warning("INSECURE: no TLS; passwords and traffic in clear, readable and forgeable by "
                        "anyone on the network path (--insecure)")
        if cfg.broker is None:
            home = Path.cwd() if is_postgres(cfg.db) else Path(cfg.db_path).resolve().parent
            self._embedded = ManagedBroker(cfg.listen, home / "broker",
                                           self.pki, cfg.max_packet_size, insecure=cfg.insecure, user=cfg.broker_user,
                                           die_with_parent=threading.current_thread() is threading.main_thread()
                                           ).start()
            self.state.broker_url = self._embedded.url + " (the bridge's own mosquitto)"
            url = self._embedded.url
        else:
            url = self.state.broker_url = cfg.broker
        # One running bridge per client id, checked in the store all replicas share: a second
        # one is refused here, before it takes the first one's broker session.
        import os
        import secrets

        self._instance = secrets.token_hex(8)
        self.store.claim_replica(cfg.mqtt_client_id, self._instance, socket.gethostname(), os.getpid(), time.time())
        self.dtc.recover()
        if (cfg.http or cfg.admin) and self._serve_http:
            self._servers = self._serve_http(self)  # first: /healthz and /readyz answer while the broker is awaited
        self._await_broker(url, (mqtt.MQTTv5,) if self._embedded else (mqtt.MQTTv5, mqtt.MQTTv311))
        self._spawn("ingest", self._ingest_loop)
        self._spawn("flag-publisher", self._publish_loop)
        self._spawn("dtc", self._dtc_loop)
        return self

    def _await_broker(self, url: str, protocols: tuple[MQTTProtocolVersion, ...]) -> None:
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

    def stop(self) -> None:
        self._stop.set()
        self._publish_wake.set()
        for t in self._threads:
            t.join(10)
        if self._instance is not None:
            try:
                self.store.release_replica(self.config.mqtt_client_id, self._instance)
            except Exception:  # a store that is down: the claim goes stale by itself
                pass
            self._instance = None
        for server in self._servers:
            server.close()
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

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        """A supervised worker: an unexpected exception is logged with its traceback, counted
        (flagwise_worker_restarts_total) and the worker started again after a backoff (1 s
        doubling to 30 s), so that one bad moment never leaves the bridge deaf while /healthz
        says ok. It ends only when the bridge stops."""
        def supervised() -> None:
            delay = 1.0
            while not self._stop.is_set():
                try:
                    target()
                    return
                except Exception:
                    log.exception(f"worker {name} failed; starting it again", extra={"fields": {"retry_in_s": delay}})
                    self.metrics.worker_restarts.labels(name).inc()
                    if self._stop.wait(delay):
                        return
                    delay = min(delay * 2, 30.0)

        t = threading.Thread(target=supervised, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # --- MQTT ---------------------------------------------------------------------------
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

    def _connect(self, url: str, protocols: tuple[MQTTProtocolVersion, ...]) -> None:
        host, port, tls = broker_address(url)
        for protocol in protocols:
            c = self._make_client(protocol)
            if tls:
                self._tls(c)
            props = None
            if protocol == mqtt.MQTTv5:
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = self.config.session_expiry
                # Whatever the broker accepts reaches us (its own limit, max_packet_size), so that
                # every event gets an answer: one over max_message is rejected `oversize` and
                # counted here, never dropped unseen between the broker and the bridge.
                props.MaximumPacketSize = self.config.max_packet_size
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
                self._client = c
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

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        rc = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        self._connack = (rc, bool(getattr(flags, "session_present", False)))
        if rc == 0 and not self._connack[1]:
            self._acks.new_session()
        if rc == 0:
            topic = f"{self.config.prefix}/events/+"
            if self.config.share_group:
                topic = f"$share/{self.config.share_group}/{topic}"
            client.subscribe(topic, qos=1)
            keys = json.dumps({"keys": self.pki.bridge_public_keys()}, sort_keys=True)
            client.publish(f"{self.config.prefix}/keys", keys, qos=1, retain=True)
            self.state.connected = True
            self._publish_wake.set()
            log.info("connected", extra={"fields": {"broker": self.state.broker_url, "topic": topic}})
        self._connected.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reason_codes: Any, properties: Any = None) -> None:
        # A refused subscription (ACL) would leave the bridge connected and deaf: say so loudly,
        # fail /healthz, and try again.
        codes = [rc.value if hasattr(rc, "value") else int(rc) for rc in reason_codes]
        if any(c >= 0x80 for c in codes):
            self.state.subscribed = False
            log.error("the broker refused our subscription to events (check the ACL; docs/security.md)",
                      extra={"fields": {"reason_codes": codes}})
            threading.Timer(2.0, self._resubscribe).start()
        else:
            self.state.subscribed = True

    def _resubscribe(self) -> None:
        if self._client is not None and self.state.connected and not self._stop.is_set():
            self._on_connect(self._client, None, None, 0)

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
            ack = self._acks.release(token)
            if ack is not None:
                client.ack(*ack)
            log.warning("a handheld is over its message rate; its messages are set aside unread",
                        extra={"fields": {"topic": message.topic[:80], "rate": self.config.device_rate}})
            return
        self._queue.put(Incoming(message.topic, bytes(message.payload), time.time(), token))

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
        # A store that is down or busy (a database restart, a failover) holds the batch: it is
        # retried with a bounded backoff, unacked at the broker, never rejected. Its handhelds
        # hear nothing and send again; a replica that dies meanwhile leaves the messages to the
        # broker's redelivery.
        # Only errors the store names transient are retried (Database.is_transient): a batch
        # that fails for a reason of its own is split, so one message cannot stall the rest.
        delay = 0.5
        while True:
            try:
                outcomes = self.ingestor.handle_batch(batch)
                self.state.storage_error = None
                break
            except Exception as exc:
                if self.store.db.is_transient(exc):
                    self.metrics.storage_retries.inc()
                    self._storage_trouble("storing events", exc)
                    if self._stop.wait(delay):
                        return
                    delay = min(delay * 2, 10.0)
                    self.store.close()  # a fresh connection on the retry
                    continue
                self.metrics.store_errors.labels("ingest").inc()
                if len(batch) > 1:  # isolate the message that breaks the batch; the others go through
                    log.error("a batch failed; handling its messages one at a time",
                              extra={"fields": {"error": f"{type(exc).__name__}: {str(exc)[:160]}",
                                                "size": len(batch)}})
                    for msg in batch:
                        self._handle([msg])
                    return
                log.exception("internal error handling a message", extra={"fields": {"topic": batch[0].topic[:120]}})
                outcomes = [Outcome(batch[0], "rejected", None, None, "internal_error", "internal error")]
                break
        client = self._client
        for o in outcomes:
            self._report(o)
            ack = self._acks.release(o.incoming.token)  # released even with no client: a redelivery is then new
            if client is None:
                continue
            dev = _device_bytes(o.device_id)
            eid = bytes.fromhex(o.event_id) if o.event_id else None
            if o.status in ("stored", "duplicate"):
                client.publish(f"{self.config.prefix}/acks/{o.device_id}",
                               self.signer.ack(dev, eid, o.status, flags=o.flags), qos=1)
                self.metrics.ack_latency.observe(time.time() - o.incoming.received_at)
            else:
                device = o.device_id or "unknown"
                body = self.signer.ack(dev, eid, "rejected", o.reason, o.detail)
                client.publish(f"{self.config.prefix}/rejected/{device}", body, qos=1)
            if ack is not None:
                client.ack(*ack)
        self._publish_wake.set()

    def _report(self, o: Outcome) -> None:
        m = self.metrics
        fields: dict[str, object] = {"status": o.status, "device": o.device_id, "event_id": o.event_id,
                                     "size": len(o.incoming.payload)}
        if o.status == "rejected":
            m.rejected.labels(o.reason).inc()
            fields.update(reason=o.reason, detail=o.detail)
        else:
            m.verified.inc()
            if o.status == "stored" and o.event is not None:
                m.stored.inc()
                fields.update(type=o.event.type, mpxns=list(o.event.mpxns))
                for kind in o.suspicious:
                    m.counter_anomalies.labels(kind).inc()
                if o.suspicious:
                    fields["suspicious"] = o.suspicious
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
            try:
                while not self._stop.is_set():
                    if store.db.kind == "postgres":
                        # Replicas: one publishes at a time (a transaction-level lock), so each
                        # change goes out once and a meter point's versions go out in order.
                        with store.tx() as db:
                            if not store.db.try_lock(db, "publish"):
                                break  # another replica is publishing; look again on the next wake
                            # Marking rows sent need not wait for the disk: lost in a crash, they
                            # are published again at the same version (consumers keep the highest).
                            store.db.relax_commit(db)
                            rows, sent = self._publish_rows(client, store.pending_mqtt(db=db))
                            if sent:
                                store.mark_mqtt_done(sent, db)
                    else:
                        rows, sent = self._publish_rows(client, store.pending_mqtt())
                        if sent:
                            store.mark_mqtt_done(sent)
                    if not rows:
                        break
                    if len(sent) < len(rows):
                        time.sleep(0.5)  # disconnected: paho resends on reconnect; we retry the rest
                        break
            except store.db.errors() as exc:
                if not store.db.is_transient(exc):
                    self.metrics.store_errors.labels("publish").inc()
                self._storage_trouble("publishing flags", exc)
                store.close()
                self._stop.wait(1.0)

    def _publish_rows(self, client: mqtt.Client, rows: list[Any]) -> tuple[list[Any], list[int]]:
        """Publish outbox rows (signed, retained, QoS 1); -> (rows, the seqs the broker took)."""
        sent: list[int] = []
        infos = [(seq, client.publish(f"{self.config.prefix}/flags/{mpxn}",
                                      self.signer.flag(json.loads(body)), qos=1, retain=True))
                 for seq, mpxn, body in rows]
        for seq, info in infos:
            try:
                info.wait_for_publish(timeout=10)
            except (RuntimeError, ValueError):
                break
            if not info.is_published():
                break
            sent.append(seq)
        return rows, sent

    def _storage_trouble(self, doing: str, exc: BaseException) -> None:
        self.state.storage_error = f"{type(exc).__name__}: {str(exc).strip()[:120]}"
        log.error(f"the store failed while {doing}; retrying", extra={"fields": {"error": self.state.storage_error}})

    def _dtc_loop(self) -> None:
        beat = 0.0
        while not self._stop.wait(1.0):
            if time.monotonic() - beat >= 5.0:
                beat = time.monotonic()
                try:
                    if self._instance is not None and not self.store.heartbeat_replica(
                            self.config.mqtt_client_id, self._instance, time.time()):
                        self.state.fatal = (f"another bridge took the client id {self.config.mqtt_client_id!r} "
                                            "while this one was stalled: stopping (docs/operations.md)")
                        log.error(self.state.fatal)
                        self._stop.set()
                        return
                except self.store.db.errors() as exc:
                    self._storage_trouble("beating the replica heartbeat", exc)
                self._revocations_due()
            try:
                for path in self.dtc.tick():
                    log.info("dtc file", extra={"fields": {"path": str(path)}})
            except Exception as exc:
                # Every failure backs off in the writer (a log line a backoff, not a second):
                # the folder (unwritable, full, gone), the store, or a fault of our own.
                kind = ("folder" if isinstance(exc, OSError) else
                        "store" if isinstance(exc, self.store.db.errors()) else "internal")
                self.metrics.dtc_errors.labels(kind).inc()
                fields = {"error": f"{type(exc).__name__}: {exc}"[:200], "kind": kind}
                if kind == "internal":
                    log.exception("writing DTC files failed; retrying with backoff", extra={"fields": fields})
                else:
                    log.error("writing DTC files failed; retrying with backoff", extra={"fields": fields})

    def _revocations_due(self) -> None:
        """A key revoked for a time now come (`keys revoke --at`) loses its certificate at the
        broker now: the handheld could connect until then, and cannot after."""
        try:
            for device_id in self.pki.due_revocations(time.time()):
                self.pki.revoke(device_id)
                log.warning("a revocation's time has come: the handheld's certificate is revoked at the broker",
                            extra={"fields": {"device": device_id}})
        except Exception as exc:  # the store or the PKI folder failing: tried again on the next beat
            log.error("revoking certificates at the broker failed; will retry",
                      extra={"fields": {"error": f"{type(exc).__name__}: {str(exc)[:160]}"}})

    # --- read API -----------------------------------------------------------------------
    def health(self, ready: bool = False) -> dict[str, Any]:
        """Liveness (/healthz): failing only when this process cannot make progress by itself (a
        worker thread died, its own broker exited, it stopped itself); a restart may help.
        Readiness (/readyz, ready=True): also the broker link up and subscribed, and the store
        answering; failing while a dependency is down, which a restart does not fix."""
        problems = []
        if self._embedded is not None and not self._embedded.alive:
            problems.append("the bridge's broker process has exited")
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead and not self._stop.is_set():
            problems.append("worker stopped: " + ", ".join(dead))
        if self.state.fatal:
            problems.append(self.state.fatal)
        events = None
        if ready:
            if not self.state.connected:
                problems.append("broker link down")
            elif not self.state.subscribed:
                problems.append("the broker refused our subscription to events (ACL)")
            if self.state.storage_error:
                problems.append(f"storage: {self.state.storage_error}")
            try:
                age = self.dtc.oldest_pending()
                self.metrics.dtc_oldest_pending.set(age)
                if age > self.config.dtc_alarm_age:
                    problems.append(f"DTC files: a change has waited {int(age)} s for its file (alarm at "
                                    f"{self.config.dtc_alarm_age:g} s)" + (f"; last error {self.dtc.error}"
                                                                           if self.dtc.error else ""))
            except self.store.db.errors():
                pass  # the store's own check below says so
            try:
                self.store.ping()
                events = self.store.event_count()
            except Exception as exc:  # sqlite3.Error, psycopg.Error, OSError: storage is failing
                problems.append(f"storage: {type(exc).__name__}: {str(exc).strip()[:80]}")
                self.store.close()  # a fresh connection next time
            self.metrics.up.set(0 if problems else 1)
        return {"status": "ok" if not problems else "failing", "problems": problems,
                "broker": self.state.broker_url, "protocol": self.state.protocol, "events": events,
                "insecure": self.config.insecure, "queue": self._queue.qsize(),
                "uptime_s": round(time.time() - self.state.started_at, 1)}

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
