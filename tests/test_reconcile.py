"""companion reconcile over evidence made by the bench's scenarios (real handhelds, real signed
events through the bridge), on SQLite and on PostgreSQL (the same signed events ingested
into it): every class, bad rows with their lines, duplicates, the outputs and the
corrections, and the CLI's errors."""

from __future__ import annotations

import csv
from datetime import date as dt_date
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hil import runner

from .support import load_tool

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCENARIOS = ["removal-with-nothing", "removal-legacy-replacement", "smets1-not-enrolled", "whitelisted-never-joined",
             "hub-not-commissioned", "smets2-dual-fuel", "smets2-gas", "smets1-enrolled"]
CLASSES = ["active_after_removal", "non_active_not_propagated", "active_not_commissioned", "installed_not_propagated",
           "blank_after_install", "commissioned_not_propagated", "legacy_value", "wrong_effective_date", "right"]
gen = load_tool("make_extract")


@pytest.fixture(scope="module")
def evidence_store(tmp_path_factory) -> Path:
    """A store filled by the bench's scenarios: the bridge's own SQLite file."""
    out = tmp_path_factory.mktemp("reconcile-bench")
    rc = runner.run(SCENARIOS, out, "embedded", jobs=4, say=lambda s: None)
    assert rc == 0, (out / "report.md").read_text()[:3000]
    db = out / "bench" / "bridge.db"
    assert db.exists()
    return db


def _extract(evidence: list[tuple[str, str, str, str]], path: Path) -> list[tuple[str, str, str, str]]:
    """One row per evidence meter point, each class made once (the scarcest evidence first),
    then rows with no evidence, a wrong check digit, bad values and a repeat."""
    import random

    rnd = random.Random(7)
    free = list(evidence)
    rows = []
    for made in CLASSES:
        point = next((e for e in free if made == "right" or gen._applies(made, e[1], e[3] or "")), None)
        assert point is not None, f"no evidence for {made}: {free}"
        free.remove(point)
        flag, since = gen.registered(made, point[1], point[2], rnd)
        rows.append((point[0], flag, since, "" if made == "right" else made))
    rows += [("2000012345672", "A", "2024-03-01", "no_evidence"), ("3000123456", "", "", "no_evidence"),
             ("1312345678906", "A", "2024-03-01", "wrong_check_digit"),
             ("1312345678907", "Q", "2024-03-01", "bad_row"), ("1312345678907", "A", "2024/03/01", "bad_row"),
             ("12ab", "A", "2024-03-01", "bad_row"), (rows[0][0], "A", "2024-01-01", "duplicate")]
    gen.write(path, rows)
    return rows


def _reconcile(db: str, extract: Path, out: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "companion"), "reconcile", str(extract), "--db", db, "--out", str(out),
                           "--no-progress", *more], capture_output=True, text=True, timeout=300)


