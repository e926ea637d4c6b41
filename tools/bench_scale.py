"""Benchmark: the bridge as a service, measured in one run on the secured mosquitto (TLS,
client certificates, ACL):

- the transport ceiling: paho -> mosquitto -> paho, QoS 1, the same messages, one subscriber;
- events/s through 1 bridge on SQLite, and 1, 2 and 3 replicas on PostgreSQL sharing the
  ingest through an MQTT 5 shared subscription (each event a new meter point: a durable
  commit, a flag, an outbox row and a signed ack), as a ratio of the ceiling;
- ack latency p50/p99 at a steady 100 events/s (PostgreSQL, one replica), and on a hot
  meter point: 3,000 events already stored for one MPAN, then more for it at 100/s.

Usage: python tools/bench_scale.py [-n 3000] [--rate 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# One simulated handheld here stands for a fleet: the bridge's per-handheld rate limit
# (device_rate, a flood guard) is lifted for the benchmark's bridges, which inherit this.
os.environ.setdefault("FLAGWISE_DEVICE_RATE", "100000")
os.environ.setdefault("FLAGWISE_DEVICE_BURST", "1000000")
from hil.services import Mosquitto, Postgres, identity_files, mqtt_client  # noqa: E402
from tools.bench_bridge import paced_latencies  # noqa: E402
from tests.bridge_support import (DEVICE_ID, MV, PUBLIC_KEY, BridgeProcess, Handheld,  # noqa: E402
                                  evidence, make_event)

T0 = 1793491200


def fresh_points(n: int, start: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        mpan = MV.mpan_check(f"{2 + (start + i) // 10**11 % 7}{(start + i) % 10**11:011d}")
        out.append(make_event("commission", T0 + i, start + i, mpans=[mpan],
                              ev=evidence([("ESME", mpan, "Commissioned")])))
    return out


def hot_point(n: int, start: int) -> list[tuple[str, bytes]]:
    """n events for one MPAN, alternating I and A so that every other one changes the flag."""
    mpan = MV.mpan_check("199999999999")
    return [make_event("commission", T0 + start + i, start + i, mpans=[mpan],
                       ev=evidence([("ESME", mpan, "Commissioned" if i % 2 else "InstalledNotCommissioned")]))
            for i in range(n)]


def ceiling(broker: Mosquitto, msgs: list[bytes]) -> float:
    got = threading.Event()
    count = [0]

    def on_message(c, u, m) -> None:
        count[0] += 1
        if count[0] == len(msgs):
            got.set()

    sub = mqtt_client(broker.pki, "bench-ceiling", "auditor")
    sub.on_message = on_message
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    sub.subscribe("flagwise/events/+", qos=1)
    subscribed.wait(10)
    hh = Handheld(broker.url, broker.pki, name="bench-watch")
    try:
        hh.send(msgs[0])  # waits until the broker lets this handheld publish
        pub, _ = hh.publisher(DEVICE_ID)
        t0 = time.perf_counter()
        for m in msgs[1:]:
            pub.publish(f"flagwise/events/{DEVICE_ID}", m, qos=1)
        if not got.wait(60):
            raise RuntimeError(f"the ceiling run lost messages: {count[0]} of {len(msgs)}")
        return (len(msgs) - 1) / (time.perf_counter() - t0)
    finally:
        hh.close()
        sub.disconnect()
        sub.loop_stop()


GROUPS = ("bridge", "mosquitto", "postgres", "bench")  # the bench: the load generator and the watcher


def cpu_by_group() -> dict[str, float]:
    """CPU seconds used so far by each group of this machine's processes (by their names)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = dict.fromkeys(GROUPS, 0.0)
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        used = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        group = ("bench" if int(pid) == me else "bridge" if comm == "companion" else
                 "mosquitto" if comm == "mosquitto" else "postgres" if comm.startswith("postgres") else None)
        if group:
            out[group] += used
    return out


CPU: dict[str, dict[str, float]] = {}  # run label -> group -> share of the machine during its burst


def burst(broker: Mosquitto, msgs: list[tuple[str, bytes]], label: str = "") -> float:
    hh = Handheld(broker.url, broker.pki, name="bench-watch")
    try:
        hh.send(msgs[0][1])
        hh.wait(lambda h: msgs[0][0] in h.acks, timeout=60, what="first ack")
        c, _ = hh.publisher(DEVICE_ID)
        cpu0 = cpu_by_group()
        t0 = time.perf_counter()
        for _, m in msgs[1:]:
            c.publish(f"flagwise/events/{DEVICE_ID}", m, qos=1)
        hh.wait(lambda h: all(e in h.acks for e, _ in msgs), timeout=900, what="all acks")
        wall = time.perf_counter() - t0
        cpu1 = cpu_by_group()
        if label:
            cores = os.cpu_count() or 1
            CPU[label] = {g: (cpu1[g] - cpu0[g]) / (wall * cores) for g in GROUPS}
        return (len(msgs) - 1) / wall
    finally:
        hh.close()


