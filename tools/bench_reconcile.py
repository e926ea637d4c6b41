"""Benchmark: `companion reconcile` on 10M, 30M and 57M-row extracts (57M: every GB meter point):
wall time, peak RSS and rows/s, against the floor measured in the same run: a DuckDB read of the
same extract and evidence (the evidence through the same ADBC driver), joined, and the rows whose
flag or date differ written out as CSV and Parquet. pandas (read_csv + merge) is run too, up to
--pandas-max rows.

For each size N: a SQLite store with N/10 meter points of evidence (flags rows written
directly: a benchmark of the reconcile, not of the ingest), and an extract of N rows made in
DuckDB (the evidence-backed rows, a share of them wrong, then rows with no evidence), as CSV.
Each run is a process of its own; its peak RSS is the kernel's (getrusage of the child).

Usage: python tools/bench_reconcile.py [--sizes 10000000,30000000,57000000] [--pandas-max 10000000]
                                       [--json FILE]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
W = (3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43)


def mpan_sql(i: str) -> str:
    """A valid MPAN core for integer i, in DuckDB SQL (distributor 10-23, then i)."""
    first = f"(lpad(CAST(10 + {i} % 14 AS VARCHAR), 2, '0') || lpad(CAST({i} AS VARCHAR), 10, '0'))"
    terms = " + ".join(f"CAST(substr({first}, {k + 1}, 1) AS INTEGER) * {w}" for k, w in enumerate(W))
    return f"({first} || CAST(({terms}) % 11 % 10 AS VARCHAR))"


def make(dir: Path, n: int) -> tuple[Path, Path]:
    import duckdb

    k = n // 10
    db = dir / f"store-{n}.db"
    extract = dir / f"extract-{n}.csv"
    con = duckdb.connect()
    con.execute(f"""CREATE TABLE ev AS SELECT i, {mpan_sql('i')} AS mpxn,
        CASE WHEN i % 10 < 6 THEN 'A' WHEN i % 10 < 8 THEN 'I' ELSE 'N' END AS flag,
        strftime(DATE '2021-01-01' + CAST(i % 1500 AS INTEGER), '%Y-%m-%d') AS since,
        CASE WHEN i % 10 = 9 THEN 'removed_no_hub' WHEN i % 10 = 8 THEN 'smets1_not_enrolled'
             WHEN i % 10 < 6 THEN 'commissioned' ELSE 'meter_not_commissioned' END AS code
        FROM range({k}) t(i)""")
    sys.path.insert(0, str(ROOT))
    from companion.store.core import Store

    Store(str(db), upgrade=True).db.close()  # the schema, as the bridge makes it
    s = sqlite3.connect(db)
    s.execute("PRAGMA synchronous=OFF")
    cur = con.execute("SELECT mpxn, flag, since, code, i FROM ev")
    while rows := cur.fetchmany(200_000):
        s.executemany("INSERT INTO flags (mpxn, flag, effective_from, reason, event_id, event_ids, override, version, "
                      "updated_at, code, last_key, event_count) VALUES (?, ?, ?, ?, ?, '[]', NULL, 1, 0, ?, NULL, 1)",
                      [(m, f, d, f"{c} (bench)", f"{i:032x}", c) for m, f, d, c, i in rows])
    s.commit()
    s.close()
    # The extract: every evidence point once (a fifth of them wrong: A for I/N, blank, S, an old
    # date), then meter points with no evidence.
    con.execute(f"""COPY (
        SELECT mpxn,
          CASE WHEN i % 5 = 0 THEN (CASE flag WHEN 'A' THEN '' ELSE 'A' END)
               WHEN i % 25 = 1 THEN 'S' ELSE flag END AS flag,
          CASE WHEN i % 25 = 2 THEN '2019-01-01' ELSE replace(since, '-', '') END AS effective_from,
          'SUP' || CAST(i % 40 AS VARCHAR) AS supplier
        FROM ev
        UNION ALL
        SELECT {mpan_sql(f'(i + {k})')}, 'A', '2022-06-01', 'SUP1' FROM range({n - k}) t(i)
    ) TO '{extract}' (HEADER, DELIMITER ',')""")
    return db, extract


WRAP = ("import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr)\n"
        "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(p.returncode)\n")


def timed(argv: list[str]) -> tuple[float, float, str]:
    """(wall s, peak RSS MiB, stdout) of a child process, measured by a wrapper of its own (the
    kernel's peak for that one child)."""
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", WRAP, *argv], capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {p.stderr[-800:]}")
    lines = p.stdout.splitlines()
    peak = int(lines[-1].split()[1])
    return wall, peak / 1024, "\n".join(lines[:-1])


