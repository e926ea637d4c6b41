"""Benchmark: a full job cycle of the field agent (survey, sign, save, TLS connect with its
certificate, publish, verified ack) with .mpy modules under `micropython -X heapsize=64k`,
at an emulated dual-fuel premises, through mosquitto (the shipped configuration) to the
bridge.

Reports the cycle time and its stages (median of N), the smallest heap (KiB, by bisection)
in which the cycle completes, and the flash bytes per event in the outbox.

Usage: python tools/bench_agent.py [-n 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hil import hub, micropython, premises  # noqa: E402
from tests.agent_support import Board  # noqa: E402
from hil.services import identity_files  # noqa: E402
from tests.bridge_support import BridgeProcess, Mosquitto  # noqa: E402

DEVICE = "70-B3-D5-F1-00-00-00-99"
JOB = ["--job", "commission", "2000012345672", "3000123456", "WO-B", "INST-B"]


def timed_cycle(board: Board, heapsize: str = "64k") -> dict[str, float] | None:
    """Run one job with delivery; time each stage from the output lines as they appear."""
    t0 = time.perf_counter()
    board.spec.heapsize = heapsize
    p = subprocess.Popen(board.argv(*JOB, "--deliver", "20"), stdout=subprocess.PIPE,
                         text=True, env=micropython.environment(micropython.firmware_path(mpy=True)))
    marks: dict[str, float] = {}
    seen = []
    for line in p.stdout:
        seen.append(line.rstrip())
        tag = line.split(" ", 1)[0]
        if tag in ("READY", "SURVEY", "REFUSED", "SAVED", "SENT", "ACKED") and tag not in marks:
            marks[tag] = time.perf_counter() - t0
    p.wait()
    if "ACKED" not in marks and heapsize == "64k":
        print("cycle failed under 64k; its console:\n  " + "\n  ".join(seen[-12:]))
    return marks if "ACKED" in marks else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, hub.HubEmulator(premises.load("smets2-dual-fuel")) as site:
        work = Path(tmp)
        broker = Mosquitto(work)
        identity_files(broker.pki, "bridge", "bridge")
        broker.start()
        board = Board(work / "flash", DEVICE, broker.port, site.path, pki=broker.pki)
        bridge = BridgeProcess(work, broker.url, http="off")
        bridge.companion("keys", "add", DEVICE, board.public_key)
        bridge.start()
        try:
            runs = [timed_cycle(board) for _ in range(args.n)]
            if not all(runs):
                print("a cycle did not complete under 64k")
                return 1
            rc, lines = board.run(*JOB)  # saved, not delivered: measure the record on flash
            record = max((board.flash / "outbox").glob("*.ev"), key=lambda p: p.name)
            flash_bytes = record.stat().st_size
            counter_bytes = (board.flash / "counter").stat().st_size
            board.run("--deliver", "20")
            hi = micropython.smallest_heap(lambda kib: timed_cycle(board, f"{kib}k") is not None, 32, 64)
        finally:
            bridge.stop()
            broker.stop()

    def med(a: str, b: str) -> float:
        return statistics.median((r[b] - r[a]) * 1000 for r in runs)

    total = statistics.median(r["ACKED"] * 1000 for r in runs)
    print(f"full job cycle (commission, dual fuel, 4 devices; .mpy, heapsize=64k), median of {args.n}:")
    print(f"  process start to ACKED: {total:.0f} ms")
    print(f"  boot (start to READY) {statistics.median(r['READY'] * 1000 for r in runs):.0f} ms,"
          f" survey+check+sign+save {med('SURVEY', 'SAVED'):.0f} ms,"
          f" connect+publish {med('SAVED', 'SENT'):.0f} ms, bridge ack {med('SENT', 'ACKED'):.0f} ms")
    print(f"smallest heap that completes the cycle: {hi} KiB")
    print(f"flash per event: {flash_bytes} B outbox record (+ {counter_bytes} B counter file, shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
