"""The DUIS worker: DUIS messages the DCC adaptor publishes on `<prefix>/duis/in`, each taken as
`companion duis import` takes a file (companion/service/duis_import.py): verified against the
DCC's certificates, stored once, or refused with its reason; the flags of the meter points it
names derived again and published. The message is PUBACKed once it is stored or refused; a
store that is down holds it (unacked, so the broker delivers it again)."""

from __future__ import annotations

import queue
import threading
from typing import Callable

from companion.config import Config
from companion.service.dcc_view import rederive
from companion.service.duis_import import DuisIntake, ImportSummary
from companion.service.ingest import Incoming
from companion.service.logs import log
from companion.service.metrics import Metrics
from companion.service.mqtt_link import MqttLink
from companion.service.state import BridgeState
from companion.store.core import Store
from companion.store.smi import Inventory
from companion.wire.duis import load_certs


class DuisWorker:
    def __init__(self, config: Config, store: Store, link: MqttLink, metrics: Metrics, state: BridgeState,
                 stop: threading.Event, wake: Callable[[], None]):
        self.config = config
        self.store = store
        self.link = link
        self.metrics = metrics
        self.state = state
        self._stop = stop
        self._wake = wake
        certs = load_certs([config.duis_certs]) if config.duis_certs else []
        if not certs:
            log.warning("no duis_certs: DUIS messages from the DCC adaptor will be refused (docs/duis.md)")
        self.intake = DuisIntake(Inventory(store), certs)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.link.duis_inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            self.handle(msg)

    def handle(self, msg: Incoming) -> None:
        delay = 0.5
        while not self._stop.is_set():
            summary = ImportSummary()
            try:
                taken = self.intake.take(msg.payload, f"mqtt {msg.topic[:80]}", summary)
                changes = rederive(self.store, self.config, summary.mpxns) if summary.mpxns else 0
            except self.store.db.errors() as exc:
                if not self.store.db.is_transient(exc):
                    self.metrics.store_errors.labels("duis").inc()
                self.state.storage_trouble("storing a DUIS message", exc)
                self.store.close()
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, 10.0)
                continue
            outcome = ("stored" if summary.stored else "already" if summary.already
                       else next(iter(summary.refused), "refused"))
            self.metrics.duis.labels(outcome).inc()
            fields: dict[str, object] = {"outcome": outcome, "size": len(msg.payload)}
            if taken is not None:
                fields.update(kind=taken.kind, response_id=taken.response_id, devices=len(taken.devices),
                              flag_changes=changes)
            if summary.refusals:
                fields["detail"] = summary.refusals[0][2][:200]
                log.warning("a DUIS message was refused", extra={"fields": fields})
            else:
                log.info("duis", extra={"fields": fields})
            if changes:
                self._wake()  # the flag publisher
            break
        self.link.settle(msg.token)
