"""Alert triage for network operators (docs/triage.md): for an alert (MPAN, device, time), was a
SMETS2 system expected at that meter point then, was the alerting device its meter then, and a
verdict with the evidence behind it. Pure: from the meter point's verified events and the DCC's
inventory statements (companion/sources.py), and the device's own sightings elsewhere, all cut
at the alert's time.

Verdicts:
- `expected`: a SMETS2 meter commissioned there then (flag `A` from both sources at that time),
  and it is the alerting device (or its hub);
- `device_not_here`: the alerting device was elsewhere, or removed, by then (or another meter was
  the meter there);
- `smets1`: the meter point's system then was SMETS1;
- `no_smart_system`: the meter point's evidence then shows no commissioned smart system (legacy,
  removed, decommissioned, or installed and never commissioned);
- `unknown`: no evidence of the meter point or the device before the alert.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from companion import policy, sources
from companion.ids import check_mpan, is_eui64
from companion.wire.event import Event
from companion.times import day

VERDICTS = ("expected", "device_not_here", "no_smart_system", "smets1", "unknown")
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


class AlertError(ValueError):
    """A bad alert: `field` names what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Alert:
    mpan: str
    device_id: str
    at: int
    alert_code: str | None = None


def parse_alert(row: dict[str, Any], now: float) -> Alert:
    """One alert from its fields (`mpan`, `device_id`, `time`, `alert_code`?); AlertError names
    the field that is wrong."""
    mpan = str(row.get("mpan") or "").strip()
    try:
        check_mpan(mpan)
    except ValueError as exc:
        raise AlertError("mpan", str(exc)) from None
    device = str(row.get("device_id") or "").strip().upper()
    if not is_eui64(device):
        raise AlertError("device_id", f"not an EUI-64 XX-XX-XX-XX-XX-XX-XX-XX: {device[:30]!r}")
    raw = row.get("time")
    if isinstance(raw, dt.datetime):
        t = raw
    else:
        text = str(raw or "").strip()
        try:
            t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise AlertError("time", f"not an ISO 8601 time: {text[:40]!r}") from None
    if t.tzinfo is None:
        raise AlertError("time", "give a time zone (Z or +00:00): alerts are UTC")
    if t < EARLIEST:
        raise AlertError("time", "before 2000")
    if t.timestamp() > now + 300:
        raise AlertError("time", "in the future")
    code = row.get("alert_code")
    code = None if code is None or str(code).strip() == "" else str(code).strip()[:32]
    return Alert(mpan, device, int(t.timestamp()), code)


class History:
    """One meter point's evidence, sorted once: the evidence before an alert is a prefix of it
    (events by survey time, the DCC's statements by the time each applied), and the field's flag
    of each prefix is derived once, however many alerts read it."""

    def __init__(self, mpan: str, events: list[Event], facts: list[sources.SmiFact]):
        self.mpan = mpan
        self.events = sorted((e for e in events if mpan in e.mpxns), key=policy.order_key)
        self.times = [e.evidence.when for e in self.events]
        self.facts = sorted(facts, key=lambda f: f.since)
        self.fact_times = [f.since for f in self.facts]
        self._field: dict[int, policy.Flag] = {}
        self._site: dict[int, tuple[Any, ...]] = {}

    def at(self, t: int) -> tuple[list[Event], list[sources.SmiFact], policy.Flag, Event | None, str | None,
                                  str | None]:
        """At t: the events and statements known, the flag from both sources, the last event,
        and the meter and hub then. Kept for each prefix with no statement of the DCC's (the
        flag then depends on the events alone); with one, worked out again for each t (the
        two-source rules read t: an install and leave overdue by then)."""
        n, k = bisect_right(self.times, t), bisect_right(self.fact_times, t)
        got = self._site.get(n) if k == 0 else None
        if got is not None:
            return got
        before, known = self.events[:n], self.facts[:k]
        field = self._field.get(n)
        if field is None:
            field = self._field[n] = policy.derive(self.mpan, before)
        flag = sources.combine(self.mpan, field, before, known, t).flag
        last = before[-1] if before else None
        meter = policy.meter_of(last, self.mpan) if last else None
        smi_meter = sources._smi_meter(self.mpan, sources.latest(known)) if known else None
        meter_eui = meter.eui.upper() if meter else (smi_meter.device_id if smi_meter else None)
        hub = last.evidence.hub.chf.upper() if last and last.evidence.hub else (smi_meter.chf if smi_meter else None)
        got = (before, known, flag, last, meter_eui, hub)
        if k == 0:
            self._site[n] = got
        return got


