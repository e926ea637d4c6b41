"""One smart device from both sources (docs/devices.md): where it was, from when to when, by which
evidence, and its condition now and why. The rules are pure (companion/devices.py); this reads
the store for them."""

from __future__ import annotations

from typing import Any

from companion import devices, policy
from companion.ids import eui64_bytes
from companion.store.core import Store
from companion.store.smi import Inventory
from companion.times import day
from companion.wire.event import Event


def sightings(eui: str, events: list[Event], later: dict[str, list[Event]]) -> list[devices.Sighting]:
    """The device's sightings: each event whose survey lists it, and each later event at a meter
    point where it was seen that does not (`later`: mpxn -> that meter point's events)."""
    out: list[devices.Sighting] = []
    last_at: dict[str, int] = {}
    for ev in sorted(events, key=policy.order_key):
        e = ev.evidence
        for d in e.devices:
            if d.eui.upper() != eui:
                continue
            out.append(devices.Sighting(e.when, ev.id.hex(), ev.type, True, d.mpxn, e.hub.chf if e.hub else None,
                                        d.type, d.status, d.answered, e.hub.generation if e.hub else None,
                                        e.hub.dcc if e.hub else None, e.wan.connected if e.wan else None))
            if d.mpxn:
                last_at[d.mpxn] = max(last_at.get(d.mpxn, 0), e.when)
        if e.hub is not None and e.hub.chf.upper() == eui:
            out.append(devices.Sighting(e.when, ev.id.hex(), ev.type, True, None, e.hub.chf, "CHF",
                                        "Commissioned" if e.hub.dcc else None, True, e.hub.generation, e.hub.dcc,
                                        e.wan.connected if e.wan else None))
            for m in ev.mpxns:  # the hub serves the job's meter points: a later visit there may find it gone
                last_at[m] = max(last_at.get(m, 0), e.when)
    for mpxn, at in last_at.items():
        for ev in later.get(mpxn, []):
            hub = ev.evidence.hub
            if (ev.evidence.when > at and not any(d.eui.upper() == eui for d in ev.evidence.devices)
                    and not (hub is not None and hub.chf.upper() == eui)):
                out.append(devices.Sighting(ev.evidence.when, ev.id.hex(), ev.type, False, mpxn))
    return out


def view(store: Store, eui: str) -> dict[str, Any] | None:
    """None when neither source knows the device; ValueError for a malformed EUI-64."""
    eui64_bytes(eui)
    eui = eui.upper()
    events = [e for _, _, e in store.events_for_device(eui)]
    seen_at = {d.mpxn for e in events for d in e.evidence.devices if d.eui.upper() == eui and d.mpxn}
    seen_at |= {m for e in events if e.evidence.hub and e.evidence.hub.chf.upper() == eui for m in e.mpxns}
    later = {m: [e for _, _, e in store.events_for(m)] for m in sorted(seen_at)}
    rows = Inventory(store).history(eui)
    if not events and not rows:
        return None
    s = sightings(eui, events, later)
    f = rows
    now = devices.condition(eui, s, f)
    kinds = [x.device_type for x in s if x.device_type] + [x.device_type for x in f if x.device_type]
    return {"device_id": eui, "type": kinds[-1] if kinds else None, **now,
            "placements": devices.placements(s, f),
            "field": [{"time": day(x.at), "event_id": x.event_id, "type": x.event_type, "listed": x.listed,
                       "mpxn": x.mpxn, "chf": x.chf, "status": x.status, "answered": x.answered} for x in s],
            "dcc": [{"since": day(x.since), "status": x.status, "mpxns": list(x.mpxns), "chf": x.chf,
                     "message": x.message} for x in f]}
