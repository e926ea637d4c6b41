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


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines written in batches: a warning or worse at once (with every line before it), the
    others within FLUSH_EVERY seconds. A write (a system call) for each event's line was most
    of what logging an event cost the bridge (docs/bridge.md "Where the CPU goes"). At exit
    (logging.shutdown) and on close the rest is written; a process killed outright loses at
    most the last FLUSH_EVERY seconds of info lines."""

    FLUSH_EVERY = 0.2
    MAX_LINES = 512

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._stopped = threading.Event()
        threading.Thread(target=self._flusher, name="log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        with self.lock:  # type: ignore[union-attr]
            self._lines.append(line)
            urgent = record.levelno >= logging.WARNING or len(self._lines) >= self.MAX_LINES
        if urgent:
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._lines:
                text, self._lines = "".join(self._lines), []
                try:
                    self.stream.write(text)
                except (OSError, ValueError):  # a closed or broken stream: nothing to tell it
                    pass
            super().flush()

    def close(self) -> None:
        self._stopped.set()
        self.flush()
        super().close()

    def _flusher(self) -> None:
        while not self._stopped.wait(self.FLUSH_EVERY):
            self.flush()


def setup_logging(level: str) -> None:
    for old in log.handlers:
        old.close()
    handler = BatchedStreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(RepeatFilter())
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False
