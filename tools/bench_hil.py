"""Benchmark: how many emulated premises and boards the bench runs at once, and the wall
time of the scenario library.

Makes N dual-fuel premises, each with its own handheld (a real micropython board), all
commissioning at the same time against one bridge (embedded broker), and checks every flag.

Usage: python tools/bench_hil.py [-n 50] [--broker embedded|mosquitto]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hil import runner  # noqa: E402


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
[expect]
flags = {{ "{mpan}" = {{ flag = "A", since = "day+0" }}, "{mprn}" = {{ flag = "A", since = "day+0" }} }}
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--broker", default="embedded")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = []
        for n in range(args.n):
            f = d / f"fleet-{n:03d}.toml"
            f.write_text(SCENARIO.format(n=n, hi=n >> 8, lo=n & 0xFF, mpan=mpan(n), mprn=f"77{n:06d}"))
            files.append(str(f))
        t0 = time.monotonic()
        rc = runner.run(files, d / "out", args.broker, jobs=args.n, say=lambda s: None)
        fleet = time.monotonic() - t0
        t0 = time.monotonic()
        rc_lib = runner.run([], d / "lib", args.broker, jobs=8, say=lambda s: None)
        lib = time.monotonic() - t0
    print(f"fleet: {args.n} premises and {args.n} boards at once ({args.broker} broker): "
          f"{'all passed' if rc == 0 else 'FAILURES'} in {fleet:.1f} s")
    print(f"scenario library: {'all passed' if rc_lib == 0 else 'FAILURES'} in {lib:.1f} s wall time (8 at once)")
    return rc or rc_lib


if __name__ == "__main__":
    sys.exit(main())
