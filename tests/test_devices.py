"""One smart device from both sources (docs/devices.md): its placements, its condition and why.
In process on a real SQLite store, with signed events and DUIS messages signed as the DCC signs."""

from __future__ import annotations

import json

import pytest

from companion.config import Config
from companion.service.device_view import view
from companion.service.duis_import import DuisIntake, ImportSummary
from companion.service.ingest import Incoming, Ingestor
from companion.store.core import Store
from companion.store.db import _v7_backfill
from companion.store.smi import Inventory
from companion.wire.duis import load_certs

from .bridge_support import DEVICE_ID, MV, PUBLIC_KEY, companion, evidence, make_event
from .duis_support import Dcc

MPAN = MV.MPAN
ESME, CHF = "00-1B-C5-0C-00-00-00-10", "00-1B-C5-0C-00-00-00-01"
T0 = 1793491200  # 2026-11-01


@pytest.fixture
def world(tmp_path):
    dcc = Dcc()
    store = Store(tmp_path / "b.db")
    store.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
    cfg = Config(db=str(tmp_path / "b.db"), duis_certs=str(dcc.pem(tmp_path / "dcc.pem"))).check()
    return store, cfg, dcc


def field(world, etype: str, ev: dict, counter: int, at: int) -> str:
    store, cfg, _ = world
    eid, msg = make_event(etype, at, counter, ev=ev)
    out = Ingestor(store, cfg).handle_batch([Incoming(f"flagwise/events/{DEVICE_ID}", msg, at + 60)])[0]
    assert out.status == "stored", out
    return eid


def dcc_says(world, status: str, at: str = "2026-11-10T10:00:00Z") -> None:
    store, cfg, dcc = world
    s = ImportSummary()
    DuisIntake(Inventory(store), load_certs([cfg.duis_certs])).take(
        dcc.inventory([{"DeviceID": ESME, "DeviceType": "ESME", "DeviceStatus": status, "ImportMPxN": MPAN}], at=at),
        "m.xml", s)
    assert s.stored == 1, s.refusals


def test_commissioned_in_the_smi_and_answering_is_operational_with_its_placement(world):
    eid = field(world, "commission", evidence(), 1, T0)
    dcc_says(world, "Commissioned")
    v = view(world[0], ESME.lower())
    assert (v["condition"], v["type"]) == ("operational", "ESME") and eid in v["evidence"]
    assert [(p["source"], p["mpxn"], p["chf"], p["since"], p["until"]) for p in v["placements"]] == [
        ("field", MPAN, CHF, "2026-11-01", None), ("dcc", MPAN, None, "2026-11-10", None)]


def test_a_later_visit_without_it_is_a_removal_from_that_day(world):
    field(world, "commission", evidence(), 1, T0)
    removal = field(world, "removal", evidence(hub=False), 2, T0 + 5 * 86400)
    v = view(world[0], ESME)
    assert (v["condition"], v["since"]) == ("removed", "2026-11-06") and removal in v["evidence"]
    assert v["placements"][0]["until"] == "2026-11-06"


def test_silent_on_the_han_is_dumb_and_decommissioned_in_the_smi_is_removed(world):
    field(world, "install", evidence(answered=False), 1, T0)
    assert view(world[0], ESME)["condition"] == "dumb"
    dcc_says(world, "Decommissioned", at="2026-11-20T10:00:00Z")
    v = view(world[0], ESME)
    assert (v["condition"], v["since"]) == ("removed", "2026-11-20") and "DUIS" in v["evidence"]


def test_known_to_the_dcc_alone_and_unknown_and_malformed(world):
    dcc_says(world, "InstalledNotCommissioned")
    assert view(world[0], ESME)["condition"] == "installed_not_commissioned"
    assert view(world[0], "00-1B-C5-0C-00-00-00-99") is None
    with pytest.raises(ValueError, match="EUI-64"):
        view(world[0], "00-1B-C5")


