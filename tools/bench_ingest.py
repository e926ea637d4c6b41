"""Benchmark: the bridge's CPU per event, in process, against the cost of its cryptography.

N signed events (one handheld, each for a new meter point) are replayed through the bridge's own
ingest (`Ingestor.start` and `finish`, batches of 200, pipelined as its ingest worker does; a
SQLite store), then each outcome's ack is
signed and each flag update the batch queued is signed, as the bridge's workers do; the process
CPU per event is compared with the same run's cost of what no bridge can skip: verifying one
event and signing one ack and one flag update with `cryptography`.

It leaves out the broker and paho (tools/bench_scale.py measures the whole bridge); --profile
prints where the ingest's time goes (cProfile).

--workers 0,1,2 replays the same events once for each size of verify pool (verify_workers;
companion/service/verify_pool.py), and reports for each the events/s, the ingest process's CPU
and its workers' CPU an event: where the limit moves when the signatures leave the process.

Usage: python tools/bench_ingest.py [-n 4000] [--workers 0] [--profile] [--json FILE]
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
    # The process's CPU clock, every thread, to the nanosecond (os.times counts 10 ms ticks:
    # a tenth of the floor's whole measurement).
    return time.process_time()


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
    # The bridge signs with RFC 6979 nonces (companion/wire/signing.py), so the floor does too.
    signing = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    runs = []
    for _ in range(3):  # the median of three: this machine's speed wanders
        t0 = cpu()
        for p in parsed:
            r, s = int.from_bytes(p.signature[:32], "big"), int.from_bytes(p.signature[32:], "big")
            key.verify(utils.encode_dss_signature(r, s), p.to_be_signed(), ec.ECDSA(hashes.SHA256()))
            private.sign(p.payload[:100], signing)
            private.sign(p.payload[:120], signing)
        runs.append((cpu() - t0) / len(parsed))
    return sorted(runs)[1]


def workers_cpu(pids: list[int]) -> float:
    """CPU seconds the verify pool's workers have used so far (/proc/PID/stat: utime, stime)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def replay(messages: list[tuple[str, bytes]], profile: bool, workers: int = 0) -> dict[str, float]:
    """One replay into a new store: CPU s an event in this process and in the verify pool's
    workers, wall s an event, and the outcome counts."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from companion.config import Config
    from companion.service.ingest import Incoming, Ingestor
    from companion.service.verify_pool import VerifyPool
    from companion.store.core import Store
    from companion.wire.signing import Signer
    from tests.bridge_support import DEVICE_ID, PUBLIC_KEY

    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db")
        store = Store(db, upgrade=True)
        store.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
        pool = VerifyPool(workers)
        ing = Ingestor(store, Config(db=db).check(), pool)
        signer = Signer(ec.generate_private_key(ec.SECP256R1()))
        counts: dict[str, int] = {}
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        pids = pool.pids()  # started already: their start-up is not counted
        c0, t0, w0 = workers_cpu(pids), cpu(), time.perf_counter()
        # As the bridge's ingest worker does: the next batch's signatures set going (on the
        # pool's workers) before this one is stored and answered.
        batches = [messages[i:i + 200] for i in range(0, len(messages), 200)]
        started = ing.start([Incoming(t, m, time.time()) for t, m in batches[0]])
        for i in range(len(batches)):
            after = ing.start([Incoming(t, m, time.time()) for t, m in batches[i + 1]]) \
                if i + 1 < len(batches) else None
            done, started = ing.finish(started), after
            for o in done:
                counts[o.status] = counts.get(o.status, 0) + 1
                dev = bytes.fromhex((o.device_id or DEVICE_ID).replace("-", ""))
                signer.ack(dev, bytes.fromhex(o.event_id) if o.event_id else None, o.status, flags=o.flags)
            rows = store.pending_mqtt()
            for _, mpxn, body in rows:
                signer.flag(json.loads(body))
            store.mark_mqtt_done([seq for seq, _, _ in rows])
        used, wall, spent = cpu() - t0, time.perf_counter() - w0, workers_cpu(pids) - c0
        pool.close()
        if prof is not None:
            import pstats

            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        store.close()
    n = len(messages)
    return {"cpu": used / n, "workers_cpu": spent / n, "wall": wall / n, **counts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=4000)
    ap.add_argument("--workers", default="0", help="verify pool sizes to replay with, e.g. 0,1,2")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    try:
        sizes = [int(w) for w in args.workers.split(",")]
        if any(not 0 <= w <= 64 for w in sizes):
            raise ValueError
    except ValueError:
        print(f"bench_ingest: --workers takes pool sizes 0..64 separated by commas, not {args.workers[:40]!r}",
              file=sys.stderr)
        return 2
    messages = make_events(args.n)
    runs = []
    for workers in sizes:
        # The floor measured again beside each run: this machine's speed wanders over a minute.
        floor = crypto_floor(messages)
        print(f"the cryptography alone (verify the event, sign an ack and a flag update): {floor * 1000:.3f} ms CPU")
        r = replay(messages, args.profile, workers)
        total = r["cpu"] + r["workers_cpu"]
        outcomes = {k: int(v) for k, v in r.items() if k not in ("cpu", "workers_cpu", "wall")}
        print(f"verify_workers={workers}: {1 / r['wall']:,.0f} events/s; CPU an event {total * 1000:.3f} ms "
              f"({total / floor:.2f}x its cryptography): the ingest's process {r['cpu'] * 1000:.3f} ms, "
              f"its workers {r['workers_cpu'] * 1000:.3f} ms; {outcomes}")
        runs.append({"verify_workers": workers, "crypto_ms_per_event": round(floor * 1000, 3),
                     "events_per_s": round(1 / r["wall"]),
                     "cpu_ms_per_event": round(total * 1000, 3), "over_crypto": round(total / floor, 2),
                     "process_cpu_ms_per_event": round(r["cpu"] * 1000, 3),
                     "workers_cpu_ms_per_event": round(r["workers_cpu"] * 1000, 3), "outcomes": outcomes})
    if args.json:
        first = runs[0]
        Path(args.json).write_text(json.dumps({
            "crypto_ms_per_event": first["crypto_ms_per_event"], "cpu_ms_per_event": first["cpu_ms_per_event"],
            "over_crypto": first["over_crypto"], "events_per_s": first["events_per_s"],
            "outcomes": first["outcomes"], "runs": runs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
