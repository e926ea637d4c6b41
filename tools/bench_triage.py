"""Benchmark: `companion triage` of N alerts against a store of M meter points (rows/s, peak RSS),
against the floor: a DuckDB join of the same alerts with the same meter points' meters, written
out, in a process of its own.

The store: M meter points, each with one commission event (a hub, a commissioned ESME on the
SM WAN) written straight into the store (a benchmark of the triage, not of the ingest; the events
are well-formed COSE_Sign1 with a dummy signature, never verified here). The alerts: N rows as
CSV, most from the meter point's own meter, one in ten from another device.

Usage: python tools/bench_triage.py [--alerts 10000000] [--sites 1000000] [--store DB] [--json FILE]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

T0 = 1793491200  # 2026-11-01


def mpan(i: int) -> str:
    from companion.ids import mpan_check_digit

    first = f"{10 + i % 14:02d}{i:010d}"
    return first + str(mpan_check_digit(first))


def eui(i: int, kind: int) -> str:
    return "-".join(f"{b:02X}" for b in (0x00, 0x1B, kind, (i >> 32) & 255, (i >> 24) & 255, (i >> 16) & 255,
                                          (i >> 8) & 255, i & 255))


def make_store(db: Path, sites: int) -> None:
    import cbor2

    from companion.store.core import Store
    from companion.wire.event import parse_payload

    sys.path.insert(0, str(ROOT / "tools"))
    from make_vectors import to_wire

    store = Store(db)
    device = "70-B3-D5-F1-00-00-00-01"
    kid = bytes.fromhex(device.replace("-", ""))
    prot = cbor2.dumps({1: -7, 4: kid}, canonical=True)
    batch = []
    for i in range(sites):
        m = mpan(i)
        ev = {"id": {"$bytes": i.to_bytes(16, "big").hex()}, "type": "commission", "mpans": [m], "mprns": [],
              "job": f"J{i}", "installer": "I-1", "time": T0 + 5, "counter": i + 1, "firmware": "0.2.0",
              "evidence": {"read_time": T0, "hub": {"chf": eui(i, 1), "generation": "SMETS2", "dcc": True},
                           "wan": {"connected": True},
                           "devices": [{"eui": eui(i, 0x10), "type": "ESME", "status": "Commissioned", "mpxn": m,
                                        "answered": True}]}}
        payload = cbor2.dumps(to_wire(ev), canonical=True)
        message = cbor2.dumps(cbor2.CBORTag(18, [prot, {}, payload, b"\0" * 64]))
        batch.append((device, parse_payload(payload), message, float(T0 + 60)))
        if len(batch) == 2000:
            with store.tx() as tx:
                store.insert_events(tx, batch)
            batch = []
    if batch:
        with store.tx() as tx:
            store.insert_events(tx, batch)
    store.close()


def make_alerts(path: Path, meters: Path, n: int, sites: int) -> None:
    rnd = random.Random(7)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mpan", "device_id", "time", "alert_code"])
        for k in range(n):
            i = rnd.randrange(sites)
            device = eui(i, 0x10) if k % 10 else eui(rnd.randrange(sites), 0x10)
            # From five days before the meter points' commissioning to 25 days after it.
            at = dt.datetime.fromtimestamp(T0 - 5 * 86400 + rnd.randrange(30 * 86400), dt.timezone.utc)
            w.writerow([mpan(i), device, at.strftime("%Y-%m-%dT%H:%M:%SZ"), "0x8F01"])
    with meters.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mpan", "meter", "since"])
        for i in range(sites):
            w.writerow([mpan(i), eui(i, 0x10), "2026-11-01"])


_FLOOR = """
import sys, duckdb
con = duckdb.connect()
con.execute("SET threads = 2")
con.execute(f\"\"\"COPY (
    SELECT a.*, CASE WHEN m.meter IS NULL THEN 'unknown' WHEN m.meter = a.device_id THEN 'expected'
                     ELSE 'device_not_here' END AS verdict, m.meter IS NOT NULL AS smets2_expected,
           m.meter = a.device_id AS device_is_meter, m.since
    FROM read_csv('{sys.argv[1]}', all_varchar = true) a
    LEFT JOIN read_csv('{sys.argv[2]}', all_varchar = true) m
      ON m.mpan = a.mpan AND m.since <= a.time
) TO '{sys.argv[3]}' (HEADER)\"\"\")
"""


def child(cmd: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:3]} failed: {(p.stderr.read() if p.stderr else '')[-600:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=10_000_000)
    ap.add_argument("--sites", type=int, default=1_000_000)
    ap.add_argument("--store", help="a store made by an earlier run with the same --sites (kept; made there if "
                                    "missing)")
    ap.add_argument("--json", help="write the figures to this file as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        db = Path(args.store) if args.store else d / "store.db"
        started = time.perf_counter()
        if not db.exists():
            make_store(db, args.sites)
        make_alerts(d / "alerts.csv", d / "meters.csv", args.alerts, args.sites)
        print(f"made a store of {args.sites:,} meter points and {args.alerts:,} alerts in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        ours_s, ours_rss = child([str(BIN / "companion"), "triage", str(d / "alerts.csv"), "--db", str(db),
                                  "--out", str(d / "out")])
        floor_s, floor_rss = child([sys.executable, "-c", _FLOOR, str(d / "alerts.csv"), str(d / "meters.csv"),
                                    str(d / "floor.csv")])
    n = args.alerts
    print(f"triage of {n:,} alerts against {args.sites:,} meter points, one run:")
    print(f"  companion triage: {ours_s:8.1f} s  {n / ours_s:10,.0f} rows/s  peak RSS {ours_rss:6.0f} MiB")
    print(f"  DuckDB join:      {floor_s:8.1f} s  {n / floor_s:10,.0f} rows/s  peak RSS {floor_rss:6.0f} MiB")
    print(f"  triage / floor: {ours_s / floor_s:.1f}x the time, {ours_rss / floor_rss:.1f}x the memory")
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({
            "alerts": n, "sites": args.sites,
            "triage": {"seconds": round(ours_s, 1), "rows_per_s": round(n / ours_s), "peak_rss_mib": round(ours_rss)},
            "floor": {"seconds": round(floor_s, 1), "rows_per_s": round(n / floor_s), "peak_rss_mib": round(floor_rss)},
            "triage_over_floor": round(ours_s / floor_s, 1)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
