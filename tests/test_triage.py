"""Alert triage for network operators (docs/triage.md), in process on a real SQLite store with
signed events and DUIS messages signed as the DCC signs."""

from __future__ import annotations

import csv
import datetime as dt

import pyarrow.parquet as pq
import pytest

from companion.config import Config
from companion.errors import CompanionError
from companion.service.duis_import import DuisIntake, ImportSummary
from companion.service.ingest import Incoming, Ingestor
from companion.service.triage_run import Triage, TooMany, triage_file
from companion.store.core import Store
from companion.store.smi import Inventory
from companion.triage import AlertError, parse_alert
from companion.wire.duis import load_certs

from .bridge_support import DEVICE_ID, MV, PUBLIC_KEY, evidence, make_event
from .duis_support import Dcc

MPAN = MV.MPAN
ESME, CHF, OTHER = "00-1B-C5-0C-00-00-00-10", "00-1B-C5-0C-00-00-00-01", "00-1B-C5-0C-00-00-00-77"
T0 = 1793491200  # 2026-11-01
NOW = T0 + 30 * 86400


def iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat()


@pytest.fixture
def world(tmp_path):
    store = Store(tmp_path / "b.db")
    store.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
    return store, Config(db=str(tmp_path / "b.db")).check()


def field(world, etype: str, ev: dict, counter: int, at: int) -> None:
    store, cfg = world
    _, msg = make_event(etype, at, counter, ev=ev)
    assert Ingestor(store, cfg).handle_batch([Incoming(f"flagwise/events/{DEVICE_ID}", msg, at + 60)])[0].status \
        == "stored"


def ask(world, device: str, at: int) -> dict:
    return Triage(world[0]).request({"alerts": [{"mpan": MPAN, "device_id": device, "time": iso(at)}]}, NOW)[0]


def test_the_commissioned_meter_alerting_is_expected(world):
    field(world, "commission", evidence(), 1, T0)
    r = ask(world, ESME, T0 + 86400)
    assert (r["verdict"], r["smets2_expected"], r["device_is_meter"], r["since"]) == ("expected", True, True,
                                                                                      "2026-11-01")
    other = ask(world, OTHER, T0 + 86400)
    assert (other["verdict"], other["smets2_expected"], other["device_is_meter"]) == ("device_not_here", True, False)


def test_before_any_evidence_it_is_unknown_and_after_a_removal_the_device_is_not_here(world):
    field(world, "commission", evidence(), 1, T0)
    field(world, "removal", evidence(hub=False), 2, T0 + 5 * 86400)
    assert ask(world, ESME, T0 - 86400)["verdict"] == "unknown"
    r = ask(world, ESME, T0 + 6 * 86400)
    assert r["verdict"] == "device_not_here" and "gone" in r["evidence"] and r["smets2_expected"] is False
    assert ask(world, OTHER, T0 + 6 * 86400)["verdict"] == "no_smart_system"


def test_smets1_and_installed_never_commissioned(world):
    field(world, "install", evidence(generation="SMETS1", dcc=False), 1, T0)
    assert ask(world, ESME, T0 + 86400)["verdict"] == "smets1"


def test_install_and_leave_is_no_commissioned_smart_system(world):
    field(world, "install_and_leave", evidence(wan=False, meters=(("ESME", MPAN, "InstalledNotCommissioned"),)), 1,
          T0)
    r = ask(world, ESME, T0 + 86400)
    assert r["verdict"] == "no_smart_system" and r["smets2_expected"] is False


