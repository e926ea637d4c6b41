"""A realistic synthetic registration extract, for the reconcile tests and benchmark.

Given the evidence (each meter point's derived flag, date and reason code: a store's flags),
it writes an extract whose rows are wrong in stated shares, each kind where the evidence
allows it: A after a removal, A never commissioned, blank after an install, N never
propagated, and the rest of the classes of companion/reconcile/engine.py; plus meter points with no
evidence, MPANs with a wrong check digit, bad rows and duplicates. Each row carries the class
it was made to have (column `made_as`, kept through by reconcile), so a test can hold every
row's class to its making. Same seed, same file.

Usage: python tools/make_extract.py --db STORE OUT.csv|OUT.parquet [--rows N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

W = (3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43)

# The share of evidence-backed rows made wrong in each way (the rest are right), and of all rows
# the share with no evidence, a wrong check digit, a bad value, or repeated.
SHARES = {
    "legacy_value": 0.02, "active_after_removal": 0.05, "active_not_commissioned": 0.08,
    "blank_after_install": 0.06, "non_active_not_propagated": 0.04, "commissioned_not_propagated": 0.03,
    "installed_not_propagated": 0.02, "wrong_effective_date": 0.05,
}
OTHER = {"wrong_check_digit": 0.002, "bad_row": 0.001, "duplicate": 0.001}


def check_digit(first12: str) -> str:
    return str(sum(int(d) * w for d, w in zip(first12, W)) % 11 % 10)


def _applies(made: str, flag: str, code: str) -> bool:
    return {
        "legacy_value": True,
        "active_after_removal": flag == "N" and code.startswith("removed"),
        "active_not_commissioned": flag == "I" or (flag == "N" and not code.startswith("removed")),
        "blank_after_install": flag in ("I", "A"),
        "non_active_not_propagated": flag == "N",
        "commissioned_not_propagated": flag == "A",
        "installed_not_propagated": flag == "I",
        "wrong_effective_date": True,
    }[made]


def registered(made: str, flag: str, since: str, rnd: random.Random) -> tuple[str, str]:
    """The registration row's (flag, effective_from) that makes the class `made`."""
    compact = since.replace("-", "")
    if made == "legacy_value":
        return rnd.choice("SW"), compact
    if made in ("active_after_removal", "active_not_commissioned"):
        return "A", compact
    if made == "blank_after_install":
        return "", ""
    if made == "non_active_not_propagated":
        return ("", "") if rnd.random() < 0.5 else ("I", compact)
    if made == "commissioned_not_propagated":
        return rnd.choice("IN"), compact
    if made == "installed_not_propagated":
        return "N", compact
    if made == "wrong_effective_date":
        return flag, (date.fromisoformat(since) - timedelta(days=rnd.randint(1, 900))).isoformat()
    return flag, since if rnd.random() < 0.5 else compact  # right: either date form


def rows_for(evidence: list[tuple[str, str, str, str]], rows: int, seed: int,
             shares: dict[str, float] | None = None) -> list[tuple[str, str, str, str]]:
    """(mpxn, flag, effective_from, made_as) rows; `rows` at least len(evidence) (no-evidence
    MPANs fill the rest)."""
    rnd = random.Random(seed)
    shares = {**SHARES, **(shares or {})}
    out: list[tuple[str, str, str, str]] = []
    for mpxn, flag, since, code in evidence:
        made = "right"
        pick = rnd.random()
        for cls, share in shares.items():
            if pick < share:
                made = cls if _applies(cls, flag, code or "") else "right"
                break
            pick -= share
        f, d = registered(made, flag, since, rnd)
        out.append((mpxn, f, d, "" if made == "right" else made))
    known = {r[0] for r in out}
    n = len(out)
    while n < rows:
        first12 = f"{rnd.randint(10, 23):02d}{rnd.randrange(10**10):010d}"
        roll = rnd.random()
        if roll < OTHER["wrong_check_digit"]:
            good = check_digit(first12)
            out.append((first12 + str((int(good) + rnd.randint(1, 9)) % 10), "A", "2023-04-01", "wrong_check_digit"))
        elif roll < OTHER["wrong_check_digit"] + OTHER["bad_row"]:
            out.append((first12 + check_digit(first12), rnd.choice("XYZ"), "2023-04-01", "bad_row"))
        elif roll < sum(OTHER.values()) and out:
            out.append((out[rnd.randrange(len(out))][0], "A", "2023-04-01", "duplicate"))
        else:
            mpxn = first12 + check_digit(first12)
            if mpxn in known:
                continue
            out.append((mpxn, rnd.choice(["A", "A", "A", "I", "N", ""]), "2022-06-01", "no_evidence"))
        n += 1
    return out


def write(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    """CSV or Parquet, by the file's suffix (DuckDB writes both)."""
    import duckdb
    import pyarrow as pa

    table = pa.table({"mpxn": [r[0] for r in rows], "flag": [r[1] for r in rows],
                      "effective_from": [r[2] for r in rows], "made_as": [r[3] for r in rows]})
    con = duckdb.connect()
    con.register("t", table)
    target = str(path).replace("'", "''")
    fmt = "(FORMAT parquet)" if path.suffix == ".parquet" else "(HEADER, DELIMITER ',')"
    con.execute(f"COPY t TO '{target}' {fmt}")


def evidence_of(db: str) -> list[tuple[str, str, str, str]]:
    from companion.store.core import Store

    store = Store(db)
    return [(m, f, d, c) for m, f, d, c in store.conn().execute(
        "SELECT mpxn, flag, effective_from, code FROM flags WHERE flag IS NOT NULL ORDER BY mpxn")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--db", required=True, help="the store whose evidence the extract is made over")
    ap.add_argument("--rows", type=int, default=0, help="rows in all (default: one per evidence meter point)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    ev = evidence_of(args.db)
    rows = rows_for(ev, max(args.rows, len(ev)), args.seed)
    write(args.out, rows)
    print(f"{len(rows):,} rows over {len(ev):,} meter points with evidence: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

