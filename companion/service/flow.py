"""Flow control on the bridge's MQTT link: one PUBACK per received message (AckLedger) and a
message rate per handheld (TopicRates)."""

from __future__ import annotations

import threading
import time


class AckLedger:
    """PUBACK exactly once per received message (MQTT 5 §4.3.2). A QoS 1 message redelivered
    while its first copy is still queued carries the same packet id: the copy is merged into the
    held one, never queued to be acknowledged twice, for a second PUBACK of that id could
    acknowledge a newer message that reuses it before that one is stored. A new session (CONNACK
    without session_present) starts a new generation: acks for messages held from the old one
    are meaningless there and are not sent (the broker delivers those messages again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}  # packet id -> the serial of the copy that holds it
        self._serial = 0
        self.generation = 0

    def new_session(self) -> None:
        with self._lock:
            self.generation += 1
            self._held.clear()

    def receive(self, mid: int, qos: int) -> tuple[int, int, int, int] | None:
        """The token to queue with the message, or None for a redelivery of a held one."""
        with self._lock:
            self._serial += 1
            if qos > 0:
                if mid in self._held:
                    return None
                self._held[mid] = self._serial
            return (mid, qos, self.generation, self._serial)

    def release(self, token: object) -> tuple[int, int] | None:
        """(mid, qos) to acknowledge now, once; None when there is nothing (left) to send."""
        if not isinstance(token, tuple) or len(token) != 4:
            return None
        mid, qos, generation, serial = token
        with self._lock:
            if qos == 0 or generation != self.generation or self._held.get(mid) != serial:
                return None
            del self._held[mid]
            return mid, qos


class TopicRates:
    """A token bucket per publishing topic (one a handheld: <prefix>/events/<device id>):
    `rate` messages a second, bursts of `burst`. Bounded: at most MAX_TOPICS buckets."""

    MAX_TOPICS = 100_000

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, list[float]] = {}

    def take(self, topic: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        key = topic[:200]  # the same bounded key to find a bucket and to make one
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.MAX_TOPICS:
                self._buckets.clear()
            b = self._buckets[key] = [float(self.burst), now]
        b[0] = min(self.burst, b[0] + (now - b[1]) * self.rate)
        b[1] = now
        if b[0] < 1:
            return False
        b[0] -= 1
        return True
