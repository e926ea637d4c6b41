"""Real parts for bridge tests: mosquitto on a free loopback port, the bridge as a
process (`companion bridge`), a handheld-like MQTT client, and signed events built with
the vector generator's independent encoder (tools/make_vectors.py)."""

from __future__ import annotations

import copy
import json
import os
import sys
import threading
import time
from pathlib import Path

import cbor2
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hil.services import BridgeProcess, Mosquitto, free_port, wait_port  # noqa: F401  (re-exported)

from .support import load_tool

MV = load_tool("make_vectors")
DEVICE_KEY = MV.DEVICE_KEY
DEVICE_ID = MV.DEVICE_ID
PUBLIC_KEY = MV.public_hex(DEVICE_KEY)
BIN = Path(sys.executable).parent


class Handheld:
    """An MQTT client standing in for handhelds: publishes events, collects what comes back."""

    def __init__(self, broker_url: str, prefix: str = "flagwise", client_id: str | None = None):
        host, port = broker_url.split("://")[1].rsplit(":", 1)
        self.prefix = prefix
        self.acks: dict[str, str] = {}  # event id hex -> status (last)
        self.ack_count: dict[str, int] = {}
        self.rejected: list[dict] = []
        self.flags: dict[str, list[dict]] = {}
        self.events: list[tuple[str, bytes]] = []  # (topic, payload) as published by handhelds
        self.lock = threading.Lock()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"hh-{free_port()}",
                             protocol=mqtt.MQTTv311)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, *a: c.subscribe(f"{prefix}/+/#", qos=1)
        self.c.max_inflight_messages_set(1000)
        self.c.connect(host, int(port))
        self.c.loop_start()
        time.sleep(0.3)

    def _on_message(self, client, userdata, m) -> None:
        kind = m.topic.split("/")[1]
        with self.lock:
            if kind == "acks":
                body = cbor2.loads(m.payload)
                eid = body[0].hex()
                self.acks[eid] = body[1]
                self.ack_count[eid] = self.ack_count.get(eid, 0) + 1
            elif kind == "rejected":
                self.rejected.append(json.loads(m.payload))
            elif kind == "events":
                self.events.append((m.topic, bytes(m.payload)))
            elif kind == "flags":
                body = json.loads(m.payload)
                self.flags.setdefault(body["mpxn"], []).append(body)

    def send(self, message: bytes, device_id: str = DEVICE_ID) -> None:
        self.c.publish(f"{self.prefix}/events/{device_id}", message, qos=1)

    def wait(self, cond, timeout: float = 20, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if cond(self):
                    return
            time.sleep(0.02)
        raise TimeoutError(f"timed out waiting for {what}")

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


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
               event_id: bytes | None = None, override: dict | None = None) -> tuple[str, bytes]:
    """(event id hex, signed COSE_Sign1 message)."""
    e = copy.deepcopy(ev if ev is not None else evidence())
    e["read_time"] = read_time
    eid = event_id or os.urandom(16)
    named = {"id": {"$bytes": eid.hex()}, "type": etype, "mpans": list(mpans), "mprns": list(mprns),
             "job": f"J{counter}", "installer": "INST-1", "time": read_time + 5, "counter": counter,
             "firmware": "0.1.0", "evidence": e}
    if override:
        named["override"] = override
    payload = cbor2.dumps(MV.to_wire(named), canonical=True)
    kid = bytes.fromhex(kid_device.replace("-", ""))
    return eid.hex(), bytes.fromhex(MV.sign1(payload, kid, key=key)["message"])