FLOOR = """
import sys
import adbc_driver_sqlite.dbapi as adbc
import duckdb
db, extract, out = sys.argv[1:4]
con = duckdb.connect()
cur = adbc.connect(db).cursor()
cur.execute("SELECT mpxn, flag, effective_from, event_id, reason FROM flags WHERE flag IS NOT NULL")
con.register("ev", cur.fetch_record_batch())
con.execute("CREATE TABLE e AS SELECT * FROM ev")
con.execute(f\"\"\"CREATE TABLE d AS SELECT r.*, e.flag AS evidence_flag, e.effective_from AS evidence_from, e.event_id,
    e.reason FROM read_csv('{extract}', all_varchar = true) r JOIN e ON e.mpxn = r.mpxn
    WHERE r.flag IS DISTINCT FROM e.flag
       OR replace(r.effective_from, '-', '') <> replace(e.effective_from, '-', '')\"\"\")
con.execute(f"COPY d TO '{out}.csv' (HEADER)")
con.execute(f"COPY d TO '{out}.parquet' (FORMAT parquet)")
print(con.execute("SELECT count(*) FROM d").fetchone()[0])
"""

PANDAS = """
import sqlite3, sys
import pandas as pd
db, extract = sys.argv[1], sys.argv[2]
reg = pd.read_csv(extract, dtype=str, keep_default_na=False)
ev = pd.read_sql_query("SELECT mpxn, flag AS evidence_flag, effective_from AS evidence_from, event_id, reason "
                       "FROM flags WHERE flag IS NOT NULL", sqlite3.connect(db))
m = reg.merge(ev, on="mpxn", how="left")
wrong = m[m.evidence_flag.isna() | (m.flag != m.evidence_flag)]
print(len(m), len(wrong))
"""


def main(argv: list[str] | None = None) -> int:
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000000,30000000,57000000")
    ap.add_argument("--pandas-max", type=int, default=10_000_000, help="the largest size pandas is run at")
    ap.add_argument("--memory-limit", default="1GB")
    ap.add_argument("--json", help="write the figures to this file as JSON")
    args = ap.parse_args(argv)
    record: list[dict[str, object]] = []
    print("size        engine        wall s      rows/s   peak RSS")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for n in (int(s) for s in args.sizes.split(",")):
            t0 = time.monotonic()
            db, extract = make(d, n)
            made = time.monotonic() - t0
            row: dict[str, object] = {"rows": n, "evidence": n // 10}
            wall, rss, out = timed([sys.executable, "-c", FLOOR, str(db), str(extract), str(d / f"floor-{n}")])
            row["floor"] = {"seconds": round(wall, 2), "peak_rss_mib": round(rss), "written": int(out.split()[-1])}
            print(f"{n:>10,}  floor       {wall:7.1f}  {n / wall:>10,.0f}  {rss:7.0f} MiB  (DuckDB read, join, write)")
            if n <= args.pandas_max:
                wall, rss, _ = timed([sys.executable, "-c", PANDAS, str(db), str(extract)])
                row["pandas"] = {"seconds": round(wall, 2), "peak_rss_mib": round(rss)}
                print(f"{n:>10,}  pandas      {wall:7.1f}  {n / wall:>10,.0f}  {rss:7.0f} MiB  (read_csv + merge only)")
            wall, rss, out = timed([str(BIN / "companion"), "reconcile", str(extract), "--db", str(db), "--out",
                                    str(d / f"out-{n}"), "--no-progress", "--memory-limit", args.memory_limit,
                                    "--today", "2026-11-29"])
            row["reconcile"] = {"seconds": round(wall, 2), "peak_rss_mib": round(rss)}
            floor = row["floor"]["seconds"]  # type: ignore[index]
            row["reconcile_over_floor"] = round(wall / floor, 2)
            print(f"{n:>10,}  reconcile   {wall:7.1f}  {n / wall:>10,.0f}  {rss:7.0f} MiB  "
                  f"({wall / floor:.2f}x the floor; {out.splitlines()[0]}; extract made in {made:.0f} s)")
            record.append(row)
            for p in d.glob(f"*-{n}*"):
                if p.is_file():
                    p.unlink()
                elif p.is_dir():
                    shutil.rmtree(p)
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
