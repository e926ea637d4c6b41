"""Benchmark: events per second through the whole bridge (broker -> verify -> durable
commit -> derive -> outbox -> signed ack), and ack latency p50/p99 at a steady rate, in two
set-ups measured in one run:

- `plain`: the bridge's own broker with --insecure (plain TCP, identities by password): the
  transport the project ran before the trust boundary, less its anonymous access;
- `secured`: the shipped set-up, TLS with client certificates and the ACL.

Both sign every ack (COSE_Sign1, ES256); the bare rates of `cryptography` ECDSA verify
and of the bridge's ack signing are measured in the same run for scale. Every event is for
a new meter point, so each one stores an event, derives a flag and writes an outbox row.

Usage: python tools/bench_bridge.py [-n 3000] [--rate 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# One simulated handheld here stands for a fleet: the bridge's per-handheld rate limit
# (device_rate, a flood guard) is lifted for the benchmark's bridges, which inherit this.
os.environ.setdefault("FLAGWISE_DEVICE_RATE", "100000")
os.environ.setdefault("FLAGWISE_DEVICE_BURST", "1000000")
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402

from companion.wire.signing import Signer  # noqa: E402
from companion.wire.cose import load_public_key, parse_sign1  # noqa: E402
from tests.bridge_support import (DEVICE_ID, MV, PUBLIC_KEY, BridgeProcess, Handheld,  # noqa: E402
                                  evidence, make_event)


def events(n: int, start: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        mpan = MV.mpan_check(f"{2 + (start + i) // 10**11 % 7}{(start + i) % 10**11:011d}")
        out.append(make_event("commission", 1793491200 + i, start + i, mpans=[mpan],
                              ev=evidence([("ESME", mpan, "Commissioned")])))
    return out


def paced_latencies(hh: Handheld, client, msgs: list[tuple[str, bytes]], rate: float,
                    timeout: float) -> list[float]:
    """Publish msgs at a steady rate (per second); -> each one's ack latency in ms, sorted."""
    sent: dict[str, float] = {}
    t1 = time.perf_counter()
    for i, (eid, m) in enumerate(msgs):
        delay = t1 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent[eid] = time.perf_counter()
        client.publish(f"flagwise/events/{DEVICE_ID}", m, qos=1)
    hh.wait(lambda h: all(e in h.ack_times for e in sent), timeout=timeout, what="steady acks")
    return sorted((hh.ack_times[e] - sent[e]) * 1000 for e in sent)


def bare_verify_rate(msgs: list[bytes]) -> float:
    key = load_public_key(bytes.fromhex(PUBLIC_KEY))
    prepared = []
    for m in msgs:
        s = parse_sign1(m)
        der = utils.encode_dss_signature(int.from_bytes(s.signature[:32], "big"),
                                         int.from_bytes(s.signature[32:], "big"))
        prepared.append((der, s.to_be_signed()))
    algo = ec.ECDSA(hashes.SHA256())
    t0 = time.perf_counter()
    for der, data in prepared:
        key.verify(der, data, algo)
    return len(prepared) / (time.perf_counter() - t0)


def bare_sign_rate(n: int = 2000) -> float:
    s = Signer(ec.generate_private_key(ec.SECP256R1()))
    dev, eid = bytes(8), bytes(16)
    t0 = time.perf_counter()
    for _ in range(n):
        s.ack(dev, eid, "stored")
    return n / (time.perf_counter() - t0)


def run(work: Path, insecure: bool, n: int, rate: float, seconds: float, start: int) -> tuple[float, list[float]]:
    extra = ("--insecure",) if insecure else ()
    bridge = BridgeProcess(work, None, *extra, http="off")
    assert bridge.companion("keys", "add", DEVICE_ID, PUBLIC_KEY).returncode == 0
    bridge.start()
    hh = Handheld(bridge.broker, bridge.pki, insecure=insecure)
    try:
        burst = events(n, start)
        hh.send(burst[0][1])  # waits until the broker lets this handheld publish
        c, _ = hh.publisher(DEVICE_ID)
        t0 = time.perf_counter()
        for _, m in burst[1:]:
            c.publish(f"flagwise/events/{DEVICE_ID}", m, qos=1)
        hh.wait(lambda h: all(e in h.acks for e, _ in burst), timeout=600, what="all acks")
        elapsed = time.perf_counter() - t0
        lat = paced_latencies(hh, c, events(int(rate * seconds), start + n), rate, timeout=120)
    finally:
        hh.close()
        bridge.stop()
    return (n - 1) / elapsed, lat


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args(argv)
    bare = bare_verify_rate([m for _, m in events(2000, 10**9)])
    signing = bare_sign_rate()
    results = {}
    for i, mode in enumerate(("plain", "secured")):
        with tempfile.TemporaryDirectory() as tmp:
            results[mode] = run(Path(tmp), mode == "plain", args.n, args.rate, args.seconds, i * 10**6)
    print(f"bare cryptography ECDSA P-256 verify (same run): {bare:8.0f} /s;"
          f" bridge ack signing (COSE_Sign1, RFC 6979): {signing:8.0f} /s")
    for mode, (rate, lat) in results.items():
        print(f"{mode:8} burst of {args.n} events: {rate:6.0f} events/s ({100 * rate / bare:.0f}% of bare verify); "
              f"ack latency at {args.rate:.0f}/s: p50 {statistics.median(lat):.1f} ms, "
              f"p99 {lat[int(len(lat) * 0.99) - 1]:.1f} ms, max {lat[-1]:.1f} ms")
    p, s = results["plain"][0], results["secured"][0]
    print(f"secured / plain throughput: {s / p:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
