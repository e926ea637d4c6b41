"""The field and the DCC side by side (docs/duis.md): each meter point's flag from both sources,
its conflicts, and the DUIS requests drafted to correct the DCC. The rules are pure
(companion/sources.py); this reads the store for them and writes what they decide."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from companion import policy, sources
from companion.config import Config
from companion.errors import CompanionError
from companion.store.core import Store
from companion.service.ingest import MAX_FLAG_EVENT_IDS, dcc_fields, new_version, state
from companion.store.smi import Inventory
from companion.wire.event import Event
from companion.wire.duis_request import draft, request_id


def site(store: Store, inv: Inventory, config: Config, mpxn: str, now: float | None = None,
         db: Any | None = None) -> sources.Combined:
    return site_and_facts(store, inv, config, mpxn, now, db)[0]


def site_and_facts(store: Store, inv: Inventory, config: Config, mpxn: str, now: float | None = None,
                   db: Any | None = None, events: list[Event] | None = None
                   ) -> tuple[sources.Combined, list[sources.SmiFact]]:
    """The meter point from both sources, and the DCC's statements that tie devices to it.
    `events`: the meter point's events, when the caller has read them already."""
    if events is None:
        events = [e for _, _, e in store.events_for(mpxn, db)]
    field = policy.derive(mpxn, events)
    own = inv.for_mpxn(mpxn, db)
    rows = list(own)
    if events:  # and what the DCC says of the devices on the wall, wherever it places them
        last = max(events, key=policy.order_key).evidence
        wall = [d.eui for d in last.devices] + ([last.hub.chf] if last.hub else [])
        seen = {(r.device_id, r.message_seq) for r in rows}
        rows += [r for r in inv.for_devices(wall, db) if (r.device_id, r.message_seq) not in seen]
    combined = sources.combine(mpxn, field, events, rows, int(now or time.time()), config.install_and_leave_days)
    return combined, own


def conflicts(store: Store, config: Config, cls: str | None = None, now: float | None = None
              ) -> list[sources.Conflict]:
    """Every conflict in the store, by meter point, then class."""
    if cls is not None and cls not in sources.CLASSES:
        raise CompanionError(f"unknown conflict class {cls!r}: one of {', '.join(sources.CLASSES)}")
    inv = Inventory(store)
    out: list[sources.Conflict] = []
    for mpxn in sorted(set(inv.mpxns()) | set(store.mpxns())):
        out.extend(c for c in site(store, inv, config, mpxn, now).conflicts if cls is None or c.cls == cls)
    return out


def write_requests(store: Store, config: Config, found: list[sources.Conflict], out: Path) -> list[Path]:
    """One unsigned DUIS request file per conflict that has one; each with a counter never used
    before (the store's `duis_request` sequence)."""
    if not config.duis_user_eui or not config.duis_dcc_eui:
        raise CompanionError("drafting requests needs duis_user_eui (your DCC user id) and duis_dcc_eui "
                             "(the DCC's EUI-64) in the configuration (docs/duis.md)")
    request_id(config.duis_user_eui, config.duis_dcc_eui, 0)  # both EUIs checked before a counter is spent
    inv = Inventory(store)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    index = []
    unknown = sorted(set(config.duis_requests) - set(sources.CLASSES))
    if unknown:
        raise CompanionError(f"duis_requests: no conflict class {', '.join(unknown)} (classes: "
                             f"{', '.join(sources.CLASSES)})")
    for c in found:
        service = config.duis_requests.get(c.cls, c.request or "none")
        if service == "none" or "DeviceID" not in c.request_body:
            continue
        body = c.request_body if service == c.request else {"DeviceID": c.request_body["DeviceID"]}
        if service != c.request and service != "8.2":
            raise CompanionError(f"duis_requests: {c.cls} can be drafted as {c.request}, 8.2 (read again) or none, "
                                 f"not {service}")
        counter = inv.next_request_counter()
        rid = request_id(config.duis_user_eui, config.duis_dcc_eui, counter)
        data = draft(service, body, rid)
        path = out / f"{counter:06d}-{service}-{c.cls}-{c.device_id}.xml"
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        written.append(path)
        index.append({**c.as_dict(), "file": path.name, "request_id": rid, "service": service, "request": service})
    if index:
        (out / "requests.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    return written


def rederive(store: Store, config: Config, mpxns: set[str], batch: int = 500) -> int:
    """The flags of these meter points derived again from both sources, after DUIS messages
    changed what the DCC says of them; a changed flag goes to the outbox (MQTT and DTC) as a
    new version, in the same transaction (`batch` meter points a transaction). -> how many
    flags changed."""
    inv = Inventory(store)
    changes = 0
    todo = sorted(mpxns)
    for i in range(0, len(todo), batch):
        part = todo[i:i + batch]
        with store.tx() as db:
            store.db.lock_mpxns(db, part)
            for mpxn in part:
                if _rederive_one(store, inv, config, mpxn, db) is not None:
                    changes += 1
    return changes


def _rederive_one(store: Store, inv: Inventory, config: Config, mpxn: str, db: Any) -> dict[str, Any] | None:
    combined = site(store, inv, config, mpxn, db=db)
    new = combined.flag
    old = store.flag(mpxn, db)
    if (old is not None and state(old) == state(new)) or (old is None and new.flag is None):
        return None
    tail = json.dumps(list(new.event_ids)[-MAX_FLAG_EVENT_IDS:])
    # No last key: the next event derives the whole history (the DCC has spoken of this point).
    return new_version(store, config, db, mpxn, new, old, tail, time.time(), None, len(new.event_ids),
                       dcc_fields(combined))
