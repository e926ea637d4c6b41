"""`hil run`: scenarios in parallel on one bench, a live view, a result table, JUnit XML and
a markdown report with each premises' flag timeline."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import scenario as sc
from .report import markdown, result_table, write_junit
from .bench import Bench


def run(names: list[str], out: Path, broker: str = "embedded", jobs: int = 8, say=print) -> int:
    scenarios = [sc.load(n) for n in (names or sc.library())]
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("bench", "boards"):  # a run starts from empty stores and flash
        shutil.rmtree(out / sub, ignore_errors=True)
    lock = threading.Lock()

    def tell(text: str) -> None:
        with lock:
            say(text)
            sys.stdout.flush()

    t0 = time.monotonic()
    tell(f"bench: {broker} broker, bridge with SQLite, {len(scenarios)} scenarios, up to {jobs} at once; "
         f"output in {out}")
    bench = Bench(out / "bench", broker, say=tell)
    tell(f"bench: broker {bench.bridge.broker}, read API {bench.bridge.http}")
    results: list[sc.Result] = []
    try:
        def one(s: sc.Scenario) -> sc.Result:
            tell(f"▶ {s.name}")
            # Lines from scenarios running side by side carry their scenario's name.
            r = sc.Run(s, bench, out / "boards" / s.name, say=lambda t, n=s.name: tell(f"[{n}] {t.strip()}")).execute()
            tell(f"{'✔' if r.ok else '✘'} {s.name} ({r.seconds:.1f} s)"
                 + ("" if r.ok else ": " + (r.error or "; ".join(c.what for c in r.checks if not c.ok))))
            return r

        parallel = [s for s in scenarios if not s.exclusive]
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            results += list(pool.map(one, parallel))
        for s in scenarios:
            if s.exclusive:  # restarts the shared broker: alone
                results.append(one(s))
    finally:
        bench.close()
    wall = time.monotonic() - t0
    table = result_table(results)
    tell("\n" + table)
    passed = sum(r.ok for r in results)
    tell(f"{passed}/{len(results)} scenarios passed in {wall:.0f} s")
    write_junit(results, out / "junit.xml", wall)
    (out / "report.md").write_text(markdown(results, bench, wall))
    tell(f"report: {out / 'report.md'}  junit: {out / 'junit.xml'}  DTC files: {bench.bridge.out}")
    return 0 if passed == len(results) else 1