def test_the_index_is_rebuilt_from_the_events_by_the_migration(world):
    field(world, "commission", evidence(), 1, T0)
    store = world[0]
    with store.tx() as db:
        db.execute("DELETE FROM event_devices")
    assert store.events_for_device(ESME) == []
    with store.tx() as db:
        _v7_backfill(db)
    assert len(store.events_for_device(ESME)) == 1 and len(store.events_for_device(CHF)) == 1


def test_the_command_answers_with_a_clear_code(world, tmp_path):
    field(world, "commission", evidence(), 1, T0)
    db = str(tmp_path / "b.db")
    p = companion("device", ESME, "--db", db, "--json")
    # Commissioned in the hub's log, hub on the SM WAN, answering; the DCC has said nothing of it.
    assert p.returncode == 0 and json.loads(p.stdout)["condition"] == "operational", p.stdout + p.stderr
    text = companion("device", ESME, "--db", db)
    assert text.returncode == 0 and ESME in text.stdout and MPAN in text.stdout
    assert companion("device", "00-1B-C5-0C-00-00-00-99", "--db", db).returncode == 1
    bad = companion("device", "nonsense", "--db", db)
    assert bad.returncode == 2 and "EUI-64" in bad.stderr and "Traceback" not in bad.stderr


def test_the_site_names_the_meter_and_the_stale_one_after_a_same_hub_exchange(world):
    from companion.surfaces.site import format_site, site_view

    store, cfg, _ = world
    ev = evidence(meters=(("ESME", MPAN, "Decommissioned"), ("ESME", MPAN, "Commissioned")))
    field(world, "commission", ev, 1, T0)
    view_ = site_view(store, MPAN, cfg)
    old, new = (d["eui"] for d in ev["devices"])
    assert view_["meter"] == new and view_["stale"] == [old]
    lines = format_site(view_, []).splitlines()
    assert [ln for ln in lines if ln.startswith(f"  device: {new}")][0].endswith("METER")
    assert [ln for ln in lines if ln.startswith(f"  device: {old}")][0].endswith("STALE")


def test_the_stock_report_puts_the_classes_to_act_on_first(world, tmp_path):
    import csv

    import pyarrow.parquet as pq

    from companion.service.stock import stock

    field(world, "commission", evidence(), 1, T0)
    dcc_says(world, "Commissioned", at="2026-10-20T10:00:00Z")
    field(world, "removal", evidence(hub=False), 2, T0 + 5 * 86400)
    s = stock(world[0], tmp_path / "stock", now=T0 + 40 * 86400)
    rows = list(csv.DictReader((tmp_path / "stock" / "stock.csv").open()))
    by = {r["device_id"]: r for r in rows}
    assert by[ESME]["condition"] == "removed" and by[ESME]["actions"] == "smi_commissioned_removed_on_site"
    assert by[ESME]["dcc_status"] == "Commissioned" and by[ESME]["mpxn"] == MPAN
    assert by[CHF]["condition"] == "removed" and by[CHF]["actions"] == ""  # the hub went with it
    assert rows[0]["actions"], "the classes to act on come first"
    assert s["actions"]["smi_commissioned_removed_on_site"] == 1 and s["conditions"]["removed"] == 2
    assert pq.read_table(tmp_path / "stock" / "stock.parquet").num_rows == len(rows) == 2
    html = (tmp_path / "stock" / "stock.html").read_text()
    assert "smi_commissioned_removed_on_site" in html and ESME in html and "<script" not in html


def test_the_stock_report_names_silent_and_unnotified_devices(world, tmp_path):
    import csv

    from companion.service.stock import stock

    field(world, "install", evidence(answered=False), 1, T0)
    stock(world[0], tmp_path / "s", silent_days=30, now=T0 + 40 * 86400)
    by = {r["device_id"]: r for r in csv.DictReader((tmp_path / "s" / "stock.csv").open())}
    assert by[ESME]["condition"] == "dumb" and by[ESME]["actions"] == "installed_silent unknown_to_smi"
    stock(world[0], tmp_path / "t", silent_days=60, now=T0 + 40 * 86400)
    by = {r["device_id"]: r for r in csv.DictReader((tmp_path / "t" / "stock.csv").open())}
    assert by[ESME]["actions"] == "unknown_to_smi"  # silent 40 days: under the 60-day threshold