def test_the_dccs_word_alone_answers_and_its_decommissioning_moves_the_device(world, tmp_path):
    dcc = Dcc()
    store, _ = world
    s = ImportSummary()
    intake = DuisIntake(Inventory(store), load_certs([str(dcc.pem(tmp_path / "dcc.pem"))]))
    intake.take(dcc.inventory([{"DeviceID": ESME, "DeviceType": "ESME", "DeviceStatus": "Commissioned",
                                "DateCommissioned": "2026-10-01", "ImportMPxN": MPAN}]), "a", s)
    intake.take(dcc.alert(ESME, "MeterDecommissioningOrWithdrawal", MPAN, at="2026-11-25T09:00:00Z"), "b", s)
    assert s.stored == 2, s.refusals
    assert ask(world, ESME, T0)["verdict"] == "expected"
    assert ask(world, ESME, T0 + 26 * 86400)["verdict"] == "device_not_here"


@pytest.mark.parametrize("row,field", [
    ({"mpan": "1312345678900", "device_id": ESME, "time": "2026-11-02T00:00:00Z"}, "mpan"),
    ({"mpan": MPAN, "device_id": "00-1B", "time": "2026-11-02T00:00:00Z"}, "device_id"),
    ({"mpan": MPAN, "device_id": ESME, "time": "2099-01-01T00:00:00Z"}, "time"),
    ({"mpan": MPAN, "device_id": ESME, "time": "1999-12-31T00:00:00Z"}, "time"),
    ({"mpan": MPAN, "device_id": ESME, "time": "2026-11-02T00:00:00"}, "time"),
])
def test_a_bad_alert_names_its_field(row, field):
    with pytest.raises(AlertError) as exc:
        parse_alert(row, NOW)
    assert exc.value.field == field


def test_a_request_is_bounded_and_all_or_nothing(world):
    t = Triage(world[0])
    good = {"mpan": MPAN, "device_id": ESME, "time": iso(T0)}
    with pytest.raises(TooMany):
        t.request({"alerts": [good] * 1001}, NOW)
    with pytest.raises(CompanionError, match=r"alerts\[1\]\.mpan"):
        t.request({"alerts": [good, {**good, "mpan": "123"}]}, NOW)
    assert len(t.request({"alerts": [good] * 1000}, NOW)) == 1000


def test_a_file_keeps_its_columns_reports_bad_rows_by_line_and_writes_csv_and_parquet(world, tmp_path):
    field(world, "commission", evidence(), 1, T0)
    src = tmp_path / "alerts.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ref", "mpan", "device_id", "time", "alert_code"])
        w.writerow(["a1", MPAN, ESME, iso(T0 + 86400), "0x8F01"])
        w.writerow(["a2", "1312345678900", ESME, iso(T0 + 86400), ""])  # line 3: a bad check digit
        w.writerow(["a3", MPAN, OTHER, iso(T0 + 86400), ""])
    got = triage_file(world[0], src, tmp_path / "out", now=NOW)
    assert got["alerts"] == 2 and got["bad_rows"] == 1
    rows = list(csv.DictReader((tmp_path / "out" / "triage.csv").open()))
    assert [(r["ref"], r["alert_code"], r["verdict"], r["device_is_meter"]) for r in rows] == [
        ("a1", "0x8F01", "expected", "true"), ("a3", "", "device_not_here", "false")]
    bad = list(csv.DictReader((tmp_path / "out" / "bad_rows.csv").open()))
    assert [(b["line"], b["field"]) for b in bad] == [("3", "mpan")]
    table = pq.read_table(tmp_path / "out" / "triage.parquet")
    assert table.column("verdict").to_pylist() == ["expected", "device_not_here"]
    assert table.column("smets2_expected").to_pylist() == [True, True]
    # Parquet in gives the same answers.
    triage_file(world[0], tmp_path / "out" / "triage.parquet", tmp_path / "again", now=NOW)
    assert pq.read_table(tmp_path / "again" / "triage.parquet").column("verdict").to_pylist() == [
        "expected", "device_not_here"]


def test_a_file_without_the_columns_is_refused_and_nothing_is_written(world, tmp_path):
    src = tmp_path / "alerts.csv"
    src.write_text("a,b\n1,2\n")
    with pytest.raises(CompanionError, match="no column"):
        triage_file(world[0], src, tmp_path / "out", now=NOW)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []
