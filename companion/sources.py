"""The flag from both evidence sources, and every disagreement between them, named
(docs/flag-policy.md "Two sources"). Pure: from a meter point's field flag (companion/policy.py),
its verified events and the DCC's inventory statements about it, the same answer whatever order
they arrived in.

The rules, in one time order (field: the survey's time; DCC: when a status applied, which is
`DateCommissioned` for a commissioning where the DCC gives it, else the message's time):
1. No DCC statement about the meter point: the field flag, unchanged.
2. No field flag: the DCC's meter decides alone (Commissioned, with its hub Commissioned where the
   DCC names one: `A`; Pending, Whitelisted, InstalledNotCommissioned, Suspended, Recovery: `I`;
   Decommissioned, Withdrawn, removed from the inventory: `N`).
3. Removed on the wall (field `N`): `N`, unless the DCC commissioned another meter there after the
   removal (then that meter's `A`, from its date). The DCC still showing a removed meter
   Commissioned is the conflict `smi_commissioned_but_removed`.
4. The DCC decommissioned the meter (or withdrew it) after the last field visit: `N` from then.
5. Field `A` needs the DCC's meter and hub Commissioned where the DCC knows them; where it knows
   them otherwise, `I` and the conflict `smi_not_commissioned_but_field_commissioned`.
6. Field `I` stays `I` (the field's conditions are not met, whatever the DCC says).
Every flag carries its sources ("field", "dcc") and the classes of the conflicts at its meter
point; a conflict never changes a flag silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from companion import policy
from companion.ids import is_mpan
from companion.wire.event import Event
from companion.times import day

GONE = ("Decommissioned", "Withdrawn", "Removed")  # Removed: DeviceRemovedFromInventory
NOT_YET = ("Pending", "Whitelisted", "InstalledNotCommissioned", "Suspended", "Recovery")
LIVE_ON_WALL = ("Commissioned", "InstalledNotCommissioned", "Whitelisted", "Pending", None)
CLASSES = {
    "smi_commissioned_but_removed": "the DCC shows Commissioned a meter removed (or legacy) on the wall",
    "smi_not_commissioned_but_field_commissioned": "commissioned on the wall, not Commissioned in the DCC's inventory",
    "device_unknown_to_smi": "a device on the wall the DCC's inventory has never listed",
    "smi_device_missing_on_site": "the DCC places a device here that the latest survey does not show",
    "mpxn_mismatch": "the DCC and the hub's log tie a device to different meter points",
    "install_and_leave_overdue": "installed with no SM WAN for longer than the DCC's target",
}


@dataclass(frozen=True)
class SmiFact:
    """What the DCC's inventory stated about one device (read by companion/store/smi.py)."""

    device_id: str
    device_type: str
    status: str | None
    since: int
    at: int
    mpxns: tuple[str, ...]
    chf: str | None
    message: str  # the DUIS message it came from: its ResponseID, or "#seq"
    message_seq: int = 0


@dataclass(frozen=True)
class Conflict:
    cls: str
    mpxn: str
    device_id: str | None
    since: str  # YYYY-MM-DD: since when the two sides disagree
    field: dict[str, Any]  # the field event: id, type, time, what it saw
    dcc: dict[str, Any]  # the DUIS message: id, status, since
    fix: str  # what corrects it, in words
    request: str | None = None  # the DUIS service request drafted for it: "8.3", "8.4", "8.2"
    request_body: dict[str, str] = dc_field(default_factory=dict)  # what the draft carries

    def as_dict(self) -> dict[str, Any]:
        return {"class": self.cls, "mpxn": self.mpxn, "device_id": self.device_id, "since": self.since,
                "field": self.field, "dcc": self.dcc, "fix": self.fix, "request": self.request,
                "words": CLASSES[self.cls]}


@dataclass(frozen=True)
class Combined:
    flag: policy.Flag
    sources: tuple[str, ...]
    conflicts: tuple[Conflict, ...]