def steady(broker: Mosquitto, msgs: list[tuple[str, bytes]], rate: float) -> list[float]:
    hh = Handheld(broker.url, broker.pki, name="bench-watch")
    try:
        c, _ = hh.publisher(DEVICE_ID)
        hh.send(msgs[0][1])
        hh.wait(lambda h: msgs[0][0] in h.acks, timeout=60, what="first ack")
        return paced_latencies(hh, c, msgs[1:], rate, timeout=300)
    finally:
        hh.close()


def replicas(work: Path, broker: Mosquitto, db: str | None, n: int) -> list[BridgeProcess]:
    out = []
    for i in range(n):
        (work / f"r{i}").mkdir(parents=True)
        extra = ("--share-group", "bench", "--name", f"bench-r{i}") if n > 1 or db else ()
        b = BridgeProcess(work / f"r{i}", broker.url, *extra, http="off", pki=broker.pki.root, db=db)
        if i == 0:
            assert b.companion("keys", "add", DEVICE_ID, PUBLIC_KEY).returncode == 0
        out.append(b.start())
    return out


def pct(lat: list[float], p: float) -> float:
    return lat[max(0, int(len(lat) * p) - 1)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args(argv)
    pg = Postgres().start()
    rows: list[tuple[str, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            first = Mosquitto(work / "broker-0")
            # Every identity is issued before any broker starts: a broker learns of a new one
            # only when it reloads its ACL, and a message it may not deliver is dropped unseen.
            for name, role in (("bridge", "bridge"), ("bench-watch", "auditor"), ("bench-ceiling", "auditor"),
                               (DEVICE_ID, "handheld"), ("bench-r0", "bridge"), ("bench-r1", "bridge"),
                               ("bench-r2", "bridge")):
                identity_files(first.pki, name, role)
            runs = [("SQLite, 1 bridge", None, 1), ("PostgreSQL, 1 replica", "pg", 1),
                    ("PostgreSQL, 2 replicas", "pg", 2), ("PostgreSQL, 3 replicas", "pg", 3)]
            start = 10**6
            # A broker of its own for each run (the same configuration and PKI): a run's
            # persistent sessions never take a share of the next run's messages.
            for k, (label, db, n) in enumerate(runs, 1):
                broker = Mosquitto(work / f"broker-{k}", pki=first.pki).start()
                url = pg.new_database("bench") if db else None
                bs = replicas(work / f"run-{k}", broker, url, n)
                try:
                    rows.append((label, burst(broker, fresh_points(args.n, start), label)))
                except TimeoutError:
                    print(f"{label}: {bs[0].log.read_text()[-1500:]}", file=sys.stderr)
                    raise
                finally:
                    for b in bs:
                        b.stop()
                    broker.stop()
                start += 10**6
            broker = Mosquitto(work / "broker-latency", pki=first.pki).start()
            bs = replicas(work / "latency", broker, pg.new_database("latency"), 1)
            try:
                lat = steady(broker, fresh_points(int(args.rate * args.seconds) + 1, start), args.rate)
                burst(broker, hot_point(3000, 0))
                hot = steady(broker, hot_point(int(args.rate * args.seconds) + 1, 3000), args.rate)
            finally:
                for b in bs:
                    b.stop()
                broker.stop()
            broker = Mosquitto(work / "broker-ceiling", pki=first.pki).start()
            try:
                top = ceiling(broker, [m for _, m in fresh_points(args.n, 9 * 10**6)])
            finally:
                broker.stop()
    finally:
        pg.stop()
    print(f"transport ceiling (paho -> mosquitto TLS -> paho, QoS 1, {args.n} event-sized messages): {top:7.0f} msg/s")
    for label, rate in rows:
        use = CPU.get(label, {})
        busy = sum(use.values())
        print(f"{label:24} {rate:7.0f} events/s  ({100 * rate / top:3.0f}% of the ceiling); CPU of the "
              f"{os.cpu_count()} cores: " + ", ".join(f"{g} {100 * use.get(g, 0):.0f}%" for g in GROUPS)
              + f" (all {100 * busy:.0f}%)")
    print(f"ack latency at {args.rate:.0f}/s (PostgreSQL, 1 replica): p50 {statistics.median(lat):.1f} ms, "
          f"p99 {pct(lat, 0.99):.1f} ms")
    print(f"ack latency at {args.rate:.0f}/s on a meter point with 3,000+ events: p50 {statistics.median(hot):.1f} ms, "
          f"p99 {pct(hot, 0.99):.1f} ms, max {hot[-1]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
