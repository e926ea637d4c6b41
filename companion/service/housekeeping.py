"""The housekeeper: once a second, the DTC writer's tick (flow files for the registration
systems); every 5 s, this replica's heartbeat in the store and the revocations whose time has
come."""

from __future__ import annotations

import threading
import time

from companion.config import Config
from companion.service.dtc_writer import DtcWriter
from companion.service.logs import log
from companion.service.metrics import Metrics
from companion.service.pki import Pki
from companion.service.state import BridgeState
from companion.store.core import Store


class Housekeeper:
    def __init__(self, config: Config, store: Store, dtc: DtcWriter, pki: Pki, metrics: Metrics,
                 state: BridgeState, stop: threading.Event):
        self.config = config
        self.store = store
        self.dtc = dtc
        self.pki = pki
        self.metrics = metrics
        self.state = state
        self._stop = stop
        self.instance: str | None = None  # this run's token in the replicas table

    def run(self) -> None:
        beat = 0.0
        while not self._stop.wait(1.0):
            if time.monotonic() - beat >= 5.0:
                beat = time.monotonic()
                if not self._heartbeat():
                    return
                self._revocations_due()
            self._dtc_tick()

    def _heartbeat(self) -> bool:
        """False when another bridge took our client id while this one was stalled: it stops."""
        try:
            if self.instance is not None and not self.store.heartbeat_replica(
                    self.config.mqtt_client_id, self.instance, time.time()):
                self.state.fatal = (f"another bridge took the client id {self.config.mqtt_client_id!r} "
                                    "while this one was stalled: stopping (docs/operations.md)")
                log.error(self.state.fatal)
                self._stop.set()
                return False
        except self.store.db.errors() as exc:
            self.state.storage_trouble("beating the replica heartbeat", exc)
        return True

    def _dtc_tick(self) -> None:
        try:
            for path in self.dtc.tick():
                log.info("dtc file", extra={"fields": {"path": str(path)}})
        except Exception as exc:
            # Every failure backs off in the writer (a log line a backoff, not a second): the
            # folder (unwritable, full, gone), the store, or a fault of our own.
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