def latest(facts: list[SmiFact]) -> dict[str, SmiFact]:
    """Each device's latest statement (by when it applied, then when it was made); a status-less
    statement (a MeterIdentity alert) keeps the status before it."""
    out: dict[str, SmiFact] = {}
    for f in sorted(facts, key=lambda f: (f.since, f.at, f.message_seq)):
        prev = out.get(f.device_id)
        if f.status is None and prev is not None:
            f = SmiFact(f.device_id, f.device_type or prev.device_type, prev.status, prev.since, f.at,
                        f.mpxns or prev.mpxns, f.chf or prev.chf, f.message, f.message_seq)
        elif prev is not None and not f.device_type:
            f = SmiFact(f.device_id, prev.device_type, f.status, f.since, f.at, f.mpxns or prev.mpxns,
                        f.chf or prev.chf, f.message, f.message_seq)
        elif prev is not None and not f.mpxns:
            f = SmiFact(f.device_id, f.device_type, f.status, f.since, f.at, prev.mpxns, f.chf or prev.chf,
                        f.message, f.message_seq)
        out[f.device_id] = f
    return out


def _meters(mpxn: str, now: dict[str, SmiFact]) -> list[SmiFact]:
    want = "ESME" if is_mpan(mpxn) else "GSME"
    return [f for f in now.values() if f.device_type == want and mpxn in f.mpxns]


def _smi_meter(mpxn: str, now: dict[str, SmiFact]) -> SmiFact | None:
    """The DCC's meter for the meter point: a live one before a gone one, then the latest."""
    meters = _meters(mpxn, now)
    if not meters:
        return None
    return max(meters, key=lambda f: (f.status not in GONE, f.since, f.at))


def _smi_flag(meter: SmiFact, now: dict[str, SmiFact]) -> tuple[str, str]:
    hub = now.get(meter.chf) if meter.chf else None
    if meter.status in GONE:
        return "N", f"{meter.device_type} {meter.device_id} is {meter.status} in the DCC's inventory"
    if meter.status in ("Commissioned", "Recovered"):
        if hub is not None and hub.status not in ("Commissioned", "Recovered"):
            return "I", f"hub {hub.device_id} is {hub.status} in the DCC's inventory"
        return "A", f"{meter.device_type} {meter.device_id} Commissioned in the DCC's inventory"
    return "I", f"{meter.device_type} {meter.device_id} is {meter.status or 'without status'} in the DCC's inventory"


def _dcc_side(f: SmiFact) -> dict[str, Any]:
    return {"message": f.message, "message_seq": f.message_seq, "device_id": f.device_id,
            "device_type": f.device_type, "status": f.status, "since": day(f.since), "mpxns": list(f.mpxns)}


def _field_side(ev: Event, mpxn: str) -> dict[str, Any]:
    meter = policy.meter_of(ev, mpxn)
    hub = ev.evidence.hub
    return {"event_id": ev.id.hex(), "type": ev.type, "time": day(ev.evidence.when),
            "installer": ev.installer, "hub": hub.chf if hub else None,
            "meter": meter.eui if meter else None, "meter_status": meter.status if meter else None}