def triage(alert: Alert, events: list[Event], facts: list[sources.SmiFact],
           device_events: list[Event], device_facts: list[sources.SmiFact]) -> dict[str, Any]:
    """The answer for one alert: verdict, smets2_expected, device_is_meter, since, evidence."""
    return triage_at(alert, History(alert.mpan, events, facts), device_events, device_facts)


def triage_at(alert: Alert, site: History, device_events: list[Event],
              device_facts: list[sources.SmiFact]) -> dict[str, Any]:
    """triage() for an alert at a meter point whose evidence is already sorted (`site`)."""
    before, known, flag, last, meter_eui, hub = site.at(alert.at)
    is_meter = None if meter_eui is None else alert.device_id in (meter_eui, hub)
    since = flag.effective_from
    evidence = flag.reason if flag.flag is not None else None

    def answer(verdict: str, expected: bool | None, why: str | None = None) -> dict[str, Any]:
        return {"verdict": verdict, "smets2_expected": expected, "device_is_meter": is_meter, "since": since,
                "evidence": why or evidence}

    if last is not None and last.evidence.hub is not None and last.evidence.hub.generation == "SMETS1":
        return answer("smets1", False, f"{last.type} {last.id.hex()[:8]}: a SMETS1 hub "
                                        f"{last.evidence.hub.chf} at {alert.mpan}")
    elsewhere = _elsewhere(alert, device_events, device_facts) or _gone_from(alert, before)
    if flag.flag == "A":
        if is_meter:
            return answer("expected", True)
        return answer("device_not_here", True, elsewhere or f"the meter at {alert.mpan} then was {meter_eui}: "
                                                           f"{evidence}")
    if elsewhere:
        return answer("device_not_here", flag.flag == "A", elsewhere)
    if flag.flag in ("N", "I"):
        return answer("no_smart_system", False)
    if before or known:
        return answer("no_smart_system", False, "no smart meter in the evidence of this meter point then")
    return answer("unknown", None, "no evidence of this meter point or this device before the alert")


def _gone_from(alert: Alert, before: list[Event]) -> str | None:
    """The device was seen at the alert's meter point, and a later visit there (before the alert)
    did not find it: removed by then."""
    seen = [e for e in before if any(d.eui.upper() == alert.device_id for d in e.evidence.devices)]
    if not seen:
        return None
    later = [e for e in before if policy.order_key(e) > policy.order_key(seen[-1])
             and not any(d.eui.upper() == alert.device_id for d in e.evidence.devices)]
    if not later:
        return None
    e = later[0]
    return f"{alert.device_id} was gone from {alert.mpan} by {day(e.evidence.when)} ({e.type} {e.id.hex()[:8]})"


def _elsewhere(alert: Alert, device_events: list[Event], device_facts: list[sources.SmiFact]) -> str | None:
    """Where the device was at the alert's time, when not at the alert's meter point (or gone)."""
    seen = [(e.evidence.when, e, d) for e in device_events if e.evidence.when <= alert.at
            for d in e.evidence.devices if d.eui.upper() == alert.device_id]
    smi = [f for f in device_facts if f.since <= alert.at and f.device_id == alert.device_id]
    last_field = max(seen, key=lambda x: (x[0], x[1].id)) if seen else None
    last_smi = max(smi, key=lambda f: (f.since, f.at, f.message_seq)) if smi else None
    if last_smi is not None and last_smi.status in sources.GONE and (
            last_field is None or last_smi.since >= last_field[0]):
        return f"{alert.device_id} was {last_smi.status} in the DCC's inventory from {day(last_smi.since)}"
    if last_field is not None:
        when, ev, d = last_field
        if d.mpxn and d.mpxn != alert.mpan:
            return f"{alert.device_id} was at {d.mpxn} ({ev.type} {ev.id.hex()[:8]} on {day(when)})"
        if d.status in policy.GONE:
            return f"{alert.device_id} was {d.status} in the hub's log on {day(when)}"
    if last_smi is not None and last_smi.mpxns and alert.mpan not in last_smi.mpxns:
        return (f"the DCC's inventory placed {alert.device_id} at {', '.join(last_smi.mpxns)} "
                f"from {day(last_smi.since)}")
    return None