def _check(db: str, tmp_path: Path, evidence: list[tuple[str, str, str, str]], suffix: str) -> None:
    extract = tmp_path / f"extract{suffix}"
    rows = _extract(evidence, extract)
    out = tmp_path / "out"
    p = _reconcile(db, extract, out, "--correct", "active_after_removal,active_not_commissioned,blank_after_install",
                   "--list-unverified")
    assert p.returncode == 0, p.stderr
    got = {r["mpxn"]: r for r in csv.DictReader((out / "discrepancies.csv").open())}
    unverified = {r["mpxn"]: r for r in csv.DictReader((out / "unverified.csv").open())}
    # Every row is classed as it was made; a right row is no discrepancy; a meter point with no
    # evidence is no discrepancy either: it is counted, and listed on request.
    for mpxn, flag, since, made in rows:
        if made in ("bad_row", "duplicate"):
            continue
        if not made or made == "no_evidence":
            assert mpxn not in got, got[mpxn]
            if made:
                assert unverified[mpxn]["registered_flag"] == flag and unverified[mpxn]["made_as"] == made
            continue
        assert got[mpxn]["class"] == made, (mpxn, flag, since, got[mpxn])
        assert got[mpxn]["made_as"] == made  # extra columns are kept through
    by_class = {r["class"] for r in got.values()}
    assert by_class == set(CLASSES[:-1]) | {"wrong_check_digit"}
    assert sorted(unverified) == ["2000012345672", "3000123456"]
    # The deciding event and reason come with each evidence class, never with a wrong check digit.
    ev = {e[0]: e for e in evidence}
    for r in got.values():
        if r["class"] == "wrong_check_digit":
            assert r["event_id"] == "" and r["evidence_flag"] == ""
        else:
            assert len(r["event_id"]) == 32 and r["reason"] and r["evidence_flag"] == ev[r["mpxn"]][1]
            assert r["evidence_from"] == ev[r["mpxn"]][2]
    # Bad rows and the repeat, each with its line (the header is line 1).
    bad = list(csv.DictReader((out / "bad_rows.csv").open()))
    lines = {int(b["line"]): b["problem"] for b in bad}
    first = len(CLASSES) + 3 + 2  # the first bad row: after the classes and three more rows, and the header
    assert "flag must be one of" in lines[first] and "effective_from must be" in lines[first + 1]
    assert "not an MPAN core" in lines[first + 2] and lines[first + 3] == "duplicate of line 2"
    # The same rows, as Parquet.
    import duckdb

    assert duckdb.connect().execute(f"SELECT count(*) FROM '{out / 'discrepancies.parquet'}'").fetchone()[0] == len(got)
    # Corrections: only the chosen classes, each to the evidence's flag and date.
    summary = json.loads((out / "summary.json").read_text())
    chosen = {m: r for m, r in got.items()
              if r["class"] in ("active_after_removal", "active_not_commissioned", "blank_after_install")}
    lines_out = [ln for f in sorted((out / "corrections").iterdir()) for ln in f.read_text().splitlines()]
    groups = [ln.split("|") for ln in lines_out if not ln.startswith(("ZHV", "ZPT"))]
    assert sorted(g[1] for g in groups) == sorted(chosen)
    for g in groups:
        assert g[2] == chosen[g[1]]["evidence_flag"] and g[3] == chosen[g[1]]["evidence_from"].replace("-", "")
    assert summary["classes"]["active_after_removal"] == 1 and summary["discrepancies"] == len(got)
    assert summary["unverified"] == 2 and summary["duplicates"] == 1 and summary["bad_rows"] == 3
    assert summary["reconciled"] == len(got) + 2 + 1  # the discrepancies, the unverified and the right row
    html = (out / "report.html").read_text()
    assert "<svg" in html and "active_after_removal" in html and "<script" not in html and "http" not in html
    assert "2 meter points have no signed evidence" in html and "unverified.csv" in html


def test_every_class_from_an_extract_over_the_bench_evidence_sqlite(evidence_store, tmp_path):
    _check(str(evidence_store), tmp_path, gen.evidence_of(str(evidence_store)), ".csv")


def test_every_class_on_postgresql_from_the_same_signed_events(evidence_store, postgres, tmp_path):
    """The bench's signed events, ingested into a PostgreSQL store by the bridge's ingest:
    the same evidence, read through a server-side cursor; the extract as Parquet."""
    from companion.config import Config
    from companion.service.ingest import Incoming, Ingestor
    from companion.store.core import Store

    url = postgres.new_database()
    src, dst = Store(str(evidence_store)), Store(url, upgrade=True)
    for k in src.keys():
        dst.add_key(k.device_id, k.public_key)
    ing = Ingestor(dst, Config(db=url).check())
    rows = src.conn().execute("SELECT device_id, message, received_at FROM events ORDER BY received_at").fetchall()
    outs = ing.handle_batch([Incoming(f"flagwise/events/{d}", bytes(m), r) for d, m, r in rows])
    assert all(o.status == "stored" for o in outs), [o.detail for o in outs if o.status != "stored"][:3]
    assert gen.evidence_of(url) == gen.evidence_of(str(evidence_store))
    _check(url, tmp_path, gen.evidence_of(url), ".parquet")


def test_bad_input_is_a_message_and_an_exit_code_and_leaves_nothing(evidence_store, tmp_path):
    db = str(evidence_store)
    (tmp_path / "nocols.csv").write_text("mpan,flag\n1312345678907,A\n")
    p = _reconcile(db, tmp_path / "nocols.csv", tmp_path / "o1")
    assert p.returncode == 2 and "needs columns mpxn, flag, effective_from; missing mpxn, effective_from" in p.stderr
    assert not (tmp_path / "o1").exists() and "Traceback" not in p.stderr
    p = _reconcile(db, tmp_path / "missing.csv", tmp_path / "o2")
    assert p.returncode == 2 and "no extract at" in p.stderr
    (tmp_path / "o3").mkdir()
    (tmp_path / "o3" / "keep").write_text("x")
    (tmp_path / "ok.csv").write_text("mpxn,flag,effective_from\n1312345678907,A,2024-01-01\n")
    p = _reconcile(db, tmp_path / "ok.csv", tmp_path / "o3")
    assert p.returncode == 2 and "not an empty folder" in p.stderr and (tmp_path / "o3" / "keep").read_text() == "x"
    p = _reconcile(db, tmp_path / "ok.csv", tmp_path / "o4", "--correct", "no_evidence")
    assert p.returncode == 2 and "not a class that can be corrected" in p.stderr
    p = _reconcile(str(tmp_path / "nostore.db"), tmp_path / "ok.csv", tmp_path / "o5")
    assert p.returncode == 2 and "no store at" in p.stderr and not (tmp_path / "nostore.db").exists()
    (tmp_path / "torn.csv").write_text("mpxn,flag,effective_from\n1312345678907,A,2024-01-01,x,y\n"
                                       "3000123456,N,20240102\n")
    p = _reconcile(db, tmp_path / "torn.csv", tmp_path / "o6")
    assert p.returncode == 0, p.stderr
    bad = list(csv.DictReader((tmp_path / "o6" / "bad_rows.csv").open()))
    assert [(b["line"], b["problem"][:15]) for b in bad] == [("2", "unreadable row:")]
    assert json.loads((tmp_path / "o6" / "summary.json").read_text())["unverified"] == 1  # the run went on


