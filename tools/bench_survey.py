"""Benchmark: the firmware's survey of a dual-fuel premises over the emulated HAN link.

Reports the survey time at the premises' baud rate (median of N runs, .mpy modules under
`micropython -X heapsize=64k`), and the smallest heap (KiB, by bisection) in which the
survey still completes.

Usage: python tools/bench_survey.py [-n 5] [--premises smets2-dual-fuel] [--baud 19200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hil import hub, micropython, premises, probes  # noqa: E402


def fits(p: premises.Premises, kib: int) -> bool:
    with hub.HubEmulator(p) as h:
        return probes.survey(h.path, heapsize=f"{kib}k")["ok"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--premises", default="smets2-dual-fuel")
    ap.add_argument("--baud", type=int)
    args = ap.parse_args(argv)
    p = premises.load(args.premises)
    if args.baud:
        p.baud = args.baud
    times, requests = [], 0
    for i in range(args.n):
        with hub.HubEmulator(p, seed=i) as h:
            r = probes.survey(h.path, heapsize="64k")
        if not r["ok"]:
            print(f"survey failed: {r}")
            return 1
        times.append(r["ms"])
        requests = r["link"]["requests"]
    hi = micropython.smallest_heap(lambda kib: fits(p, kib), 8, 64)
    print(f"premises {p.name}: {len(p.devices)} devices, {requests} requests a survey, {p.baud} baud, "
          f"response delay {p.response_delay_ms[0]}-{p.response_delay_ms[1]} ms")
    print(f"survey time (.mpy, heapsize=64k): median {statistics.median(times):.0f} ms "
          f"(min {min(times)}, max {max(times)}, n={len(times)})")
    print(f"smallest heap that completes the survey: {hi} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
