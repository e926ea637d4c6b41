"""The bridge service, one small class a job, supervised here:

- MqttLink (service/mqtt_link.py): the broker connection, its callbacks and flow control;
- IngestWorker (service/ingest_worker.py): batches -> verify and store in one transaction
  (service/ingest.py) -> signed acks -> PUBACKs;
- FlagPublisher (service/flag_publisher.py): the flag outbox -> retained MQTT messages;
- Housekeeper (service/housekeeping.py): DTC files, the replica heartbeat, due revocations;
- DuisWorker (service/duis_worker.py): DUIS messages from the DCC adaptor (docs/duis.md);
- the HTTP surfaces, handed in by the caller (surfaces/http.py).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt

from companion.config import Config, ConfigError
from companion.service.broker import ManagedBroker
from companion.service.dtc_writer import DtcWriter
from companion.service.duis_worker import DuisWorker
from companion.service.flag_publisher import FlagPublisher
from companion.service.housekeeping import Housekeeper
from companion.service.ingest_worker import IngestWorker
from companion.service.logs import log
from companion.service.metrics import Metrics
from companion.service.mqtt_link import BrokerRefused, MqttLink
from companion.service.pki import Pki, PkiError
from companion.service.state import BridgeState
from companion.store.core import Store
from companion.store.db import is_postgres
from companion.wire.signing import Signer

__all__ = ["Bridge", "BridgeState", "BrokerRefused", "prepare_pki"]


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


class Bridge:
    """The supervisor: builds the workers, starts them and keeps them running, and answers for
    them (health). A received event goes MqttLink -> IngestWorker (verify, store, answer) ->
    FlagPublisher (retained flag updates) and Housekeeper (DTC files)."""

    def __init__(self, config: Config, serve_http: Callable[["Bridge"], list[Any]] | None = None):
        """serve_http: started first in start(), -> the servers stop() closes (the read API,
        console and admin listener: companion/surfaces/http.py; the service layer never
        imports the surfaces, which hand it this)."""
        self.config = config
        self.store = Store(config.db, upgrade=config.db_upgrade)
        self.metrics = Metrics(config.mqtt_client_id, self.store.db.kind)
        self.dtc = DtcWriter(self.store, config)
        self.state = BridgeState()
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._embedded: ManagedBroker | None = None
        self._serve_http = serve_http
        self._servers: list[Any] = []  # waitress's servers (untyped)
        self.pki = prepare_pki(config)
        self.signer = Signer(self.pki.signing_key(config.name))
        s = self.stopping
        self.link = MqttLink(config, self.pki, self.metrics, self.state, s, on_connected=lambda: self.publisher.wake())
        self.publisher = FlagPublisher(config, self.store, self.link, self.signer, self.metrics, self.state, s)
        self.ingest = IngestWorker(config, self.store, self.link, self.signer, self.metrics, self.state, s,
                                   stored=self.publisher.wake)
        self.duis = DuisWorker(config, self.store, self.link, self.metrics, self.state, s, wake=self.publisher.wake)
        self.housekeeper = Housekeeper(config, self.store, self.dtc, self.pki, self.metrics, self.state, s)

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
        instance = secrets.token_hex(8)
        self.store.claim_replica(cfg.mqtt_client_id, instance, socket.gethostname(), os.getpid(), time.time())
        self.housekeeper.instance = instance
        self.dtc.recover()
        if (cfg.http or cfg.admin) and self._serve_http:
            self._servers = self._serve_http(self)  # first: /healthz and /readyz answer while the broker is awaited
        self.link.await_broker(url, (mqtt.MQTTv5,) if self._embedded else (mqtt.MQTTv5, mqtt.MQTTv311))
        self._spawn("ingest", self.ingest.run)
        self._spawn("flag-publisher", self.publisher.run)
        self._spawn("dtc", self.housekeeper.run)
        self._spawn("duis", self.duis.run)
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.publisher.wake()
        for t in self._threads:
            t.join(10)
        instance, self.housekeeper.instance = self.housekeeper.instance, None
        if instance is not None:
            try:
                self.store.release_replica(self.config.mqtt_client_id, instance)
            except Exception:  # a store that is down: the claim goes stale by itself
                pass
        for server in self._servers:
            server.close()
        self.link.close()
        if self._embedded is not None:
            self._embedded.stop()

    def run_forever(self) -> None:
        try:
            while not self.stopping.wait(1):
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
            while not self.stopping.is_set():
                try:
                    target()
                    return
                except Exception:
                    log.exception(f"worker {name} failed; starting it again", extra={"fields": {"retry_in_s": delay}})
                    self.metrics.worker_restarts.labels(name).inc()
                    if self.stopping.wait(delay):
                        return
                    delay = min(delay * 2, 30.0)

        t = threading.Thread(target=supervised, name=name, daemon=True)
        t.start()
        self._threads.append(t)

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
        if dead and not self.stopping.is_set():
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
                "insecure": self.config.insecure, "queue": self.link.inbox.qsize(),
                "uptime_s": round(time.time() - self.state.started_at, 1)}
