"""Benchmark: the bridge's CPU per event, in process, against the cost of its cryptography.

N signed events (one handheld, each for a new meter point) are replayed through the bridge's own
ingest (`Ingestor.handle_batch`, batches of 200, a SQLite store), then each outcome's ack is
signed and each flag update the batch queued is signed, as the bridge's workers do; the process
CPU per event is compared with the same run's cost of what no bridge can skip: verifying one
event and signing one ack and one flag update with `cryptography`.

It leaves out the broker and paho (tools/bench_scale.py measures the whole bridge); --profile
prints where the ingest's time goes (cProfile).

Usage: python tools/bench_ingest.py [-n 4000] [--profile] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("FLAGWISE_DEVICE_RATE", "100000")
os.environ.setdefault("FLAGWISE_DEVICE_BURST", "1000000")


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def make_events(n: int) -> list[tuple[str, bytes]]:
    from tests.bridge_support import DEVICE_ID, MV, evidence, make_event

    out = []
    for i in range(n):
        mpan = MV.mpan_check(f"{2 + i // 10**11 % 7}{i % 10**11:011d}")
        _, message = make_event("commission", 1793491200 + i, i + 1, mpans=[mpan],
                                ev=evidence([("ESME", mpan, "Commissioned")]))
        out.append((f"flagwise/events/{DEVICE_ID}", message))
    return out


def crypto_floor(messages: list[tuple[str, bytes]]) -> float:
    """CPU seconds an event to verify (the event's ECDSA) + sign an ack + sign a flag update."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    from companion.wire.cose import load_public_key, parse_sign1
    from tests.bridge_support import PUBLIC_KEY

    key = load_public_key(bytes.fromhex(PUBLIC_KEY))
    parsed = [parse_sign1(m, 1 << 16) for _, m in messages[:500]]
    private = ec.generate_private_key(ec.SECP256R1())
    t0 = cpu()
    for p in parsed:
        r, s = int.from_bytes(p.signature[:32], "big"), int.from_bytes(p.signature[32:], "big")
        key.verify(utils.encode_dss_signature(r, s), p.to_be_signed(), ec.ECDSA(hashes.SHA256()))
        private.sign(p.payload[:100], ec.ECDSA(hashes.SHA256()))
        private.sign(p.payload[:120], ec.ECDSA(hashes.SHA256()))
    return (cpu() - t0) / len(parsed)


def replay(messages: list[tuple[str, bytes]], profile: bool) -> tuple[float, float, dict[str, int]]:
    """(CPU s a event in this process, wall s a event, outcome counts) for one replay into a new store."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from companion.config import Config
    from companion.service.ingest import Incoming, Ingestor
    from companion.store.core import Store
    from companion.wire.signing import Signer
    from tests.bridge_support import DEVICE_ID, PUBLIC_KEY

    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db")
        store = Store(db, upgrade=True)
        store.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
        ing = Ingestor(store, Config(db=db).check())
        signer = Signer(ec.generate_private_key(ec.SECP256R1()))
        counts: dict[str, int] = {}
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        t0, w0 = cpu(), time.perf_counter()
        for i in range(0, len(messages), 200):
            batch = [Incoming(t, m, time.time()) for t, m in messages[i:i + 200]]
            for o in ing.handle_batch(batch):
                counts[o.status] = counts.get(o.status, 0) + 1
                dev = bytes.fromhex((o.device_id or DEVICE_ID).replace("-", ""))
                signer.ack(dev, bytes.fromhex(o.event_id) if o.event_id else None, o.status, flags=o.flags)
            rows = store.pending_mqtt()
            for _, mpxn, body in rows:
                signer.flag(json.loads(body))
            store.mark_mqtt_done([seq for seq, _, _ in rows])
        used, wall = cpu() - t0, time.perf_counter() - w0
        if prof is not None:
            import pstats

            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        store.close()
    return used / len(messages), wall / len(messages), counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=4000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    messages = make_events(args.n)
    floor = crypto_floor(messages)
    per, wall, counts = replay(messages, args.profile)
    print(f"the ingest, then an ack and the flag updates signed: {per * 1000:.3f} ms CPU an event "
          f"({per / floor:.2f}x its cryptography), {wall * 1000:.3f} ms wall, {1 / wall:,.0f} events/s; {counts}")
    print(f"the cryptography alone (verify the event, sign an ack and a flag update): {floor * 1000:.3f} ms CPU")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "crypto_ms_per_event": round(floor * 1000, 3), "cpu_ms_per_event": round(per * 1000, 3),
            "over_crypto": round(per / floor, 2), "events_per_s": round(1 / wall), "outcomes": counts},
            indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
