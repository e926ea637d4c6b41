"""Benchmark: companion verify rate (decode + COSE_Sign1 ES256 verify + schema), one core,
against the bare `cryptography` ECDSA verify rate measured in the same run.

Events are signed by the firmware under micropython (so the bytes are the real ones).

Usage: python tools/bench_verify.py [-n 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402

from companion.wire.cose import load_public_key, parse_sign1, verify_event  # noqa: E402
from hil import micropython, selfcheck  # noqa: E402


def rate(fn, items) -> float:
    t0 = time.perf_counter()
    for x in items:
        fn(x)
    return len(items) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--distinct", type=int, default=200, help="distinct signed events to cycle through")
    args = ap.parse_args(argv)
    res = micropython.run(f"N = {args.distinct}\n" + selfcheck.FIRMWARE_SIDE, mpy=True, timeout=600)
    pub, *lines = res.lines
    msgs = [bytes.fromhex(line.split()[1]) for line in lines]
    key = load_public_key(bytes.fromhex(pub))
    work = (msgs * (args.n // len(msgs) + 1))[: args.n]

    # The same signatures and signed bytes, prepared up front, for the bare verify.
    bare = []
    for m in msgs:
        s = parse_sign1(m)
        der = utils.encode_dss_signature(int.from_bytes(s.signature[:32], "big"),
                                         int.from_bytes(s.signature[32:], "big"))
        bare.append((der, s.to_be_signed()))
    bare_work = (bare * (args.n // len(bare) + 1))[: args.n]
    algo = ec.ECDSA(hashes.SHA256())

    verify_event(work[0], key)  # warm up
    bare_rate = rate(lambda x: key.verify(x[0], x[1], algo), bare_work)
    full_rate = rate(lambda m: verify_event(m, key), work)
    print(f"messages: {args.n} ({len(msgs[0])} B each, {len(msgs)} distinct, firmware-signed)")
    print(f"bare cryptography ECDSA P-256 verify:       {bare_rate:8.0f} /s")
    print(f"companion verify_event (CBOR+COSE+schema):  {full_rate:8.0f} /s "
          f"({100 * full_rate / bare_rate:.0f}% of bare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
