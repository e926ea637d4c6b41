"""The bridge's log: JSON lines, repeated lines suppressed with a count (docs/bridge.md)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

from companion.times import iso

log = logging.getLogger("companion")


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": iso(record.created, ms=True), "level": record.levelname.lower(), "msg": record.getMessage()}
        out.update(getattr(record, "fields", {}))
        if record.exc_info:  # an internal error: the traceback is what on-call needs
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class RepeatFilter(logging.Filter):
    """Repeated lines go quiet: a rejection (per device and reason) or a warning or error
    (per message) is logged `burst` times a `window` seconds at most; the rest are counted,
    and the first line of the next window says how many were left out ("suppressed"). One
    handheld flooding garbage cannot grow the log by megabytes (stored events are never held
    back: each is a different event)."""

    def __init__(self, burst: int = 20, window: float = 10.0) -> None:
        super().__init__()
        self.burst, self.window = burst, window
        self._seen: dict[tuple[Any, ...], list[float]] = {}  # key -> [window start, lines, suppressed]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None) or {}
        if fields.get("status") == "rejected":
            key: tuple[Any, ...] = ("rejected", fields.get("device"), fields.get("reason"))
        elif record.levelno >= logging.WARNING:
            key = (record.levelno, record.msg)
        else:
            return True
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:  # bounded whatever the keys an attacker can make
                self._seen.clear()
            w = self._seen.setdefault(key, [now, 0, 0])
            if now - w[0] >= self.window:
                if w[2]:
                    record.fields = {**fields, "suppressed": int(w[2]), "suppressed_window_s": self.window}
                w[:] = [now, 0, 0]
            w[1] += 1
            if w[1] > self.burst:
                w[2] += 1
                return False
        return True


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(RepeatFilter())
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False
