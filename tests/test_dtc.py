"""DTC flow files: the generic writer's shape (ZHV, groups, ZPT), atomic files, and the
outbox writer's batching by size and age, exactly once."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from companion import dtc
from companion.config import Config
from companion.service.dtc_writer import DtcWriter
from companion.store.core import Store


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    """Every test here runs on both stores (SQLite, and a PostgreSQL cluster of its own)."""
    return request.param


def test_render_shape():
    created = datetime(2026, 11, 28, 9, 30, 5, tzinfo=timezone.utc)
    text = dtc.render(dtc.D0350, "FW00000001", created,
                      [{"mpxn": "1312345678907", "flag": "A", "effective_from": "2026-11-27"},
                       {"mpxn": "2000012345672", "flag": "N", "effective_from": "2026-11-28"}],
                      from_participant="DCCO", to_participant="MPAS", test_flag="TR01")
    assert text.splitlines() == [
        "ZHV|FW00000001|D0350001|Z|DCCO|P|MPAS|20261128093005|FLAGWISE|||TR01|",
        "350|1312345678907|A|20261127|",
        "350|2000012345672|N|20261128|",
        "ZPT|FW00000001|2||1|20261128093005|",
    ]
    parsed = dtc.parse(text)
    assert len(parsed["groups"]) == 2


def test_fields_that_would_break_the_format_are_refused():
    with pytest.raises(ValueError, match="may not contain"):
        dtc.line(["350", "a|b"])
    with pytest.raises(ValueError, match="1 to 10 characters"):
        dtc.render(dtc.GAS, "X" * 11, datetime.now(timezone.utc), [], from_participant="DCCO", to_participant="XOSV")


def test_parse_checks_the_group_count():
    with pytest.raises(ValueError, match="group count"):
        dtc.parse("ZHV|1|D0350001|Z|DCCO|P|MPAS|20261128093005|||OPER|\n350|x|\nZPT|1|2||1|20261128093005|\n")


def _outbox(store: Store, rows: list[tuple[str, int, str, float]]) -> None:
    with store.tx() as db:
        for mpxn, version, flag, created in rows:
            body = {"mpxn": mpxn, "flag": flag, "effective_from": "2026-11-01", "version": version}
            db.execute("INSERT INTO outbox (mpxn, version, flow, body, created_at) VALUES (?, ?, ?, ?, ?)",
                       (mpxn, version, "electricity" if len(mpxn) == 13 else "gas", json.dumps(body), created))


def test_batches_close_by_size_and_by_age_and_never_repeat(tmp_path, store_url):
    cfg = Config(db=store_url, out=str(tmp_path / "out"), dtc_batch_size=3, dtc_batch_age=60)
    store = Store(cfg.db)
    w = DtcWriter(store, cfg)
    _outbox(store, [(f"13123456789{i:02d}"[:13], 1, "I", 1000.0) for i in range(5)] + [("1234567890", 1, "A", 1000.0)])
    files = w.tick(now=1010)  # 5 electricity changes: one full file of 3; the rest are young
    assert [p.name for p in files] == ["D0350001_FW00000001.dtc"]
    assert len(dtc.parse(files[0].read_text())["groups"]) == 3
    files = w.tick(now=1061)  # old enough: the other 2 electricity, and the gas one
    assert sorted(p.name for p in files) == ["D0350001_FW00000002.dtc", "DXIE4601_FW00000003.dtc"]
    assert w.tick(now=5000) == []
    groups = [g for p in sorted((tmp_path / "out").glob("*.dtc")) for g in dtc.parse(p.read_text())["groups"]]
    assert len(groups) == 6 and len({tuple(g) for g in groups}) == 6
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left


def test_a_file_assigned_but_not_written_is_written_on_recovery(tmp_path, store_url):
    cfg = Config(db=store_url, out=str(tmp_path / "out"), dtc_batch_size=10, dtc_batch_age=0)
    store = Store(cfg.db)
    w = DtcWriter(store, cfg)
    _outbox(store, [("1312345678907", 1, "A", 0.0)])
    # A crash between assigning the rows and writing the file:
    file_id = w._assign(dtc.D0350, now=100, force=False)
    assert file_id and not (tmp_path / "out").exists()
    again = DtcWriter(Store(cfg.db), cfg)
    [path] = again.tick(now=200)  # the pending file is written; its rows are taken: no second file
    assert path.name == f"D0350001_{file_id}.dtc"
    assert dtc.parse(path.read_text())["groups"] == [["350", "1312345678907", "A", "20261101"]]
    assert again.recover() == [] and again.tick(now=300) == []


def test_legacy_flags_option(tmp_path, store_url):
    cfg = Config(db=store_url, out=str(tmp_path / "out"), dtc_batch_age=0, legacy_flags=True)
    store = Store(cfg.db)
    _outbox(store, [("1312345678907", 1, "I", 0.0), ("1312345678907", 2, "N", 0.0)])
    [path] = DtcWriter(store, cfg).tick(now=10)
    assert [g[2] for g in dtc.parse(path.read_text())["groups"]] == ["", "W"]
