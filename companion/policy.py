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

Order-independent: events are taken in the order of their evidence (survey time: the hub's
clock where the survey read it, else the handheld's; then device time, then counter, then
event id), so any arrival order of the same set gives the
same flags.

The meter of a meter point, when the hub's log lists several devices for it (a same-hub
exchange leaves the old meter there, silent or Decommissioned): Commissioned and answering,
then Commissioned, then installed (any other live status), then gone (Decommissioned,
Withdrawn); in log order within a rank. The firmware predicts with the same rules
(firmware/agent/predict.py); tests/vectors/policy.json, made from this module by
tools/make_policy_vectors.py, holds both to them.

Each observation carries a reason code (CODES) as well as its text: the handheld shows the
code's words and compares its prediction with the bridge's by flag and code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from companion.wire.event import Device, Event
from companion.ids import is_mpan
from companion.times import day

FLAGS = ("A", "I", "N")
# Pre-MP077 registration systems know A, S (suspended) and W (withdrawn) only. The mapping
# is configuration (docs/flag-policy.md); this is the default.
DEFAULT_LEGACY_MAPPING = {"A": "A", "I": "", "N": "W"}
GONE = ("Decommissioned", "Withdrawn")
# Reason codes of an observation (and of the flag it decides), with the words a handheld
# shows for them (firmware/agent/predict.py keeps the same table).
CODES = {
    "commissioned": "commissioned, on the SM WAN",
    "removed_no_hub": "removed: no hub",
    "removed_not_in_log": "removed: not in the log",
    "removed_gone": "removed: meter gone",
    "removed_silent": "removed: meter silent",
    "no_hub": "no hub",
    "not_in_log": "not in the hub's log",
    "gone": "meter decommissioned",
    "smets1_not_enrolled": "SMETS1 not enrolled",
    "hub_not_dcc": "hub not commissioned",
    "no_wan": "no SM WAN",
    "no_gpf": "no GPF on the hub",
    "meter_not_commissioned": "meter not commissioned",
    "meter_silent": "meter silent on the HAN",
    "none": "no smart event seen",
}


@dataclass(frozen=True)
class Flag:
    mpxn: str
    flag: str | None
    effective_from: str | None  # YYYY-MM-DD, UTC, from the deciding event's evidence
    reason: str
    event_id: str | None  # the deciding event (hex)
    event_ids: tuple[str, ...]  # every event considered, in policy order
    override: str | None = None  # the installer's override on the deciding event, if any
    code: str = "none"  # the deciding observation's reason code (CODES)

    def as_dict(self) -> dict[str, Any]:
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
    code: str = "none"


def order_key(ev: Event) -> tuple[Any, ...]:
    # Clocks tick in seconds: one handheld's events in the same second keep their counter order.
    return (ev.evidence.when, ev.time, ev.counter, ev.id)


def meter_rank(status: str | None, answered: bool | None) -> int:
    """Lower is more likely the meter: see the module docstring."""
    if status == "Commissioned":
        return 0 if answered is not False else 1
    if status in GONE:
        return 3
    return 2


def _meter(ev: Event, mpxn: str) -> Device | None:
    want = "ESME" if is_mpan(mpxn) else "GSME"
    found = [d for d in ev.evidence.devices if d.mpxn == mpxn and d.type == want]
    if not found:
        return None
    return min(found, key=lambda d: meter_rank(d.status, d.answered))  # min keeps log order on ties


def meter_of(ev: Event, mpxn: str) -> Device | None:
    """The meter the event's evidence shows for the meter point (see the module docstring)."""
    return _meter(ev, mpxn)


def stale_devices(ev: Event, mpxn: str) -> list[Device]:
    """Devices the log lists for the meter point beside its meter (shown as stale)."""
    meter = _meter(ev, mpxn)
    want = "ESME" if is_mpan(mpxn) else "GSME"
    return [d for d in ev.evidence.devices if d.mpxn == mpxn and d.type == want and d is not meter]


