"""Times for people: ISO 8601 in UTC (RFC 3339 §5.6) in logs and on the command line."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(ts: float, ms: bool = False) -> str:
    """Seconds since the epoch -> 2026-11-27T10:00:00Z (with milliseconds when ms)."""
    d = datetime.fromtimestamp(ts, timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{d.microsecond // 1000:03d}" if ms else "") + "Z"


def day(ts: float) -> str:
    """Seconds since the epoch -> its UTC date, 2026-11-27 (a flag's effective-from date)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def parse_time(text: str) -> float:
    """An ISO 8601 time (2026-11-27T10:00:00Z, an offset, or a date: its midnight UTC) or
    seconds since the epoch -> seconds since the epoch. A time without a zone is refused:
    a revocation must not move by the operator's time zone."""
    t = text.strip()
    try:
        return float(t)
    except ValueError:
        pass
    try:
        d = datetime.fromisoformat(t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t)
    except ValueError:
        raise ValueError(f"not a time: {text[:40]!r} (ISO 8601, e.g. 2026-11-27T10:00:00Z, "
                         "or seconds since the epoch)") from None
    if len(t) == 10:  # a date alone: midnight UTC
        d = d.replace(tzinfo=timezone.utc)
    if d.tzinfo is None:
        raise ValueError(f"{text[:40]!r} has no time zone: add Z (UTC) or an offset such as +01:00")
    return d.timestamp()
