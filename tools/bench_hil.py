"""Benchmark: how many emulated premises and boards the bench runs at once, and the wall
time of the scenario library.

Makes N dual-fuel premises, each with its own handheld (a real micropython board): every
board boots and waits (--hold) so that all are up at once, then installs and commissions
(board n --stagger ms after board n-1), and waits until the last board is done, against one
bridge; every flag is checked. The boards are all up from the first job to the last: what
varies with --stagger is how many jobs run at the same instant.

Reports the peaks (boards at once, descriptors, threads, the boards' memory) and the CPU the
fleet took, which is what sets the ceiling on this machine.

Usage: python tools/bench_hil.py [-n 50] [--broker embedded|mosquitto] [--timeout-multiplier X] [--no-library]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hil import runner  # noqa: E402
from hil.bench import raise_fd_limit  # noqa: E402


def mpan(n: int) -> str:
    first12 = f"18{n:010d}"
    w = (3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43)
    return first12 + str(sum(int(d) * x for d, x in zip(first12, w)) % 11 % 10)


SCENARIO = """name = "fleet-{n:03d}"
description = "fleet premises {n}: dual fuel install then commission"
[premises.home.hub]
chf = "00-1B-C5-0D-00-00-{hi:02X}-{lo:02X}"
gpf = "00-1B-C5-0E-00-00-{hi:02X}-{lo:02X}"
generation = "SMETS2"
dcc = true
[premises.home.wan]
connected = true
[[premises.home.devices]]
eui = "00-1B-C5-0F-00-00-{hi:02X}-{lo:02X}"
type = "ESME"
status = "InstalledNotCommissioned"
mpxn = "{mpan}"
[[premises.home.devices]]
eui = "00-1B-C5-10-00-00-{hi:02X}-{lo:02X}"
type = "GSME"
status = "InstalledNotCommissioned"
mpxn = "{mprn}"
[handhelds.hh]
device_id = "70-B3-D5-F2-00-00-{hi:02X}-{lo:02X}"
[[steps]]
do = "wait"
seconds = {hold}
[[steps]]
do = "job"
handheld = "hh"
type = "install"
mpan = "{mpan}"
mprn = "{mprn}"
[[steps]]
do = "hub"
premises = "home"
command = "status 00-1B-C5-0F-00-00-{hi:02X}-{lo:02X} Commissioned"
[[steps]]
do = "hub"
premises = "home"
command = "status 00-1B-C5-10-00-00-{hi:02X}-{lo:02X} Commissioned"
[[steps]]
do = "job"
handheld = "hh"
type = "commission"
mpan = "{mpan}"
mprn = "{mprn}"
[[steps]]
do = "wait"
seconds = {after}
[expect]
flags = {{ "{mpan}" = {{ flag = "A", since = "day+0" }}, "{mprn}" = {{ flag = "A", since = "day+0" }} }}
"""


def _fds(pid: int | str = "self") -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _pss(pid: str) -> int:
    """A process's proportional set size (shared pages split among their sharers), bytes."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


class Sampler:
    """Peaks while the fleet runs: this process's descriptors and threads, the boards'
    processes (micropython children) and their memory."""

    def __init__(self) -> None:
        self.fds = self.threads = self.boards = 0
        self.boards_rss = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.5):
            self.fds = max(self.fds, _fds())
            self.threads = max(self.threads, threading.active_count())
            kids, rss = 0, 0
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) != me or "(micropython)" not in stat:
                        continue
                    kids += 1
                    rss += _pss(pid)
                except (OSError, ValueError, IndexError):
                    continue
            if kids > self.boards:
                self.boards, self.boards_rss = kids, rss

    def __enter__(self) -> "Sampler":
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=50, help="premises and boards (default %(default)s)")
    ap.add_argument("--broker", default="embedded", choices=["embedded", "mosquitto"])
    ap.add_argument("--timeout-multiplier", type=float, default=None,
                    help="every bench wait this many times longer (default: 1 + n/50)")
    ap.add_argument("--hold", type=int, default=None,
                    help="seconds each board waits, booted, before its jobs, so that all are up at once "
                         "(default n/10, at least 5)")
    ap.add_argument("--stagger", type=int, default=250, metavar="MS",
                    help="board n starts its jobs n*MS after the first, and waits as much less after them, "
                         "so that all stay up at once (default %(default)s; 0: every job at the same instant)")
    ap.add_argument("--no-library", action="store_true", help="the fleet only, not the scenario library")
    args = ap.parse_args(argv)
    os.environ["HIL_TIMEOUT_MULTIPLIER"] = str(args.timeout_multiplier or 1 + args.n / 50)
    limit = raise_fd_limit()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = []
        hold = args.hold if args.hold is not None else max(5, args.n // 10)
        for n in range(args.n):
            f = d / f"fleet-{n:03d}.toml"
            f.write_text(SCENARIO.format(n=n, hi=n >> 8, lo=n & 0xFF, mpan=mpan(n), mprn=f"77{n:06d}",
                                           hold=hold + n * args.stagger / 1000,
                                           after=(args.n - 1 - n) * args.stagger / 1000))
            files.append(str(f))
        cpu0 = os.times()
        t0 = time.monotonic()
        with Sampler() as peak:
            rc = runner.run(files, d / "out", args.broker, jobs=args.n, say=lambda s: None)
        fleet = time.monotonic() - t0
        cpu1 = os.times()
        results = (d / "out" / "junit.xml").read_text()
        failures = results.count("<failure")
        import xml.etree.ElementTree as ET

        why: dict[str, int] = {}
        for case in ET.fromstring(results).iter("testcase"):
            f = case.find("failure")
            if f is not None:
                key = (f.get("message") or "")[:160]
                why[key] = why.get(key, 0) + 1
        for msg, count in sorted(why.items(), key=lambda kv: -kv[1])[:3]:
            print(f"  {count} failed: {msg}")
        print(f"fleet: {args.n} premises and {args.n} boards at once ({args.broker} broker), "
              f"2 jobs each (install, commission), a board's jobs every {args.stagger} ms: "
              f"{'all passed' if rc == 0 else f'{failures} FAILED'} in {fleet:.1f} s wall")
        busy = (cpu1.children_user + cpu1.children_system - cpu0.children_user - cpu0.children_system
                + cpu1.user + cpu1.system - cpu0.user - cpu0.system)
        print(f"  peaks: {peak.boards} boards running at once, {peak.fds} descriptors in the bench process "
              f"(limit {limit}), {peak.threads} threads, {peak.boards_rss / 2**20:.0f} MiB boards' memory (PSS)")
        print(f"  CPU: {busy:.0f} s over {fleet:.0f} s wall on {os.cpu_count()} cores "
              f"({busy / fleet / (os.cpu_count() or 1):.0%} of the machine); "
              f"{busy / max(1, args.n):.2f} CPU s a board (two signed jobs, a survey each, TLS, acks)")
        if not args.no_library:
            t0 = time.monotonic()
            os.environ["HIL_TIMEOUT_MULTIPLIER"] = "1"
            rc_lib = runner.run([], d / "lib", args.broker, jobs=8, say=lambda s: None)
            lib = time.monotonic() - t0
            print(f"scenario library: {'all passed' if rc_lib == 0 else 'FAILURES'} in {lib:.1f} s wall time "
                  "(8 at once)")
            rc = rc or rc_lib
    return rc


if __name__ == "__main__":
    sys.exit(main())