def observe(ev: Event, mpxn: str) -> Observation:
    """The flag one event's evidence supports for one meter point."""
    hub, wan = ev.evidence.hub, ev.evidence.wan
    meter = _meter(ev, mpxn)
    kind = "ESME" if is_mpan(mpxn) else "GSME"
    if ev.type == "removal":
        if hub is None:
            return Observation("N", "smart meter removed: no hub at the premises", "removed_no_hub")
        if meter is None:
            return Observation("N", f"smart meter removed: no {kind} for {mpxn} in the hub's device log",
                               "removed_not_in_log")
        if meter.status in GONE:
            return Observation("N", f"smart meter removed: {kind} {meter.eui} is {meter.status}", "removed_gone")
        if meter.answered is False:
            return Observation("N", f"smart meter removed: {kind} {meter.eui} no longer answers on the HAN",
                               "removed_silent")
        # The claim is contradicted by the evidence: fall through and read the evidence.
    if hub is None:
        return Observation(None, f"{ev.type} event without a hub: says nothing of {mpxn}", "no_hub")
    if meter is None:
        return Observation(None, f"{ev.type} event: no {kind} for {mpxn} in the hub's device log", "not_in_log")
    contradicted = " (removal claimed, but the meter still answers)" if ev.type == "removal" else ""
    if meter.status in GONE:
        return Observation("N", f"{kind} {meter.eui} is {meter.status}", "gone")
    if hub.generation == "SMETS1" and hub.dcc is False:
        return Observation("N", f"SMETS1 meter {meter.eui} not enrolled in the DCC", "smets1_not_enrolled")
    missing = []  # (code, text), the first one is the code of the observation
    if hub.dcc is not True:
        missing.append(("hub_not_dcc", "hub not commissioned with the DCC" if hub.generation == "SMETS2"
                        else "SMETS1 enrolment not confirmed"))
    if wan is None or not wan.connected:
        missing.append(("no_wan", "no SM WAN"))
    if kind == "GSME" and hub.generation == "SMETS2" and hub.gpf is None:
        missing.append(("no_gpf", "no GPF on the hub"))
    if meter.status != "Commissioned":
        missing.append(("meter_not_commissioned", f"{kind} {meter.eui} is {meter.status or 'without status'}"))
    if meter.answered is False:
        missing.append(("meter_silent", f"{kind} {meter.eui} did not answer on the HAN"))
    if not missing:
        return Observation("A", f"{kind} {meter.eui} commissioned, hub {hub.chf} on the SM WAN{contradicted}",
                           "commissioned")
    return Observation("I", "installed, not commissioned: " + "; ".join(t for _, t in missing) + contradicted,
                       missing[0][0])


def derive(mpxn: str, events: Iterable[Event]) -> Flag:
    """The flag of one meter point from every verified event that names it."""
    return extend(Flag(mpxn, None, None, "no smart event seen", None, ()), events)


def extend(flag: Flag, later: Iterable[Event]) -> Flag:
    """derive() of the events behind `flag` and `later` together, looking at `later` only, when
    every event of `later` comes after all of those in policy order (order_text is greater
    than the last one's): the flag changes where an event observes another value, so the
    events before cannot change what the later ones do. The bridge calls it for the usual
    case, an event newer than any of its meter point's (companion/service/ingest.py), and derives the
    whole history for a late one; tests/test_policy.py holds the two to the same result."""
    mpxn = flag.mpxn
    relevant = sorted((e for e in later if mpxn in e.mpxns), key=order_key)
    ids = tuple(flag.event_ids) + tuple(e.id.hex() for e in relevant)
    current = flag
    for ev in relevant:
        obs = observe(ev, mpxn)
        if obs.flag is None or obs.flag == current.flag:
            continue
        override = None
        if ev.override is not None:
            override = f"{ev.override.reason} (overrode: {', '.join(ev.override.checks)})"
        reason = f"{ev.type} {ev.id.hex()[:8]} by {ev.installer}: {obs.reason}"
        current = Flag(mpxn, obs.flag, day(ev.evidence.when), reason, ev.id.hex(), ids, override, obs.code)
    return Flag(current.mpxn, current.flag, current.effective_from, current.reason, current.event_id, ids,
                current.override, current.code)


def order_text(ev: Event) -> str:
    """order_key as text that sorts the same way (fixed-width numbers), to store and compare."""
    return f"{ev.evidence.when:012d}.{ev.time:012d}.{ev.counter:019d}.{ev.id.hex()}"


def derive_all(events: Iterable[Event]) -> dict[str, Flag]:
    events = list(events)
    mpxns = sorted({m for e in events for m in e.mpxns})
    return {m: derive(m, events) for m in mpxns}


def legacy(flag: str | None, mapping: dict[str, str] | None = None) -> str:
    """The flag for a registration system not yet on MP077 ("" for none)."""
    if flag is None:
        return ""
    return (mapping or DEFAULT_LEGACY_MAPPING)[flag]
