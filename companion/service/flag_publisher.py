"""The flag publisher: drains the store's flag outbox to signed, retained MQTT messages
(`<prefix>/flags/<mpxn>`, QoS 1), marking each row sent once the broker took it."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from companion.config import Config
from companion.service.metrics import Metrics
from companion.service.mqtt_link import MqttLink
from companion.service.state import BridgeState
from companion.store.core import Store
from companion.wire.signing import Signer


class FlagPublisher:
    def __init__(self, config: Config, store: Store, link: MqttLink, signer: Signer, metrics: Metrics,
                 state: BridgeState, stop: threading.Event):
        self.config = config
        self.store = store
        self.link = link
        self.signer = signer
        self.metrics = metrics
        self.state = state
        self._stop = stop
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        store = self.store  # connections are per thread
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            client = self.link.client
            if client is None or not self.state.connected:
                continue
            try:
                self._drain(client)
            except store.db.errors() as exc:
                if not store.db.is_transient(exc):
                    self.metrics.store_errors.labels("publish").inc()
                self.state.storage_trouble("publishing flags", exc)
                store.close()
                self._stop.wait(1.0)

    def _drain(self, client: mqtt.Client) -> None:
        store = self.store
        while not self._stop.is_set():
            if store.db.kind == "postgres":
                # Replicas: one publishes at a time (a transaction-level lock), so each change
                # goes out once and a meter point's versions go out in order.
                with store.tx() as db:
                    if not store.db.try_lock(db, "publish"):
                        return  # another replica is publishing; look again on the next wake
                    # Marking rows sent need not wait for the disk: lost in a crash, they are
                    # published again at the same version (consumers keep the highest).
                    store.db.relax_commit(db)
                    rows, sent = self._publish_rows(client, store.pending_mqtt(db=db))
                    if sent:
                        store.mark_mqtt_done(sent, db)
            else:
                rows, sent = self._publish_rows(client, store.pending_mqtt())
                if sent:
                    store.mark_mqtt_done(sent)
            if not rows:
                return
            if len(sent) < len(rows):
                time.sleep(0.5)  # disconnected: paho resends on reconnect; we retry the rest
                return

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