def combine(mpxn: str, field_flag: policy.Flag, events: list[Event], facts: list[SmiFact],
            now_ts: int, overdue_days: int = 90) -> Combined:
    """The meter point's flag from both sources, and its conflicts (see the module docstring)."""
    evs = sorted((e for e in events if mpxn in e.mpxns), key=policy.order_key)
    conflicts = _conflicts(mpxn, field_flag, evs, facts, now_ts, overdue_days)
    if not facts:
        return Combined(field_flag, ("field",) if evs else (), tuple(conflicts))
    now = latest(facts)
    meter = _smi_meter(mpxn, now)
    if meter is None:  # the DCC knows only the hub here: the field decides
        return Combined(field_flag, ("field", "dcc") if evs else ("dcc",), tuple(conflicts))
    smi_flag, smi_reason = _smi_flag(meter, now)
    sources = ("field", "dcc") if field_flag.flag is not None else ("dcc",)
    classes = tuple(sorted({c.cls for c in conflicts}))
    suffix = f" [conflict: {', '.join(classes)}]" if classes else ""

    def dcc_flag(flag: str, since: int, reason: str) -> policy.Flag:
        return policy.Flag(mpxn, flag, day(since), f"DCC {meter.message}: {reason}{suffix}", field_flag.event_id,
                           field_flag.event_ids, None, f"smi_{flag.lower()}")

    def with_field(flag: str | None = None, reason: str | None = None) -> policy.Flag:
        f = field_flag
        return policy.Flag(mpxn, flag or f.flag, f.effective_from, (reason or f.reason) + suffix, f.event_id,
                           f.event_ids, f.override, f.code if flag is None else f"smi_{flag.lower()}")

    if field_flag.flag is None:
        return Combined(dcc_flag(smi_flag, meter.since, smi_reason), sources, tuple(conflicts))
    last_field = evs[-1].evidence.when if evs else 0
    if field_flag.flag == "N":
        if smi_flag == "A" and meter.since > last_field and not _seen_removed(meter.device_id, evs, mpxn):
            return Combined(dcc_flag("A", meter.since, smi_reason + " after the removal"), sources, tuple(conflicts))
        return Combined(with_field(), sources, tuple(conflicts))
    if smi_flag == "N" and meter.since >= last_field:
        return Combined(dcc_flag("N", meter.since, smi_reason + " after the last visit"), sources, tuple(conflicts))
    if field_flag.flag == "A" and any(c.cls == "smi_not_commissioned_but_field_commissioned" for c in conflicts):
        return Combined(with_field("I", f"installed, commissioned on the wall but not in the DCC's inventory: "
                                        f"{smi_reason}"), sources, tuple(conflicts))
    return Combined(with_field(), sources, tuple(conflicts))


def _seen_removed(device_id: str, evs: list[Event], mpxn: str) -> bool:
    return any(d.eui.upper() == device_id for e in evs for d in e.evidence.devices)


def _conflicts(mpxn: str, field_flag: policy.Flag, evs: list[Event], facts: list[SmiFact], now_ts: int,
               overdue_days: int) -> list[Conflict]:
    out: list[Conflict] = []
    if evs:
        out.extend(_overdue(mpxn, field_flag, evs, now_ts, overdue_days))
    if not evs or not facts:
        return out
    now = latest(facts)
    last = evs[-1]
    field = _field_side(last, mpxn)
    wall = {d.eui.upper(): d for d in last.evidence.devices}
    meter = policy.meter_of(last, mpxn)
    when = last.evidence.when
    for f in _meters(mpxn, now) + _hubs(mpxn, now, wall):
        if f.status in GONE:
            continue
        seen = wall.get(f.device_id)
        hub = last.evidence.hub
        on_wall = seen is not None or (hub is not None and hub.chf.upper() == f.device_id)
        removed_here = field_flag.flag == "N" or (seen is not None and seen.status in policy.GONE)
        since = day(max(when, f.since))
        if f.device_type == "CHF" and field_flag.flag == "N" and hub is None and f.since <= when:
            # The hub went with the meter (no hub on the wall at the removal): the DCC is told
            # of its return (8.14.4, no fault).
            cls = "smi_commissioned_but_removed" if f.status == "Commissioned" else "smi_device_missing_on_site"
            out.append(Conflict(cls, mpxn, f.device_id, since, field, _dcc_side(f),
                                f"report hub {f.device_id} returned to the DCC (8.14.4 CH no-fault return)",
                                "8.14.4", {"DeviceID": f.device_id, "UserRefID": last.job[:25],
                                           "AdditionalInformation": "removed on site; flagwise event "
                                                                    + last.id.hex()}))
        elif (f.status == "Commissioned" and removed_here and f.device_type != "CHF"
                and (f.since <= when or seen is not None)):
            out.append(Conflict("smi_commissioned_but_removed", mpxn, f.device_id, since, field, _dcc_side(f),
                                f"decommission {f.device_id} in the DCC's inventory (8.3)", "8.3",
                                {"DeviceID": f.device_id}))
        elif not on_wall and hub is not None and f.since <= when:
            out.append(Conflict("smi_device_missing_on_site", mpxn, f.device_id, since, field, _dcc_side(f),
                                f"read the DCC's inventory again (8.2) and, if it stands, decommission "
                                f"{f.device_id} (8.3)", "8.2", {"DeviceID": f.device_id}))
    if meter is not None and field_flag.flag == "A":
        m = now.get(meter.eui.upper())
        if m is not None and m.status not in ("Commissioned", "Recovered"):
            out.append(Conflict("smi_not_commissioned_but_field_commissioned", mpxn, m.device_id,
                                day(max(when, m.since)), field, _dcc_side(m),
                                f"read the DCC's inventory for {m.device_id} again (8.2); if it stands, "
                                "commission it (8.1.1) on the next visit", "8.2", {"DeviceID": m.device_id}))
        hub = last.evidence.hub
        h = now.get(hub.chf.upper()) if hub else None
        if h is not None and h.status not in ("Commissioned", "Recovered") and h.status not in GONE:
            out.append(Conflict("smi_not_commissioned_but_field_commissioned", mpxn, h.device_id,
                                day(max(when, h.since)), field, _dcc_side(h),
                                f"set hub {h.device_id} Commissioned in the DCC's inventory (8.4)", "8.4",
                                {"DeviceID": h.device_id, "UpdateDeviceStatusCH": "Commissioned"}))
    out.extend(_unknown_and_mismatch(mpxn, last, now, field))
    return out


