"""Real parts for bridge tests: mosquitto on a free loopback port, the bridge as a
process (`companion bridge`), a handheld-like MQTT client, and signed events built with
the vector generator's independent encoder (tools/make_vectors.py)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cbor2
import paho.mqtt.client as mqtt

from companion.errors import CompanionError
from companion.service.pki import Pki
from companion.wire.signing import KeyRing, UntrustedError, verify_bridge_message
from hil.services import (BridgeProcess, Mosquitto, broker_host_port, free_port,  # noqa: F401  (re-exported)
                          mqtt_client, wait_port)

from .support import load_tool

MV = load_tool("make_vectors")
DEVICE_KEY = MV.DEVICE_KEY
DEVICE_ID = MV.DEVICE_ID
PUBLIC_KEY = MV.public_hex(DEVICE_KEY)
BIN = Path(sys.executable).parent


class Handheld:
    """Stands in for handhelds on the secured broker: an auditor connection that collects
    events, acks, rejections and flag updates (acks and flags verified with the bridge's
    published keys; anything that does not verify lands in `unverified`), and one
    connection per device id, with that device's own certificate, to publish events."""

    def __init__(self, broker_url: str, pki: Pki, prefix: str = "flagwise", name: str | None = None,
                 insecure: bool = False):
        self.host, self.port = broker_host_port(broker_url)
        self.pki = pki
        self.prefix = prefix
        self.acks: dict[str, str] = {}  # event id hex -> outcome (last)
        self.ack_count: dict[str, int] = {}
        self.rejected: list[dict] = []
        self.flags: dict[str, list[dict]] = {}
        self.events: list[tuple[str, bytes]] = []  # (topic, payload) as published by handhelds
        self.unverified: list[tuple[str, str]] = []  # (topic, why)
        self.ack_times: dict[str, float] = {}  # event id hex -> perf_counter() of its first ack
        self.insecure = insecure
        self.lock = threading.Lock()
        self._ring: KeyRing | None = None
        self._publishers: dict[str, tuple[mqtt.Client, dict]] = {}
        self.c = mqtt_client(pki, name or f"watch-{free_port()}", "auditor", insecure=insecure)
        self.c.on_message = self._on_message
        subscribed = threading.Event()
        self.c.on_connect = lambda c, *a: c.subscribe(f"{prefix}/#", qos=1)
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.max_inflight_messages_set(1000)
        self.c.connect(self.host, self.port)
        self.c.loop_start()
        if not subscribed.wait(10):
            raise TimeoutError("the watching client did not get its SUBACK")

    def ring(self, refresh: bool = False) -> KeyRing | None:
        if self._ring is None or refresh:
            keys = self.pki.bridge_public_keys()
            self._ring = KeyRing.of(keys) if keys else None
        return self._ring

    def _verified(self, topic: str, payload: bytes) -> bytes | None:
        for refresh in (False, True):
            ring = self.ring(refresh)
            if ring is None:
                continue
            try:
                return verify_bridge_message(payload, ring)[0]
            except UntrustedError:
                continue
            except CompanionError as exc:
                self.unverified.append((topic, str(exc)[:80]))
                return None
        self.unverified.append((topic, "no bridge key verifies it"))
        return None

    def _on_message(self, client, userdata, m) -> None:
        parts = m.topic.split("/")
        kind = parts[1] if len(parts) > 1 else ""
        payload = bytes(m.payload)
        if kind == "events":
            with self.lock:
                self.events.append((m.topic, payload))
            return
        if kind not in ("acks", "rejected", "flags"):
            return
        body = self._verified(m.topic, payload)
        if body is None:
            return
        with self.lock:
            if kind == "flags":
                flag = json.loads(body)
                self.flags.setdefault(flag["mpxn"], []).append(flag)
                return
            a = cbor2.loads(body)
            eid = a[2].hex() if 2 in a else None
            if kind == "acks":
                self.ack_times.setdefault(eid, time.perf_counter())
                self.acks[eid] = a[3]
                self.ack_count[eid] = self.ack_count.get(eid, 0) + 1
            else:
                self.rejected.append({"reason": a.get(4), "detail": a.get(5), "event_id": eid,
                                      "device": parts[-1]})

    def publisher(self, name: str, role: str = "handheld") -> tuple[mqtt.Client, dict]:
        if name not in self._publishers:
            c = mqtt_client(self.pki, name, role, insecure=self.insecure)
            acked: dict[int, int] = {}
            c.on_publish = lambda cl, u, mid, rc, props: acked.__setitem__(mid, rc.value)
            c.max_inflight_messages_set(1000)
            c.connect(self.host, self.port)
            c.loop_start()
            self._publishers[name] = (c, acked)
        return self._publishers[name]

    def publish_as(self, name: str, role: str, topic: str, payload: bytes, retain: bool = False,
                   timeout: float = 10) -> int:
        """Publish with that identity; the PUBACK's reason code (135: not authorised)."""
        c, acked = self.publisher(name, role)
        info = c.publish(topic, payload, qos=1, retain=retain)
        end = time.monotonic() + timeout
        while info.mid not in acked:
            if time.monotonic() > end:
                raise TimeoutError(f"no PUBACK for {name} on {topic}")
            time.sleep(0.01)
        return acked.pop(info.mid)

    def send(self, message: bytes, device_id: str = DEVICE_ID) -> None:
        """Publish an event as that handheld would. A certificate issued a moment ago takes
        effect when the broker has reloaded its ACL: until then the broker says 135."""
        end = time.monotonic() + 10
        while self.publish_as(device_id, "handheld", f"{self.prefix}/events/{device_id}", message) == 135:
            if time.monotonic() > end:
                raise TimeoutError(f"the broker does not let {device_id} publish its events")
            time.sleep(0.1)

    def resend_until_acked(self, pending: dict[str, bytes], timeout: float, every: float) -> list[str]:
        """Send again, every `every` seconds, each event of `pending` (id -> message) not yet
        acked, as the firmware does after its ack timeout, until all are acked or `timeout`
        has passed; -> the ids never acked."""
        end = time.monotonic() + timeout
        while True:
            with self.lock:
                missing = [e for e in pending if e not in self.acks]
            if not missing or time.monotonic() > end:
                return missing
            for e in missing:
                self.send(pending[e])
            time.sleep(every)

    def wait(self, cond, timeout: float = 20, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if cond(self):
                    return
            time.sleep(0.02)
        raise TimeoutError(f"timed out waiting for {what}")

    def close(self) -> None:
        for c, _ in [(self.c, None), *self._publishers.values()]:
            c.loop_stop()
            c.disconnect()


def evidence(meters=(("ESME", MV.MPAN, "Commissioned"),), wan=True, hub=True, generation="SMETS2",
             dcc=True, answered=True) -> dict:
    if not hub:
        return {"read_time": 0, "hub": None, "wan": None, "devices": []}
    devices = [{"eui": f"00-1B-C5-0C-00-00-00-{0x10 + i:02X}", "type": t, "status": s, "mpxn": m,
                "answered": answered} for i, (t, m, s) in enumerate(meters)]
    h = {"chf": "00-1B-C5-0C-00-00-00-01", "gpf": "00-1B-C5-0C-00-00-00-02", "generation": generation, "dcc": dcc}
    return {"read_time": 0, "hub": h, "wan": {"connected": wan}, "devices": devices}


def make_event(etype: str, read_time: int, counter: int, *, ev: dict | None = None,
               mpans=(MV.MPAN,), mprns=(), key: str = DEVICE_KEY, kid_device: str = DEVICE_ID,
               event_id: bytes | None = None, override: dict | None = None,
               made_at: int | None = None) -> tuple[str, bytes]:
    """(event id hex, signed COSE_Sign1 message)."""
    e = copy.deepcopy(ev if ev is not None else evidence())
    e["read_time"] = read_time
    eid = event_id or os.urandom(16)
    named = {"id": {"$bytes": eid.hex()}, "type": etype, "mpans": list(mpans), "mprns": list(mprns),
             "job": f"J{counter}", "installer": "INST-1", "time": read_time + 5 if made_at is None else made_at,
             "counter": counter,
             "firmware": "0.1.0", "evidence": e}
    if override:
        named["override"] = override
    payload = cbor2.dumps(MV.to_wire(named), canonical=True)
    kid = bytes.fromhex(kid_device.replace("-", ""))
    return eid.hex(), bytes.fromhex(MV.sign1(payload, kid, key=key)["message"])


def companion(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The companion command line, as a user runs it."""
    return subprocess.run([str(BIN / "companion"), *args], capture_output=True, text=True, timeout=120, cwd=cwd)
