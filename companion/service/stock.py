"""The stock report (docs/devices.md "Stock report"): every smart device either source knows, one
row a device, with its condition from both sources (companion/devices.py), and the classes a
supplier acts on first. Written as stock.csv, stock.parquet and a self-contained stock.html."""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from companion.devices import CONDITIONS
from companion.service.device_view import view
from companion.store.core import Store
from companion.store.smi import Inventory

# The classes a supplier acts on, first in the report (a device may be in several).
ACTIONS = {
    "smi_commissioned_removed_on_site": "Commissioned in the DCC's inventory, but removed on site: decommission it "
                                        "(8.3) or find it",
    "installed_silent": "installed (or commissioned) and silent on the HAN for longer than the threshold: a dumb "
                        "meter to visit",
    "unknown_to_smi": "on the wall, never listed by the DCC's inventory: the install was never notified",
}
COLUMNS = ("device_id", "type", "condition", "since", "mpxn", "chf", "why", "evidence", "field_last",
           "field_status", "dcc_last", "dcc_status", "actions")


def _row(v: dict[str, Any], now: float, silent_days: int) -> dict[str, Any]:
    field = v["field"][-1] if v["field"] else None
    dcc = v["dcc"][-1] if v["dcc"] else None
    place = next((p for p in reversed(v["placements"]) if p["mpxn"]), None)
    actions = []
    if dcc and dcc["status"] == "Commissioned" and v["condition"] == "removed" and "DUIS" not in (v["evidence"] or ""):
        actions.append("smi_commissioned_removed_on_site")
    if v["condition"] in ("dumb", "installed_not_commissioned") and v["since"]:
        age = (now - datetime.fromisoformat(v["since"]).replace(tzinfo=timezone.utc).timestamp()) / 86400
        if age > silent_days and (v["condition"] == "dumb" or (field and field["answered"] is False)):
            actions.append("installed_silent")
    if not v["dcc"] and v["field"] and v["condition"] != "removed":
        actions.append("unknown_to_smi")
    return {"device_id": v["device_id"], "type": v["type"], "condition": v["condition"], "since": v["since"],
            "mpxn": place["mpxn"] if place else None, "chf": place["chf"] if place else None, "why": v["why"],
            "evidence": v["evidence"], "field_last": field["time"] if field else None,
            "field_status": field["status"] if field else None, "dcc_last": dcc["since"] if dcc else None,
            "dcc_status": dcc["status"] if dcc else None, "actions": " ".join(actions)}


def stock(store: Store, out: Path, silent_days: int = 30, now: float | None = None) -> dict[str, Any]:
    """Write the report; -> its summary (counts by condition, type, age, action)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from companion.render import render

    now = time.time() if now is None else now
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for eui in Inventory(store).all_devices():
        v = view(store, eui)
        if v is not None:
            rows.append(_row(v, now, silent_days))
    rows.sort(key=lambda r: (not r["actions"], CONDITIONS.index(r["condition"]), r["device_id"]))
    summary = _summary(rows, now, silent_days)
    tmp = out / ".stock.csv.part"
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out / "stock.csv")
    table = pa.table({c: pa.array([r[c] for r in rows], type=pa.string()) for c in COLUMNS})
    pq.write_table(table, out / ".stock.parquet.part")
    (out / ".stock.parquet.part").replace(out / "stock.parquet")
    (out / "stock.html").write_text(render("stock.html", s=summary, rows=[r for r in rows if r["actions"]][:500]))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def _summary(rows: list[dict[str, Any]], now: float, silent_days: int) -> dict[str, Any]:
    by_condition = {c: 0 for c in CONDITIONS}
    by_type: dict[str, int] = {}
    ages = {"under 30 days": 0, "30-90 days": 0, "90-365 days": 0, "over a year": 0, "no date": 0}
    actions = {a: 0 for a in ACTIONS}
    for r in rows:
        by_condition[r["condition"]] += 1
        by_type[r["type"] or "?"] = by_type.get(r["type"] or "?", 0) + 1
        if r["since"] is None:
            ages["no date"] += 1
        else:
            days = (now - datetime.fromisoformat(r["since"]).replace(tzinfo=timezone.utc).timestamp()) / 86400
            key = ("under 30 days" if days < 30 else "30-90 days" if days < 90 else "90-365 days" if days < 365
                   else "over a year")
            ages[key] += 1
        for a in r["actions"].split():
            actions[a] += 1
    return {"devices": len(rows), "conditions": by_condition, "types": dict(sorted(by_type.items())), "ages": ages,
            "actions": actions, "action_words": ACTIONS, "silent_days": silent_days,
            "today": datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d")}
