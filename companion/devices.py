"""Where a smart device is, and in what condition, from both sources (docs/devices.md). Pure: from
the field's sightings of the device (every survey that listed it, and every later survey at the
same meter point that did not) and the DCC's inventory statements about it.

Conditions, decided by the latest evidence of each source:
- `removed`: the DCC's inventory has it Decommissioned, Withdrawn or removed from the inventory,
  or a field visit after its last sighting at its meter point found it gone (not in the hub's
  log, or listed Decommissioned/Withdrawn there);
- `suspended`: the DCC's inventory has it Suspended or in Recovery;
- `dumb`: on the wall but not operating smart: silent on the HAN at the last visit, or on a
  SMETS1 hub not enrolled in the DCC;
- `operational`: Commissioned in the DCC's inventory (or, where the DCC has said nothing of it,
  Commissioned in the hub's log with the hub on the SM WAN) and answering on the HAN at the last
  visit;
- `installed_not_commissioned`: installed (Pending, Whitelisted, InstalledNotCommissioned in
  either source, or Commissioned on the wall with no SM WAN) and not silent;
- `unknown`: no evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from companion.sources import GONE as SMI_GONE
from companion.sources import SmiFact, latest
from companion.times import day

CONDITIONS = ("operational", "installed_not_commissioned", "dumb", "removed", "suspended", "unknown")
FIELD_GONE = ("Decommissioned", "Withdrawn")
NOT_YET = ("Pending", "Whitelisted", "InstalledNotCommissioned")


@dataclass(frozen=True)
class Sighting:
    """One field survey that speaks of the device: listed it (`listed`), or, at the meter point
    where it was last seen, did not (`listed` False: the wall shows something else)."""

    at: int  # the survey's time
    event_id: str
    event_type: str
    listed: bool
    mpxn: str | None = None
    chf: str | None = None
    device_type: str | None = None
    status: str | None = None
    answered: bool | None = None
    generation: str | None = None
    hub_dcc: bool | None = None
    wan: bool | None = None


def placements(sightings: list[Sighting], facts: list[SmiFact]) -> list[dict[str, Any]]:
    """Where the device was, from when to when, by which evidence: consecutive sightings at the
    same meter point and hub are one placement; the DCC's statements are placements of their own."""
    out: list[dict[str, Any]] = []
    for s in sorted(sightings, key=lambda s: (s.at, s.event_id)):
        if not s.listed:
            if out and out[-1]["source"] == "field" and out[-1]["until"] is None:
                out[-1]["until"] = day(s.at)
                out[-1]["ended_by"] = f"{s.event_type} {s.event_id}"
            continue
        last = out[-1] if out and out[-1]["source"] == "field" else None
        if last is not None and last["mpxn"] == s.mpxn and last["chf"] == s.chf and last["until"] is None:
            last["evidence"].append(s.event_id)
            continue
        if last is not None and last["until"] is None:
            last["until"] = day(s.at)
        out.append({"source": "field", "mpxn": s.mpxn, "chf": s.chf, "since": day(s.at), "until": None,
                    "evidence": [s.event_id], "ended_by": None})
    for f in sorted(facts, key=lambda f: (f.since, f.at, f.message_seq)):
        for m in f.mpxns or (None,):
            out.append({"source": "dcc", "mpxn": m, "chf": f.chf, "since": day(f.since), "until": None,
                        "evidence": [f.message], "status": f.status})
    return out


def condition(eui: str, sightings: list[Sighting], facts: list[SmiFact]) -> dict[str, Any]:
    """{condition, since, why, evidence}: see the module docstring."""
    smi = latest([f for f in facts if f.device_id == eui]).get(eui)
    seen = sorted((s for s in sightings if s.listed), key=lambda s: (s.at, s.event_id))
    last = seen[-1] if seen else None
    gone_on_wall = [s for s in sightings if not s.listed and (last is None or s.at > last.at)]
    if last is not None and last.status in FIELD_GONE:
        gone_on_wall.insert(0, last)

    def out(cond: str, at: int, why: str, evidence: str) -> dict[str, Any]:
        return {"condition": cond, "since": day(at), "why": why, "evidence": evidence}

    if smi is not None and smi.status in SMI_GONE and (last is None or smi.since >= last.at):
        return out("removed", smi.since, f"{smi.status} in the DCC's inventory", f"DUIS {smi.message}")
    if gone_on_wall:
        g = min(gone_on_wall, key=lambda s: s.at)
        why = (f"listed {g.status} in the hub's log" if g.listed else
               f"not on the wall at {g.mpxn or 'its meter point'} any more")
        return out("removed", g.at, why, f"{g.event_type} {g.event_id}")
    if smi is not None and smi.status in ("Suspended", "Recovery"):
        return out("suspended", smi.since, f"{smi.status} in the DCC's inventory", f"DUIS {smi.message}")
    if last is not None and last.answered is False:
        return out("dumb", last.at, "did not answer on the HAN at the last visit", f"{last.event_type} {last.event_id}")
    if last is not None and last.generation == "SMETS1" and last.hub_dcc is False:
        return out("dumb", last.at, "SMETS1, not enrolled in the DCC", f"{last.event_type} {last.event_id}")
    if smi is not None and smi.status in ("Commissioned", "Recovered"):
        if last is not None and last.answered:
            return out("operational", max(smi.since, last.at), "Commissioned in the DCC's inventory and answering "
                       "on the HAN at the last visit", f"DUIS {smi.message}; {last.event_type} {last.event_id}")
        if last is None:
            return out("operational", smi.since, "Commissioned in the DCC's inventory (no field visit yet)",
                       f"DUIS {smi.message}")
    if smi is not None and smi.status in NOT_YET:
        return out("installed_not_commissioned", smi.since, f"{smi.status} in the DCC's inventory",
                   f"DUIS {smi.message}")
    if last is not None:
        if last.status == "Commissioned" and last.hub_dcc and last.wan and smi is None:
            return out("operational", last.at, "Commissioned in the hub's log, hub on the SM WAN, answering "
                       "(the DCC's inventory says nothing of it)", f"{last.event_type} {last.event_id}")
        return out("installed_not_commissioned", last.at,
                   f"{last.status or 'without status'} in the hub's log" + ("" if last.wan else ", no SM WAN"),
                   f"{last.event_type} {last.event_id}")
    if smi is not None:
        return out("unknown", smi.since, f"the DCC's inventory gives no status ({smi.status})", f"DUIS {smi.message}")
    return {"condition": "unknown", "since": None, "why": "no evidence of this device", "evidence": None}