def test_a_progress_bar_when_asked_and_none_in_a_pipe(evidence_store, tmp_path):
    (tmp_path / "ok.csv").write_text("mpxn,flag,effective_from\n1312345678907,A,2024-01-01\n")
    p = _reconcile(str(evidence_store), tmp_path / "ok.csv", tmp_path / "a", "--progress")
    assert p.returncode == 0 and "evidence from the store" in p.stderr and "reconcile" in p.stderr
    p = subprocess.run([str(BIN / "companion"), "reconcile", str(tmp_path / "ok.csv"), "--db", str(evidence_store),
                        "--out", str(tmp_path / "b")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == ""  # not a terminal: no bar
    assert "1 row: 1 reconciled" in p.stdout


def test_extracts_as_registration_systems_write_them(evidence_store, tmp_path):
    """A byte-order mark and capitalised headers, a semicolon-separated file, a Parquet file
    with typed columns (a number, a date), and extra columns named like the output's own or
    like the Parquet reader's row number (as CSV and as Parquet)."""
    import duckdb

    db = str(evidence_store)
    files = {
        "bom.csv": "\ufeffMPXN,Flag,Effective_From,Line\n1312345678907,a,2024-01-01,L1\n",
        "semi.csv": "mpxn;flag;effective_from;reason\n1312345678907;A;20240101;R1\n",
        # a column named like the Parquet reader's own row number (the work file's, too)
        "rownum.csv": "mpxn,flag,effective_from,file_row_number\n1312345678907,A,2024-01-01,R7\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    duckdb.connect().execute(f"COPY (SELECT 1312345678907::BIGINT AS mpxn, 'A' AS flag, DATE '2024-01-01' AS "
                             f"effective_from, 7 AS class) TO '{tmp_path / 'typed.parquet'}' (FORMAT parquet)")
    duckdb.connect().execute(f"COPY (SELECT '1312345678907' AS mpxn, 'A' AS flag, '2024-01-01' AS effective_from, "
                             f"'P9' AS file_row_number) TO '{tmp_path / 'rownum.parquet'}' (FORMAT parquet)")
    expect = {"bom.csv": ("extract_Line", "L1"), "semi.csv": ("extract_reason", "R1"),
              "typed.parquet": ("extract_class", "7"), "rownum.csv": ("extract_file_row_number", "R7"),
              "rownum.parquet": ("extract_file_row_number", "P9")}
    for name, (column, value) in expect.items():
        p = _reconcile(db, tmp_path / name, tmp_path / f"out-{name}", "--list-unverified")
        assert p.returncode == 0, (name, p.stderr)
        [row] = list(csv.DictReader((tmp_path / f"out-{name}" / "unverified.csv").open()))
        assert row["mpxn"] == "1312345678907" and row["registered_flag"] == "A", (name, row)
        assert row["registered_from"] == "2024-01-01", (name, row)
        assert row[column] == value, (name, row)


def test_the_streaming_engine_gives_the_outputs_of_the_engine_before_it_row_for_row(evidence_store, tmp_path):
    """The current engine against the one it replaced (tests/reconcile_before.py), on the bench's
    evidence and a messy extract big enough to be read in many chunks on both threads: every
    class, repeats (of a right row, of a wrong one, of a point with no evidence, of a wrong
    check digit), bad values, padded and lower-case values, both date forms, impossible dates,
    torn rows and extra columns. Same discrepancies, bad rows and counts; the old `no_evidence`
    rows are now the unverified list."""
    import random

    import duckdb

    from companion.config import Config
    from companion.reconcile.engine import reconcile
    from companion.store.core import Store

    from . import reconcile_before as before

    rnd = random.Random(23)
    evidence = gen.evidence_of(str(evidence_store))
    rows: list[list[str]] = []
    for i, (mpxn, flag, since, code) in enumerate(evidence):
        for made in CLASSES:
            if made == "right" or gen._applies(made, flag, code or ""):
                f, d = gen.registered(made, flag, since, rnd)
                rows.append([mpxn if i % 3 else f" {mpxn} ", f.lower() if i % 4 == 1 else f,
                             d.replace("-", "") if i % 2 else d, f"S{i}"])
    filler = 60_000
    for i in range(filler):  # meter points with no evidence, in chunks all through the file
        first = f"{10 + i % 14:02d}{(10**9 + i):010d}"
        from companion.ids import mpan_check_digit
        rows.insert(rnd.randrange(len(rows) + 1), [first + str(mpan_check_digit(first)), "A", "2023-05-01", f"F{i}"])
    odd = [["1312345678906", "A", "2024-03-01", "bad-check"], ["1312345678906", "I", "2024-03-02", "bad-check-again"],
           ["0123456", "N", "20240301", "mprn"], ["123456", "N", "20240301", "mprn-short"],
           ["0123456", "A", "2024-03-01", "mprn-repeat"], ["1312345678907", "Q", "2024-03-01", "bad-flag"],
           ["1312345678907", "A", "2024-02-30", "no-such-day"], ["1312345678907", "A", "20241301", "no-such-month"],
           ["1312345678907", "A", "2024/03/01", "slashes"], ["12ab", "A", "2024-03-01", "letters"],
           ["+123456", "A", "2024-03-01", "signed"], ["1e10000", "A", "2024-03-01", "exponent"],
           ["", "A", "2024-03-01", "empty"], ["1312345678907", "A", "", "no-date"],
           ["1312345678907", "", "", "blank"], [rows[0][0], "A", "2024-01-01", "repeat-of-first"],
           [rows[5][0], rows[5][1], rows[5][2], "repeat-same"], [rows[-1][0], "N", "2022-01-01", "repeat-of-filler"]]
    for r in odd:
        rows.insert(rnd.randrange(len(rows) + 1), r)
    text = "mpxn,flag,effective_from,note\n" + "".join(",".join(r) + "\n" for r in rows)
    lines = text.splitlines(keepends=True)
    for at in (len(lines) // 3, 2 * len(lines) // 3):  # torn rows, deep in the file
        lines.insert(at, "1312345678907,A,2024-01-01,x,y\n")
    csv_path = tmp_path / "extract.csv"
    csv_path.write_text("".join(lines))
    pq_path = tmp_path / "extract.parquet"
    duckdb.connect().execute(f"COPY (SELECT * FROM read_csv('{csv_path}', all_varchar = true, ignore_errors = true, "
                             f"null_padding = false, parallel = false)) TO '{pq_path}' (FORMAT parquet)")
    store = Store(str(evidence_store))

    def old_evidence() -> tuple[int, object]:
        count = store.conn().execute("SELECT count(*) FROM flags WHERE flag IS NOT NULL").fetchone()[0]
        return count, store.db.stream(
            "SELECT mpxn, flag, effective_from, event_id, reason, code FROM flags WHERE flag IS NOT NULL")

    for path in (csv_path, pq_path):
        old, new = tmp_path / f"old-{path.suffix[1:]}", tmp_path / f"new-{path.suffix[1:]}"
        a = before.reconcile(path, old_evidence, old, config=Config(), today=dt_date(2026, 11, 29))
        b = reconcile(path, store.evidence_arrow, new, config=Config(), today=dt_date(2026, 11, 29),
                      list_unverified=True)
        old_rows = list(csv.DictReader((old / "discrepancies.csv").open()))
        assert [r for r in old_rows if r["class"] != "no_evidence"] == list(
            csv.DictReader((new / "discrepancies.csv").open())), path.name
        keep = ("mpxn", "registered_flag", "registered_from", "note")
        assert [{k: r[k] for k in keep} for r in old_rows if r["class"] == "no_evidence"] == list(
            csv.DictReader((new / "unverified.csv").open())), path.name
        assert (old / "bad_rows.csv").read_text() == (new / "bad_rows.csv").read_text(), path.name
        assert (a.rows, a.reconciled, a.bad_rows, a.duplicates) == (b.rows, b.reconciled, b.bad_rows, b.duplicates)
        assert a.classes.pop("no_evidence") == b.unverified >= filler
        assert a.classes == b.classes and a.regions.keys() >= b.regions.keys() and a.ages == b.ages
        assert b.bad_rows == 9 + (2 if path is csv_path else 0) and b.duplicates >= 5  # bad values, torn rows, repeats