def _hubs(mpxn: str, now: dict[str, SmiFact], wall: dict[str, Any]) -> list[SmiFact]:
    """The hubs the DCC places here: those of its meters for the meter point."""
    chfs = {m.chf for m in _meters(mpxn, now) if m.chf}
    return [now[c] for c in sorted(chfs) if c in now]


def _unknown_and_mismatch(mpxn: str, last: Event, now: dict[str, SmiFact], field: dict[str, Any]) -> list[Conflict]:
    out: list[Conflict] = []
    when = day(last.evidence.when)
    meter = policy.meter_of(last, mpxn)
    if meter is None or meter.status in policy.GONE:
        return out
    eui = meter.eui.upper()
    f = now.get(eui)
    if f is None:
        out.append(Conflict("device_unknown_to_smi", mpxn, eui, when, field, {"device_id": eui, "status": None},
                            f"read the DCC's inventory for {eui} (8.2); if it is not there, the install was "
                            "never notified", "8.2", {"DeviceID": eui}))
    elif f.mpxns and mpxn not in f.mpxns:
        out.append(Conflict("mpxn_mismatch", mpxn, eui, day(max(last.evidence.when, f.since)), field, _dcc_side(f),
                            f"set {eui}'s meter point to {mpxn} in the DCC's inventory (8.4)", "8.4",
                            {"DeviceID": eui, "ImportMPxN": mpxn}))
    return out


def _overdue(mpxn: str, field_flag: policy.Flag, evs: list[Event], now_ts: int, days: int) -> list[Conflict]:
    """Installed and left with no SM WAN for longer than the DCC's target (MP121: 90 days)."""
    if field_flag.flag != "I" or field_flag.code != "no_wan":
        return []
    start = None
    for e in evs:  # when the meter point last became "installed, no WAN", and has stayed so
        obs = policy.observe(e, mpxn)
        if obs.flag == "I" and obs.code == "no_wan":
            start = e if start is None else start
        elif obs.flag is not None:
            start = None
    if start is None or now_ts - start.evidence.when <= days * 86400:
        return []
    return [Conflict("install_and_leave_overdue", mpxn, start.evidence.hub.chf if start.evidence.hub else None,
                     day(start.evidence.when + days * 86400), _field_side(start, mpxn), {},
                     f"no SM WAN since {day(start.evidence.when)}: past the DCC's {days}-day target; raise it "
                     "with the DCC, or read the inventory again (8.2)", "8.2",
                     {"DeviceID": start.evidence.hub.chf} if start.evidence.hub else {})]
