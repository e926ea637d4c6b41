"""Prometheus metrics of one bridge (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, Info, PlatformCollector,
                               ProcessCollector)


class Metrics:
    def __init__(self, replica: str = "bridge", backend: str = "sqlite") -> None:
        from companion import __version__

        r = self.registry = CollectorRegistry()
        # The process's CPU, memory, descriptors and start time, and the Python runtime.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        Info("flagwise_build", "The bridge's version, replica (MQTT client id) and store", registry=r).info(
            {"version": __version__, "replica": replica, "store": backend})
        self.up = Gauge("flagwise_ready", "1 while the replica is ready (/readyz): broker link up and "
                        "subscribed, store answering", registry=r)
        self.worker_restarts = Counter("flagwise_worker_restarts", "Worker threads started again after an "
                                       "unexpected error", ["worker"], registry=r)
        self.storage_retries = Counter("flagwise_storage_retries", "Batches retried because the store failed",
                                       registry=r)
        self.store_errors = Counter("flagwise_store_errors", "Store failures that are not transient (a bad "
                                    "statement, a limit passed): never retried as is", ["worker"], registry=r)
        self.dtc_errors = Counter("flagwise_dtc_errors", "Failed attempts to assign or write DTC files",
                                  ["kind"], registry=r)
        self.dtc_oldest_pending = Gauge("flagwise_dtc_oldest_pending_seconds", "Age of the oldest flag change "
                                        "not yet in a written DTC file", registry=r)
        self.redeliveries_merged = Counter("flagwise_redeliveries_merged", "QoS 1 redeliveries of a message "
                                           "still held, merged into it (one PUBACK each)", registry=r)
        self.shed = Counter("flagwise_events_shed", "Messages of a handheld over its rate (device_rate), "
                            "PUBACKed and set aside unread", registry=r)
        self.duis = Counter("flagwise_duis_messages", "DUIS messages from the DCC adaptor, by outcome (stored, "
                            "already, or the refusal's reason)", ["outcome"], registry=r)
        self.received = Counter("flagwise_events_received", "Event messages received", registry=r)
        self.verified = Counter("flagwise_events_verified", "Event messages that passed every check", registry=r)
        self.rejected = Counter("flagwise_events_rejected", "Event messages rejected", ["reason"], registry=r)
        self.stored = Counter("flagwise_events_stored", "Events stored (first delivery)", registry=r)
        self.duplicates = Counter("flagwise_events_duplicate", "Re-deliveries of stored events", registry=r)
        self.flag_changes = Counter("flagwise_flag_changes", "Flag changes written to the outbox", ["flag"],
                                    registry=r)
        self.publish_refused = Counter("flagwise_publish_refused", "Our publishes the broker refused (ACL, size)",
                                       registry=r)
        self.counter_anomalies = Counter("flagwise_counter_anomalies", "Events whose device counter repeated or "
                                         "went backwards (kept, recorded)", ["kind"], registry=r)
        self.suspicious_devices = Gauge("flagwise_suspicious_devices", "Handhelds with a counter anomaly",
                                        registry=r)
        self.dtc_files_pending = Gauge("flagwise_dtc_files_pending",
                                       "DTC files assigned but not yet written (a failing folder)", registry=r)
        self.outbox_depth = Gauge("flagwise_outbox_depth", "Flag changes not yet sent", ["output"], registry=r)
        self.ack_latency = Histogram(
            "flagwise_ack_latency_seconds", "From receiving an event to publishing its ack",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
