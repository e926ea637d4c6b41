"""Benchmark: event signing, and ack verification, on the MicroPython unix port, as a board
runs them.

Reports the median time to sign (ECDSA P-256 over the Sig_structure) and to build +
sign an event, and to check a bridge-signed ack (agent.ackcheck: parse, ECDSA verify,
bind to the device), with .mpy modules under `micropython -X heapsize=64k`, and the
smallest heaps (KiB, found by bisection) for each.

Usage: python tools/bench_sign.py [-n 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hil import micropython  # noqa: E402

CODE = """
import time, gc
from agent import cose, ecdsa, event
key = ecdsa.generate_key()
kid = b"\\x70\\xb3\\xd5\\xf1\\x00\\x00\\x00\\x01"
ev = {"id": event.new_id(), "type": "commission", "mpans": ["1312345678907"], "mprns": ["1234567890"],
      "job": "WO-2026-000123", "installer": "INST-0042", "time": 1795860000, "counter": 0,
      "firmware": "0.1.0",
      "evidence": {"read_time": 1795859990,
                   "hub": {"chf": "00-1B-C5-0C-00-00-00-01", "gpf": "00-1B-C5-0C-00-00-00-02",
                           "generation": "SMETS2", "version": "CHTS 1.0", "firmware": "3.2.1", "dcc": True},
                   "wan": {"connected": True, "signal": -71},
                   "devices": [{"eui": "00-1B-C5-0C-00-00-00-1%d" % i, "type": t, "status": "Commissioned",
                                "mpxn": m, "serial": "SER%d" % i, "firmware": "1.0"}
                               for i, (t, m) in enumerate((("ESME", "1312345678907"), ("GSME", "1234567890")))]}}
payload = event.build(ev)
tbs = cose.sig_structure(cose.protected_header(kid), payload)
ecdsa.sign(key, tbs)  # builds the base-point table once
for i in range(N):
    t0 = time.ticks_us()
    ecdsa.sign(key, tbs)
    t1 = time.ticks_us()
    ev["counter"] = i
    cose.sign1(event.build(ev), key, kid)
    t2 = time.ticks_us()
    print(time.ticks_diff(t1, t0), time.ticks_diff(t2, t1))
"""


VERIFY = """
import time
from agent import ackcheck
for i in range(N):
    t0 = time.ticks_us()
    ackcheck.check(MSG, KEYS, DEV)
    print(time.ticks_diff(time.ticks_us(), t0))
"""


def ack_setup() -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    from companion.wire.signing import Signer

    s = Signer(ec.generate_private_key(ec.SECP256R1()))
    dev = bytes.fromhex("70B3D5F100000001")
    return f"MSG = {s.ack(dev, bytes(16), 'stored')!r}\nKEYS = [{s.public!r}]\nDEV = {dev!r}\n"


def fits(kib: int) -> bool:
    micropython.run("N = 3\n" + CODE, heapsize=f"{kib}k", mpy=True)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200)
    args = ap.parse_args(argv)
    res = micropython.run(f"N = {args.n}\n" + CODE, heapsize="64k", mpy=True, timeout=600)
    rows = [tuple(map(int, line.split())) for line in res.lines]
    sign = statistics.median(r[0] for r in rows) / 1000
    whole = statistics.median(r[1] for r in rows) / 1000
    p95 = sorted(r[1] for r in rows)[int(len(rows) * 0.95) - 1] / 1000
    hi = micropython.smallest_heap(fits, 4, 64)
    if hi is None:
        print("does not fit in 64 KiB")
        return 1
    setup = ack_setup()
    res = micropython.run(f"N = {args.n}\n" + setup + VERIFY, heapsize="64k", mpy=True, timeout=600)
    verify = statistics.median(int(x) for x in res.lines) / 1000
    vhi = micropython.smallest_heap(
        lambda kib: bool(micropython.run("N = 2\n" + setup + VERIFY, heapsize=f"{kib}k", mpy=True)), 4, 64)
    print(f"events signed: {len(rows)} (.mpy modules, micropython -X heapsize=64k)")
    print(f"ECDSA P-256 sign (Sig_structure of a dual-fuel event): median {sign:.2f} ms")
    print(f"build + COSE_Sign1 of the event:                      median {whole:.2f} ms, p95 {p95:.2f} ms")
    print(f"smallest heap that builds and signs an event:         {hi} KiB")
    print(f"ack check (parse + ECDSA P-256 verify + binding):     median {verify:.2f} ms"
          f" ({verify / sign:.2f}x a sign); smallest heap {vhi} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
