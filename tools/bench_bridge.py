"""Benchmark: events per second through the whole bridge (mosquitto -> verify -> durable
commit -> derive -> outbox -> ack), against the bare `cryptography` ECDSA verify rate
measured in the same run; and ack latency p50/p99 at a steady 100 events/s.

Starts mosquitto (free loopback port) and `companion bridge` as a process with a SQLite
store (WAL, synchronous=FULL). Every event is for a new meter point, so each one stores
an event, derives a flag, and writes an outbox row.

Usage: python tools/bench_bridge.py [-n 5000] [--rate 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402

from companion.wire import load_public_key, parse_sign1  # noqa: E402
from tests.bridge_support import (DEVICE_ID, MV, PUBLIC_KEY, BridgeProcess, Handheld, Mosquitto,  # noqa: E402
                                  evidence, make_event)


def events(n: int, start: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        mpan = MV.mpan_check(f"{2 + (start + i) // 10**11 % 7}{(start + i) % 10**11:011d}")
        out.append(make_event("commission", 1793491200 + i, start + i, mpans=[mpan],
                              ev=evidence([("ESME", mpan, "Commissioned")])))
    return out


def bare_verify_rate(msgs: list[bytes]) -> float:
    key = load_public_key(bytes.fromhex(PUBLIC_KEY))
    prepared = []
    for m in msgs:
        s = parse_sign1(m)
        der = utils.encode_dss_signature(int.from_bytes(s.signature[:32], "big"), int.from_bytes(s.signature[32:], "big"))
        prepared.append((der, s.to_be_signed()))
    algo = ec.ECDSA(hashes.SHA256())
    t0 = time.perf_counter()
    for der, data in prepared:
        key.verify(der, data, algo)
    return len(prepared) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = Mosquitto(work).start()
        bridge = BridgeProcess(work, broker.url, http="off")
        assert bridge.companion("keys", "add", DEVICE_ID, PUBLIC_KEY).returncode == 0
        bridge.start()
        hh = Handheld(broker.url)
        try:
            burst = events(args.n, 0)
            bare = bare_verify_rate([m for _, m in burst[:2000]])
            t0 = time.perf_counter()
            for _, m in burst:
                hh.send(m)
            hh.wait(lambda h: len(h.acks) >= args.n, timeout=600, what="all acks")
            elapsed = time.perf_counter() - t0
            rate = args.n / elapsed

            steady = events(int(args.rate * args.seconds), args.n)
            sent: dict[str, float] = {}
            got: dict[str, float] = {}
            orig = hh._on_message

            def on_message(client, userdata, m, orig=orig):
                orig(client, userdata, m)
                if "/acks/" in m.topic:
                    import cbor2
                    got.setdefault(cbor2.loads(m.payload)[0].hex(), time.perf_counter())

            hh.c.on_message = on_message
            start = time.perf_counter()
            for i, (eid, m) in enumerate(steady):
                target = start + i / args.rate
                delay = target - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                sent[eid] = time.perf_counter()
                hh.send(m)
            hh.wait(lambda h: all(e in got for e in sent), timeout=120, what="steady acks")
            lat = sorted((got[e] - sent[e]) * 1000 for e in sent)
        finally:
            hh.close()
            bridge.stop()
            broker.stop()
    print(f"bare cryptography ECDSA P-256 verify (same run): {bare:8.0f} /s")
    print(f"whole bridge, burst of {args.n} events (each a new meter point, durable commits): "
          f"{rate:8.0f} events/s ({100 * rate / bare:.0f}% of bare verify)")
    print(f"ack latency at a steady {args.rate:.0f} events/s for {args.seconds:.0f} s: "
          f"p50 {statistics.median(lat):.1f} ms, p99 {lat[int(len(lat) * 0.99) - 1]:.1f} ms, max {lat[-1]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
