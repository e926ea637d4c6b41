"""What is at a meter point, and how we know: the view behind `companion site` and the API."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from companion import policy
from companion.config import Config
from companion.ids import check_mpxn, eui64_bytes, eui64_text
from companion.store.core import Store
from companion.wire.event import Event


MAX_PAGE = 1000  # events per page of GET /v1/sites/{mpxn}/events


def _event_dict(mpxn: str, device: str, received: float, ev: Event) -> dict[str, Any]:
    return {
        "event_id": ev.id.hex(), "type": ev.type, "device_id": device, "counter": ev.counter,
        "time": ev.time, "read_time": ev.evidence.read_time,
        "hub_time": ev.evidence.hub_time, "version": ev.version, "received_at": round(received, 3),
        "job": ev.job, "installer": ev.installer, "mpans": list(ev.mpans), "mprns": list(ev.mprns),
        "override": asdict(ev.override) if ev.override else None,
        "observation": asdict(policy.observe(ev, mpxn)),
    }


def _cursor(key: tuple[int, int, int, str, bytes]) -> str:
    return f"{key[0]}.{key[1]}.{key[2]}.{key[3]}.{key[4].hex()}"


def _uncursor(text: str) -> tuple[int, int, int, str, bytes]:
    """A cursor from a previous page, or ValueError (a 400)."""
    parts = text.split(".")
    if len(text) > 120 or len(parts) != 5:
        raise ValueError("cursor: not one this API gave out")
    try:
        return (int(parts[0]), int(parts[1]), int(parts[2]), eui64_text(eui64_bytes(parts[3])),
                bytes.fromhex(parts[4]))
    except ValueError:
        raise ValueError("cursor: not one this API gave out") from None


def events_page(store: Store, mpxn: str, limit: int = 100, cursor: str | None = None) -> dict[str, Any] | None:
    """A page of the events behind a meter point, in stored order (survey time, device time,
    counter, device, id), and the cursor of the next page (None: the last). None when nothing
    is known of it; ValueError for a malformed MPxN, limit or cursor."""
    check_mpxn(mpxn)
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit: 1 to {MAX_PAGE}")
    after = _uncursor(cursor) if cursor else None
    rows, more = store.events_page(mpxn, limit, after)
    if not rows and after is None and not store.knows(mpxn):
        return None
    events = [_event_dict(mpxn, device, received, ev) for device, received, ev, _ in rows]
    return {"mpxn": mpxn, "events": events, "next": _cursor(rows[-1][3]) if more else None}


def events_view(store: Store, mpxn: str) -> list[dict[str, Any]]:
    check_mpxn(mpxn)
    rows = sorted(store.events_for(mpxn), key=lambda r: policy.order_key(r[2]))
    return [_event_dict(mpxn, device, received, ev) for device, received, ev in rows]


def site_view(store: Store, mpxn: str, config: Config) -> dict[str, Any] | None:
    """None when nothing is known of the meter point; ValueError for a malformed MPxN."""
    check_mpxn(mpxn)
    flag = store.flag(mpxn)
    rows = store.events_for(mpxn)
    if flag is None and not rows:
        return None
    latest = max(rows, key=lambda r: policy.order_key(r[2]))[2] if rows else None
    ev = latest.evidence if latest else None
    return {
        "mpxn": mpxn,
        "flag": flag.flag if flag else None,
        "legacy_flag": policy.legacy(flag.flag if flag else None, config.legacy_mapping),
        "since": flag.effective_from if flag else None,
        "reason": flag.reason if flag else "no smart event seen",
        "override": flag.override if flag else None,
        "version": flag.version if flag else 0,
        "event_id": flag.event_id if flag else None,
        "event_ids": [r[2].id.hex() for r in sorted(rows, key=lambda r: policy.order_key(r[2]))],
        "evidence_read_time": ev.read_time if ev else None,
        "evidence_hub_time": ev.hub_time if ev else None,
        "hub": asdict(ev.hub) if ev and ev.hub else None,
        "wan": asdict(ev.wan) if ev and ev.wan else None,
        "devices": [asdict(d) for d in ev.devices] if ev else [],
        # The meter, named: the device the policy reads for this meter point, and the devices the
        # hub's log still lists for it beside the meter (an old meter after a same-hub exchange).
        "meter": (m.eui if (m := policy.meter_of(latest, mpxn)) else None) if latest else None,
        "stale": [d.eui for d in policy.stale_devices(latest, mpxn)] if latest else [],
        # Handhelds behind these events whose counter repeated or went backwards, or whose
        # clock disagreed with the hub's.
        "suspicious": store.suspicious(sorted({r[0] for r in rows})),
        "dcc": dcc_side(store, mpxn, config, [r[2] for r in rows]),
    }


def dcc_side(store: Store, mpxn: str, config: Config, events: list[Any]) -> dict[str, Any]:
    """The DCC's side beside the field's (docs/duis.md): each device the DCC's inventory ties to
    the meter point, as it last stated it; the flag's sources; the conflicts. `events`: the
    meter point's, already read."""
    from companion import sources
    from companion.service.dcc_view import site_and_facts
    from companion.store.smi import Inventory
    from companion.times import day

    combined, own = site_and_facts(store, Inventory(store), config, mpxn, events=events)
    facts = sources.latest(own)
    return {"sources": list(combined.sources),
            "devices": [{"device_id": f.device_id, "type": f.device_type, "status": f.status,
                         "since": day(f.since), "mpxns": list(f.mpxns), "chf": f.chf, "message": f.message}
                        for f in sorted(facts.values(), key=lambda f: f.device_id)],
            "conflicts": [c.as_dict() for c in combined.conflicts]}


def format_site(view: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """Plain text for `companion site`."""
    out = [f"{view['mpxn']}: flag {view['flag'] or 'none'}"
           + (f" since {view['since']}" if view["since"] else "") + f" (version {view['version']})",
           f"  why: {view['reason']}"]
    if view["override"]:
        out.append(f"  installer override: {view['override']}")
    if view["hub"]:
        h = view["hub"]
        out.append(f"  hub: {h['chf']} {h['generation']} dcc={h['dcc']}  wan: {view['wan']}")
    for d in view["devices"]:
        role = " METER" if d["eui"] == view.get("meter") else " STALE" if d["eui"] in view.get("stale", []) else ""
        out.append(f"  device: {d['eui']} {d['type']} {d['status'] or '-'} mpxn={d['mpxn'] or '-'}"
                   f" answered={d['answered']}{role}")
    for s in view.get("suspicious", []):
        out.append(f"  SUSPICIOUS handheld {s['device_id']}: {s['kind']} ({s['detail']})")
    dcc = view.get("dcc") or {}
    for d in dcc.get("devices", []):
        out.append(f"  DCC inventory: {d['device_id']} {d['type'] or '-'} {d['status'] or '-'} since {d['since']}"
                   f" mpxn={','.join(d['mpxns']) or '-'} ({d['message']})")
    for c in dcc.get("conflicts", []):
        out.append(f"  CONFLICT {c['class']}: {c['device_id'] or '-'} since {c['since']}: {c['fix']}")
    out.append(f"  events ({len(events)}):")
    for e in events:
        out.append(f"    {e['event_id'][:16]} {e['type']:<17} device {e['device_id']} #{e['counter']}"
                   f" read {e['read_time']}" + (f" (hub {e['hub_time']})" if e.get("hub_time") is not None else "")
                   + f": {e['observation']['flag'] or '-'} {e['observation']['reason']}")
    return "\n".join(out)
