"""The flag policy: from a meter point's verified events to its DCC Service Flag (MP077).

A pure function (docs/flag-policy.md). It reads each event's *evidence*, not just its job
type: a `commission` whose survey shows no WAN gives `I`, whatever the job claimed.

- ``A`` the hub's CHF is commissioned (served by the DCC) with its WAN up, and the meter
  point's meter (ESME for an MPAN; GSME for an MPRN, with the hub's GPF) is Commissioned
  and answers on the HAN;
- ``I`` smart devices are installed but not commissioned (install and leave included);
- ``N`` the smart meter was removed (legacy replacement, nothing, or the first half of an
  exchange), is decommissioned/withdrawn, or is a SMETS1 meter not enrolled in the DCC;
- ``None`` no smart event was ever seen for the meter point.

Order-independent: events are taken in the order of their evidence (read time, then
device time, then counter, then event id), so any arrival order of the same set gives the
same flags.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from .event import Device, Event
from .ids import is_mpan

FLAGS = ("A", "I", "N")
# Pre-MP077 registration systems know A, S (suspended) and W (withdrawn) only. The mapping
# is configuration (docs/flag-policy.md); this is the default.
DEFAULT_LEGACY_MAPPING = {"A": "A", "I": "", "N": "W"}
GONE = ("Decommissioned", "Withdrawn")


@dataclass(frozen=True)
class Flag:
    mpxn: str
    flag: str | None
    effective_from: str | None  # YYYY-MM-DD, UTC, from the deciding event's evidence
    reason: str
    event_id: str | None  # the deciding event (hex)
    event_ids: tuple[str, ...]  # every event considered, in policy order
    override: str | None = None  # the installer's override on the deciding event, if any

    def as_dict(self) -> dict:
        return {
            "mpxn": self.mpxn, "flag": self.flag, "effective_from": self.effective_from,
            "reason": self.reason, "event_id": self.event_id, "event_ids": list(self.event_ids),
            "override": self.override,
        }


@dataclass(frozen=True)
class Observation:
    """What one event says about one meter point: a flag and why, or nothing."""

    flag: str | None
    reason: str


def _date(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def order_key(ev: Event) -> tuple:
    # Clocks tick in seconds: one handheld's events in the same second keep their counter order.
    return (ev.evidence.read_time, ev.time, ev.counter, ev.id)


def _meter(ev: Event, mpxn: str) -> Device | None:
    want = "ESME" if is_mpan(mpxn) else "GSME"
    for d in ev.evidence.devices:
        if d.mpxn == mpxn and d.type == want:
            return d
    return None


def observe(ev: Event, mpxn: str) -> Observation:
    """The flag one event's evidence supports for one meter point."""
    hub, wan = ev.evidence.hub, ev.evidence.wan
    meter = _meter(ev, mpxn)
    kind = "ESME" if is_mpan(mpxn) else "GSME"
    if ev.type == "removal":
        if hub is None:
            return Observation("N", "smart meter removed: no hub at the premises")
        if meter is None:
            return Observation("N", f"smart meter removed: no {kind} for {mpxn} in the hub's device log")
        if meter.status in GONE:
            return Observation("N", f"smart meter removed: {kind} {meter.eui} is {meter.status}")
        if meter.answered is False:
            return Observation("N", f"smart meter removed: {kind} {meter.eui} no longer answers on the HAN")
        # The claim is contradicted by the evidence: fall through and read the evidence.
    if hub is None:
        return Observation(None, f"{ev.type} event without a hub: says nothing of {mpxn}")
    if meter is None:
        return Observation(None, f"{ev.type} event: no {kind} for {mpxn} in the hub's device log")
    contradicted = " (removal claimed, but the meter still answers)" if ev.type == "removal" else ""
    if meter.status in GONE:
        return Observation("N", f"{kind} {meter.eui} is {meter.status}")
    if hub.generation == "SMETS1" and hub.dcc is False:
        return Observation("N", f"SMETS1 meter {meter.eui} not enrolled in the DCC")
    missing = []
    if hub.dcc is not True:
        missing.append("hub not commissioned with the DCC" if hub.generation == "SMETS2"
                       else "SMETS1 enrolment not confirmed")
    if wan is None or not wan.connected:
        missing.append("no SM WAN")
    if kind == "GSME" and hub.generation == "SMETS2" and hub.gpf is None:
        missing.append("no GPF on the hub")
    if meter.status != "Commissioned":
        missing.append(f"{kind} {meter.eui} is {meter.status or 'without status'}")
    if meter.answered is False:
        missing.append(f"{kind} {meter.eui} did not answer on the HAN")
    if not missing:
        return Observation("A", f"{kind} {meter.eui} commissioned, hub {hub.chf} on the SM WAN{contradicted}")
    return Observation("I", "installed, not commissioned: " + "; ".join(missing) + contradicted)


def derive(mpxn: str, events: Iterable[Event]) -> Flag:
    """The flag of one meter point from every verified event that names it."""
    relevant = sorted((e for e in events if mpxn in e.mpxns), key=order_key)
    ids = tuple(e.id.hex() for e in relevant)
    current: Flag = Flag(mpxn, None, None, "no smart event seen", None, ids)
    for ev in relevant:
        obs = observe(ev, mpxn)
        if obs.flag is None:
            continue
        override = None
        if ev.override is not None:
            override = f"{ev.override.reason} (overrode: {', '.join(ev.override.checks)})"
        reason = f"{ev.type} {ev.id.hex()[:8]} by {ev.installer}: {obs.reason}"
        if obs.flag != current.flag:
            current = Flag(mpxn, obs.flag, _date(ev.evidence.read_time), reason, ev.id.hex(), ids, override)
    return current


def derive_all(events: Iterable[Event]) -> dict[str, Flag]:
    events = list(events)
    mpxns = sorted({m for e in events for m in e.mpxns})
    return {m: derive(m, events) for m in mpxns}


def legacy(flag: str | None, mapping: dict[str, str] | None = None) -> str:
    """The flag for a registration system not yet on MP077 ("" for none)."""
    if flag is None:
        return ""
    return (mapping or DEFAULT_LEGACY_MAPPING)[flag]
