"""Real parts for bridge tests: mosquitto on a free loopback port, the bridge as a
process (`companion bridge`), a handheld-like MQTT client, and signed events built with
the vector generator's independent encoder (tools/make_vectors.py)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cbor2
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .support import load_tool

MV = load_tool("make_vectors")
DEVICE_KEY = MV.DEVICE_KEY
DEVICE_ID = MV.DEVICE_ID
PUBLIC_KEY = MV.public_hex(DEVICE_KEY)
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


class Mosquitto:
    def __init__(self, workdir: Path, port: int | None = None, tls: dict | None = None):
        """tls: {"port", "cafile", "certfile", "keyfile"} adds a listener that requires client certificates."""
        self.port = port or free_port()
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        # `user root`: as root, mosquitto would otherwise switch to its own user, which cannot
        # read a test's private temporary folder (no effect when not run as root).
        text = (f"user root\nlistener {self.port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
                "max_inflight_messages 1000\nmax_queued_messages 100000\npersistence false\n")
        if tls:
            text += (f"listener {tls['port']} 127.0.0.1\ncafile {tls['cafile']}\ncertfile {tls['certfile']}\n"
                     f"keyfile {tls['keyfile']}\nrequire_certificate true\n")
        self.conf.write_text(text)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Mosquitto":
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class BridgeProcess:
    """`companion bridge` in its own process, as deployed."""

    def __init__(self, workdir: Path, broker_url: str | None, *extra: str, http: str = "127.0.0.1:0"):
        self.workdir = workdir
        self.db = workdir / "bridge.db"
        self.out = workdir / "out"
        self.args = [str(BIN / "companion"), "bridge", "--db", str(self.db), "--out", str(self.out),
                     "--http", http, *extra]
        if broker_url:
            self.args += ["--broker", broker_url]
        self.proc: subprocess.Popen | None = None
        self.http = ""
        self.broker = ""
        self.log = workdir / "bridge.log"

    def start(self) -> "BridgeProcess":
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=logf, text=True, cwd=self.workdir)
        lines = {}
        for _ in range(3):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"bridge did not start: {self.log.read_text()[-2000:]}")
            key, _, value = line.partition(": ")
            lines[key] = value.strip()
        self.http = lines["http"]
        self.broker = lines["broker"].split()[0]
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def get(self, path: str) -> tuple[int, dict | str]:
        try:
            with urllib.request.urlopen(self.http + path, timeout=10) as r:
                body = r.read().decode()
                return r.status, json.loads(body) if r.headers["Content-Type"] == "application/json" else body
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode())

    def companion(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "companion"), *args, "--db", str(self.db)], capture_output=True,
                              text=True, timeout=60)


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
