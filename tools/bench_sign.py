"""Benchmark: event signing, and ack verification, on the MicroPython unix port, as a board
runs them.

Reports the median time to sign (ECDSA P-256 over the Sig_structure) and to build +
sign an event, and to check a bridge-signed ack (agent.ackcheck: parse, ECDSA verify,
bind to the device), with .mpy modules under `micropython -X heapsize=64k`, and the
smallest heaps (KiB, found by bisection) for each.

It also runs a naive reference signer, alternately with the firmware's in one interpreter
(the same load on both): affine coordinates with a modular inversion per point operation,
plain double-and-add from the top bit, RFC 6979 nonces. Both are deterministic, so each pair
must give the same signature; the ratio of their medians is the figure to watch.

Usage: python tools/bench_sign.py [-n 200] [--json FILE]
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


# The naive reference (never shipped): FIPS 186-4 P-256 in affine coordinates, one modular
# inversion (extended Euclid, the faster of the two on MicroPython) per addition or doubling,
# double-and-add over the bits of k from the top.
NAIVE = """
import hashlib, time
from agent import ecdsa
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
Q = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
     0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)

def inv(a, m):
    lm, hm, low, high = 1, 0, a % m, m
    while low > 1:
        r = high // low
        lm, low, hm, high = hm - lm * r, high - low * r, lm, low
    return lm % m

def add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        lam = 3 * (x1 * x1 - 1) * inv(2 * y1, P) % P
    else:
        lam = (y2 - y1) * inv(x2 - x1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P

def mul(k, pt):
    r = None
    for i in range(255, -1, -1):
        r = add(r, r)
        if k >> i & 1:
            r = add(r, pt)
    return r

def hmac(key, msg):
    k = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in k))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in k))
    outer.update(inner.digest())
    return outer.digest()

def naive_sign(x, msg):
    d = int.from_bytes(x, "big")
    h1 = hashlib.sha256(msg).digest()
    e = int.from_bytes(h1, "big")
    h = (e % Q).to_bytes(32, "big")
    V = b"\\x01" * 32
    K = bytes(32)
    K = hmac(K, V + b"\\x00" + x + h)
    V = hmac(K, V)
    K = hmac(K, V + b"\\x01" + x + h)
    V = hmac(K, V)
    while True:
        V = hmac(K, V)
        k = int.from_bytes(V, "big")
        if 0 < k < Q:
            r = mul(k, G)[0] % Q
            if r:
                s = inv(k, Q) * (e + r * d) % Q
                if s:
                    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        K = hmac(K, V + b"\\x00")
        V = hmac(K, V)

ecdsa.sign(KEY, MSG)
for i in range(N):
    m = MSG + bytes([i & 255])
    t0 = time.ticks_us()
    ours = ecdsa.sign(KEY, m)
    t1 = time.ticks_us()
    ref = naive_sign(KEY, m)
    t2 = time.ticks_us()
    if ours != ref:
        raise SystemExit("the signatures differ")
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
    ap.add_argument("--naive", type=int, default=20, help="signatures by each signer, alternated")
    ap.add_argument("--json", help="write the figures to this file as JSON")
    args = ap.parse_args(argv)
    import json
    import os

    key = os.urandom(32)
    res = micropython.run(f"N = {args.naive}\nKEY = {key!r}\nMSG = {os.urandom(200)!r}\n" + NAIVE,
                          heapsize="256k", mpy=True, timeout=1200)
    pairs = [tuple(map(int, line.split())) for line in res.lines]
    ours_ms = statistics.median(p[0] for p in pairs) / 1000
    naive_ms = statistics.median(p[1] for p in pairs) / 1000
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
    print(f"against the naive reference, {len(pairs)} signatures each, alternated, identical: "
          f"{ours_ms:.2f} ms against {naive_ms:.2f} ms: {ours_ms / naive_ms:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "sign_ms": round(sign, 2), "build_and_sign_ms": round(whole, 2), "sign_heap_kib": hi,
            "ack_check_ms": round(verify, 2), "ack_check_heap_kib": vhi, "naive_sign_ms": round(naive_ms, 2),
            "sign_over_naive": round(ours_ms / naive_ms, 3)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
