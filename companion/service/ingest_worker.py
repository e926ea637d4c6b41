"""The ingest worker: takes received events from the MQTT link in batches, has the Ingestor
verify and store each batch in one transaction, then answers every handheld (a signed ack or
rejection) and PUBACKs the messages to the broker, in that order."""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable

from companion.config import Config
from companion.ids import eui64_bytes
from companion.service.ingest import Incoming, Ingestor, Outcome, Prepared
from companion.service.logs import log
from companion.service.metrics import Metrics
from companion.service.mqtt_link import MqttLink
from companion.service.state import BridgeState
from companion.service.verify_pool import VerifyPool
from companion.store.core import Store
from companion.wire.signing import Signer


class IngestWorker:
    def __init__(self, config: Config, store: Store, link: MqttLink, signer: Signer, metrics: Metrics,
                 state: BridgeState, stop: threading.Event, stored: Callable[[], None]):
        self.config = config
        self.store = store
        self.ingestor = Ingestor(store, config)  # verifying in this thread until run() starts a pool
        self.link = link
        self.signer = signer
        self.metrics = metrics
        self.state = state
        self._stop = stop
        self._stored = stored  # e.g. wake the flag publisher

    def run(self) -> None:
        pool = self.ingestor.pool = VerifyPool(self.config.verify_workers)
        try:
            self._run()
        finally:
            pool.close()

    def _run(self) -> None:
        inbox = self.link.inbox
        pipelined = self.ingestor.pool.workers > 0
        while not self._stop.is_set():
            try:
                first = inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = self._collect([first], self.config.batch_wait_ms / 1000)
            started = self._start(batch) if pipelined else None
            # With a verify pool, pipelined: while a batch is stored and answered, the next
            # one's signatures are already being checked on the pool's workers. Only what is
            # waiting is taken (a batch is never held back for one that has not come), and only
            # a batch worth a transaction of its own is started early: a few messages are
            # topped up with what came meanwhile instead (each transaction is a commit; a
            # stream of tiny ones cost PostgreSQL a third of its events/s).
            while batch:
                after: list[Incoming] = []
                after_started = None
                if pipelined and not self._stop.is_set():
                    after = self._collect([], 0)
                    if 4 * len(after) >= self.config.batch_max:
                        after_started = self._start(after)
                self.handle(batch, started)
                if after and after_started is None:
                    after = self._collect(after, 0)
                batch, started = after, after_started

    def _collect(self, batch: list[Incoming], wait: float) -> list[Incoming]:
        """More messages for a batch, up to batch_max, waiting at most `wait` s for them."""
        inbox = self.link.inbox
        deadline = time.monotonic() + wait
        while len(batch) < self.config.batch_max:
            left = deadline - time.monotonic()
            try:
                batch.append(inbox.get(timeout=left) if left > 0 else inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _start(self, batch: list[Incoming]) -> Prepared | None:
        """The batch's checks begun (Ingestor.start), or None when the store cannot be read
        now: handle() then starts it again, with its retries."""
        try:
            return self.ingestor.start(batch)
        except Exception:
            return None

    def handle(self, batch: list[Incoming], started: Prepared | None = None) -> None:
        """A store that is down or busy (a database restart, a failover) holds the batch: it is
        retried with a bounded backoff, unacked at the broker, never rejected. Its handhelds
        hear nothing and send again; a replica that dies meanwhile leaves the messages to the
        broker's redelivery. Only errors the store names transient are retried
        (Database.is_transient): a batch that fails for a reason of its own is split, so one
        message cannot stall the rest. `started`: the batch as Ingestor.start left it (for its
        first try only)."""
        delay = 0.5
        while True:
            try:
                if started is not None:
                    prepared, started = started, None
                    outcomes = self.ingestor.finish(prepared)
                else:
                    outcomes = self.ingestor.handle_batch(batch)
                self.state.storage_error = None
                break
            except Exception as exc:
                if self.store.db.is_transient(exc):
                    self.metrics.storage_retries.inc()
                    self.state.storage_trouble("storing events", exc)
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
                        self.handle([msg])
                    return
                log.exception("internal error handling a message", extra={"fields": {"topic": batch[0].topic[:120]}})
                outcomes = [Outcome(batch[0], "rejected", None, None, "internal_error", "internal error")]
                break
        for o in outcomes:
            self._report(o)
            self._answer(o)
        self._stored()

    def _answer(self, o: Outcome) -> None:
        """The handheld's signed answer first, then the broker's PUBACK."""
        client = self.link.client
        if client is not None:
            dev = _device_bytes(o.device_id)
            eid = bytes.fromhex(o.event_id) if o.event_id else None
            if o.status in ("stored", "duplicate"):
                client.publish(f"{self.config.prefix}/acks/{o.device_id}",
                               self.signer.ack(dev, eid, o.status, flags=o.flags), qos=1)
                self.metrics.ack_latency.observe(time.time() - o.incoming.received_at)
            else:
                body = self.signer.ack(dev, eid, "rejected", o.reason, o.detail)
                client.publish(f"{self.config.prefix}/rejected/{o.device_id or 'unknown'}", body, qos=1)
        self.link.settle(o.incoming.token)

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


def _device_bytes(device_id: str | None) -> bytes:
    try:
        return eui64_bytes(device_id) if device_id else bytes(8)
    except ValueError:
        return bytes(8)
