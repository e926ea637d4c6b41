"""Benchmark: `GET /v1/devices/{eui}` latency (p50, p99) at a steady 100 requests/s, against a
store of M meter points (each with a hub and a meter: 2M devices), served by the bridge's own
HTTP server (waitress, as `companion bridge --http` runs it) in a process of its own.

The store is the triage bench's (tools/bench_triage.py: one commission event a meter point,
written straight into the store). The requests are paced by their start times (an open loop:
a slow answer does not slow the next request's start), one in ten for a device no source knows
(a 404), over a few keep-alive connections.

Usage: python tools/bench_devices.py [--sites 1000000] [--rate 100] [--seconds 30] [--store DB] [--json FILE]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

_SERVER = """
import sys, threading
from waitress.server import create_server
from companion.config import Config
from companion.service.metrics import Metrics
from companion.store.core import Store
from companion.surfaces.api import Api
store = Store(sys.argv[1])
api = Api(store, Config(), Metrics(), lambda *a, **k: {})
server = create_server(api, host="127.0.0.1", port=0, threads=8, asyncore_use_poll=True, ident="flagwise")
print(server.effective_port, flush=True)
server.run()
"""


def main() -> int:
    import bench_triage

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--store", help="a store made by an earlier run (kept; made there if missing)")
    ap.add_argument("--json", help="write the figures to this file as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.store) if args.store else Path(tmp) / "store.db"
        if not db.exists():
            started = time.perf_counter()
            bench_triage.make_store(db, args.sites)
            print(f"made a store of {args.sites:,} meter points in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)
        from companion.store.core import Store

        store = Store(db)
        devices = int(store.conn().execute("SELECT count(DISTINCT eui) FROM event_devices").fetchone()[0])
        token = store.add_token(f"bench-{os.getpid()}")
        store.close()
        server = subprocess.Popen([sys.executable, "-c", _SERVER, str(db)], stdout=subprocess.PIPE, text=True,
                                  cwd=ROOT)
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            result = load(port, token, args)
        finally:
            server.terminate()
            server.wait()
    lat, codes, late = result
    lat.sort()
    q = statistics.quantiles(lat, n=100)
    print(f"GET /v1/devices/{{eui}} at {args.rate:.0f}/s for {args.seconds:.0f} s, {devices:,} devices stored:")
    print(f"  {len(lat):,} requests: p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {lat[-1]:.1f} ms; "
          f"answers {json.dumps(codes, sort_keys=True)}; started late by over 10 ms: {late}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "devices": devices, "rate": args.rate, "requests": len(lat), "p50_ms": round(q[49], 2),
            "p99_ms": round(q[98], 2), "max_ms": round(lat[-1], 1), "answers": codes, "late": late}, indent=1) + "\n")
    return 0


def load(port: int, token: str, args: argparse.Namespace) -> tuple[list[float], dict[int, int], int]:
    """Requests at a steady rate over 4 connections; (latencies in ms, status counts, late starts)."""
    import bench_triage

    rnd = random.Random(11)
    n = int(args.rate * args.seconds)
    targets = []
    for k in range(n):
        i = rnd.randrange(args.sites)
        targets.append(bench_triage.eui(i, 1 if k % 3 == 0 else 0x10) if k % 10 else
                       bench_triage.eui(args.sites + k, 0x20))
    lat: list[float] = []
    codes: dict[int, int] = {}
    late = 0
    lock = threading.Lock()
    start = time.perf_counter() + 0.5
    workers = 4

    def run(w: int) -> None:
        nonlocal late
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for k in range(w, n, workers):
            due = start + k / args.rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            t0 = time.perf_counter()
            conn.request("GET", f"/v1/devices/{targets[k]}", headers={"Authorization": f"Bearer {token}"})
            r = conn.getresponse()
            r.read()
            t1 = time.perf_counter()
            with lock:
                # Latency from when the request was due: time spent queued behind a slow one counts.
                lat.append((t1 - min(due, t0)) * 1000)
                codes[r.status] = codes.get(r.status, 0) + 1
                late += t0 - due > 0.010
        conn.close()

    threads = [threading.Thread(target=run, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, codes, late


if __name__ == "__main__":
    sys.exit(main())
