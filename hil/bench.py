"""The bench: the broker and the bridge that a run's scenarios share, and what scenarios
ask of them (register a key, read a site, find DTC groups, forge an event...).

Two set-ups, both secured as shipped (TLS, client certificates, ACL; docs/security.md):
`embedded` (the bridge with its own mosquitto, the zero-setup default of the demo) and
`mosquitto` (an operator's mosquitto with the shipped configuration, the bridge connecting
to it). Flag updates are watched on MQTT as they happen, by an auditor identity, and each
is verified against the bridge's published keys before it counts.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from companion import dtc
from companion.errors import CompanionError
from companion.service.pki import Pki
from companion.wire.signing import KeyRing, verify_bridge_message
from companion.store.core import Store

from .dcc import Dcc
from .services import BridgeProcess, Mosquitto, free_port, identity_files, mqtt_client



def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit: a board takes about 8
    descriptors here (its console pipes, its serial line, its network proxy) and as many in
    the broker, and a common soft limit is 1024. -> the limit now."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 16
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            return want
        except (ValueError, OSError):
            pass
    return soft

@dataclass
class FlagUpdate:
    at: float
    mpxn: str
    flag: str | None
    since: str | None
    version: int
    reason: str


class Bench:
    def __init__(self, workdir: Path, broker: str = "embedded", say=print):
        raise_fd_limit()  # before the broker starts: it inherits the limit
        self.dir = workdir.resolve()
        self.kind = broker
        self.say = say
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = self.cfg = self.dir / "bridge.toml"
        # The bench's DCC (hil/dcc.py): the bridge believes its signature; requests are drafted
        # from the bench's DCC user id to the DCC (DCC Boxed's EUI).
        self.dcc = Dcc()
        pem = self.dcc.pem(self.dir / "dcc.pem")
        cfg.write_text("dtc_batch_age = 1.0\ndtc_batch_size = 200\n"
                       f'duis_certs = "{pem}"\nduis_user_eui = "90-B3-D5-1F-30-01-00-00"\n'
                       'duis_dcc_eui = "90-B3-D5-1F-30-00-00-02"\n')
        self.mosquitto: Mosquitto | None = None
        self.listen_port = free_port()
        self.pki = Pki(self.dir / "pki")
        if broker == "mosquitto":
            self.mosquitto = Mosquitto(self.dir, pki=self.pki)
            identity_files(self.pki, "bridge", "bridge")
            self.mosquitto.start()
            self.bridge = BridgeProcess(self.dir, self.mosquitto.url, "--config", str(cfg), pki=self.pki.root)
        else:
            self.bridge = BridgeProcess(self.dir, None, "--config", str(cfg), "--listen",
                                        f"127.0.0.1:{self.listen_port}", pki=self.pki.root)
        self.bridge.start()
        self.ring = KeyRing.of(self.pki.bridge_public_keys())
        self.unverified = 0
        host, port = self.bridge.broker.split("://")[1].rsplit(":", 1)
        self.broker_address = (host, int(port))
        self.store = Store(self.bridge.db)
        self.updates: list[FlagUpdate] = []
        self._rejected: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self.t0 = time.monotonic()
        self._watch()
        self._adaptor: Any = None

    # --- watching flags -------------------------------------------------------------------
    def _watch(self) -> None:
        c = self._client = mqtt_client(self.pki, f"bench-{os.getpid()}", "auditor")
        c.on_connect = lambda cl, *a: (cl.subscribe("flagwise/flags/#", qos=1),
                                       cl.subscribe("flagwise/rejected/#", qos=1))
        c.on_message = self._on_message
        c.connect(*self.broker_address)
        c.loop_start()

    def _on_message(self, client, userdata, m) -> None:
        try:
            payload = verify_bridge_message(bytes(m.payload), self.ring)[0]
        except CompanionError as exc:
            self.unverified += 1
            self.say(f"  NOT VERIFIED on {m.topic[:60]}: {str(exc)[:60]}")
            return
        if "/rejected/" in m.topic:
            reason = cbor2.loads(payload).get(4, "")
            with self._lock:
                self._rejected.setdefault(m.topic.rsplit("/", 1)[1], []).append(reason)
            self.say(f"  rejected {m.topic.rsplit('/', 1)[1]}: {reason}")
            return
        body = json.loads(payload)
        u = FlagUpdate(time.monotonic() - self.t0, body["mpxn"], body["flag"], body["effective_from"],
                       body["version"], body["reason"])
        with self._lock:
            if any(x.mpxn == u.mpxn and x.version == u.version for x in self.updates):
                return  # a retained copy or a re-publish of a version already seen
            self.updates.append(u)
        head = f"  flag {u.mpxn}: {u.flag or 'none'} since {u.since} (v{u.version}) — "
        width = max(60, shutil.get_terminal_size((120, 24)).columns)
        self.say(head + textwrap.shorten(u.reason, width=max(20, width - len(head)), placeholder=" …"))

    # --- what scenarios ask ---------------------------------------------------------------
    def register(self, device_id: str, public_key: str) -> None:
        self.store.add_key(device_id, bytes.fromhex(public_key))

    def revoke(self, device_id: str, hard: bool = False, at: float | None = None) -> None:
        self.store.revoke_key(device_id, at=at, hard=hard)

    def history(self, mpxn: str) -> list[str | None]:
        """The flag values published for a meter point, oldest first (each version once)."""
        with self._lock:
            seen: dict[int, str | None] = {}
            for u in self.updates:
                if u.mpxn == mpxn:
                    seen.setdefault(u.version, u.flag)
        return [seen[v] for v in sorted(seen)]

    def site(self, mpxn: str) -> dict | None:
        return http_json(f"{self.bridge.http}/v1/sites/{mpxn}", self.bridge.token)

    def rejections(self, device_id: str) -> list[str]:
        with self._lock:
            return list(self._rejected.get(device_id, []))

    def stored_ids(self, ids: set[str]) -> set[str]:
        return self.store.event_ids() & ids

    def dtc_groups(self, flow: str) -> list[list[str]]:
        prefix = {"D0350": "D0350001", "GAS": "DXIE4601"}.get(flow.upper(), flow)
        out = []
        for p in sorted(self.bridge.out.glob(f"{prefix}_*.dtc")):
            out += dtc.parse(p.read_text())["groups"]
        return out

    def forge(self, device_id: str, kind: str, mpan: str, count: int = 1) -> str:
        """Publish what the bridge must refuse or recognise, as an attacker or a fault would:
        `bad_signature` (the device's kid, another key), `tampered` (a signed event altered),
        `unregistered` (a device with a broker identity but no key at the bridge: it waits
        for the `unknown_key` rejection), `other_topic` (an event naming another device,
        published on this one's topic: `kid_mismatch`), `replay` (this device's latest stored
        event published `count` more times: duplicates). -> what was done."""
        if kind == "replay":
            latest = self.store.latest_message(device_id)
            if latest is None:
                raise AssertionError(f"forge replay: no stored event of {device_id} to send again")
            for _ in range(count):
                self._publish_as(device_id, latest)
            return f"its latest event sent {count} more times"
        if kind == "unregistered":
            stranger = "70-B3-D5-F1-0E-" + os.urandom(3).hex("-").upper()
            self._publish_as(stranger, self._forged(stranger, mpan, "bad_signature"))
            end = time.monotonic() + 20
            while "unknown_key" not in self.rejections(stranger):
                if time.monotonic() > end:
                    raise AssertionError(f"the bridge did not reject {stranger} as unknown_key")
                time.sleep(0.1)
            return f"{stranger}: unknown_key"
        if kind == "other_topic":
            other = "70-B3-D5-F1-0E-" + os.urandom(3).hex("-").upper()
            self._publish_as(device_id, self._forged(other, mpan, "bad_signature"))
            return f"an event of {other} on {device_id}'s topic"
        for _ in range(count):
            self._publish_as(device_id, self._forged(device_id, mpan, kind))
        return f"{kind} x{count}"

    def _publish_as(self, device_id: str, msg: bytes) -> None:
        # Sent with that handheld's broker identity (a stolen certificate, or a device the
        # broker knows): the broker lets it through; the bridge's checks decide.
        identity_files(self.pki, device_id, "handheld")
        c = mqtt_client(self.pki, device_id, "handheld")
        acked: dict[int, int] = {}
        c.on_publish = lambda cl, u, mid, rc, props: acked.__setitem__(mid, rc.value)
        c.connect(*self.broker_address)
        c.loop_start()
        try:
            end = time.monotonic() + 10
            while True:  # a certificate issued a moment ago counts once the broker reloads its ACL
                info = c.publish(f"flagwise/events/{device_id}", msg, qos=1)
                info.wait_for_publish(10)
                for _ in range(100):
                    if info.mid in acked:
                        break
                    time.sleep(0.01)
                if acked.get(info.mid) != 135 or time.monotonic() > end:
                    break
                time.sleep(0.1)
        finally:
            c.loop_stop()
            c.disconnect()

    def _forged(self, device_id: str, mpan: str, kind: str) -> bytes:
        now = int(time.time())
        payload = cbor2.dumps({0: 1, 1: os.urandom(16), 2: "commission", 3: [mpan], 4: [], 5: "FORGED",
                               6: "X", 7: now, 8: 1, 9: "0.0.0",
                               10: {0: now, 1: {0: bytes(8), 2: "SMETS2", 5: True}, 2: {0: True},
                                    3: [{0: bytes(7) + b"\x01", 1: "ESME", 2: "Commissioned", 3: mpan}]}},
                              canonical=True)
        kid = bytes.fromhex(device_id.replace("-", ""))
        prot = cbor2.dumps({1: -7, 4: kid}, canonical=True)
        key = ec.generate_private_key(ec.SECP256R1())  # not the device's key
        r, s = utils.decode_dss_signature(key.sign(cbor2.dumps(["Signature1", prot, b"", payload]),
                                                   ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if kind == "tampered":
            payload = payload.replace(b"FORGED", b"FORGEd")
        return cbor2.dumps(cbor2.CBORTag(18, [prot, {}, payload, sig]))

    # --- the DCC's side ---------------------------------------------------------------------
    def duis(self, message: bytes, timeout: float = 30.0) -> str:
        """Publish a DUIS message as the supplier's DCC adaptor (its own identity, role
        dcc-adaptor) and wait until the bridge has stored or refused it: -> "stored" or
        "refused <reason>". Sent again until then (a new identity waits for the broker's ACL
        reload; the same bytes twice are one message)."""
        import hashlib

        from companion.store.smi import Inventory

        digest = hashlib.sha256(message).hexdigest()
        inv = Inventory(self.store)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._adaptor is None:
                self._adaptor = mqtt_client(self.pki, "dcc-adaptor", "dcc-adaptor")
                self._adaptor.connect(*self.broker_address)
                self._adaptor.loop_start()
            self._adaptor.publish("flagwise/duis/in", message, qos=1)
            end = min(deadline, time.monotonic() + 2.0)
            while time.monotonic() < end:
                got = inv.outcome(digest)
                if got is not None:
                    return got
                time.sleep(0.1)
        raise RuntimeError(f"the bridge did not take the DUIS message within {timeout:g} s")

    def conflicts(self) -> list[dict[str, Any]]:
        got = http_json(f"{self.bridge.http}/v1/conflicts", self.bridge.token) or {}
        return list(got.get("conflicts", []))

    def draft_requests(self, into: Path) -> list[dict[str, Any]]:
        """`companion conflicts --requests DIR`, as a supplier runs it: the index of the drafts."""
        p = self.bridge.companion("conflicts", "--json", "--requests", str(into), "--config", str(self.cfg))
        if p.returncode != 0:
            raise RuntimeError(f"companion conflicts failed: {p.stderr[-400:]}")
        index = into / "requests.json"
        return list(json.loads(index.read_text())) if index.exists() else []

    def restart_broker(self, down: float = 1.0) -> None:
        if self.mosquitto:
            self.mosquitto.stop()
            time.sleep(down)
            self.mosquitto.start()
        else:  # the broker is embedded in the bridge: restart the bridge on the same port
            self.bridge.stop()
            time.sleep(down)
            self.bridge.start()
        self._client.reconnect()

    def close(self) -> None:
        if self._adaptor is not None:
            self._adaptor.loop_stop()
            self._adaptor.disconnect()
        self._client.loop_stop()
        self._client.disconnect()
        self.bridge.stop()
        if self.mosquitto:
            self.mosquitto.stop()


def http_json(url: str, token: str | None = None) -> dict[str, Any] | None:
    """GET a JSON document from the read API; None for 404."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            body: dict[str, Any] = json.loads(r.read())
            return body
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise
