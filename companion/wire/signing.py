"""What the bridge signs, and how receivers check it (docs/security.md, docs/wire.md).

Acks and rejections (<prefix>/acks/<device>, <prefix>/rejected/<device>) and flag updates
(<prefix>/flags/<mpxn>) are COSE_Sign1 messages (RFC 9052 §4.2, ES256, RFC 6979
deterministic nonces) made with a bridge signing key; the protected header carries
`kid` = the first 8 bytes of SHA-256 of the bridge's public key (key_id, below),
so that during a key rollover a receiver picks the right one of several keys.

Ack / rejection payload, a CBOR map bound to the device, the event and the outcome:
    0: 1 (version)   1: device id (8 bytes)   2: event id (16 bytes; absent when the
    bridge cannot name the event)   3: outcome "stored" | "duplicate" | "rejected"
    4: reason code (rejections)   5: detail, at most 120 characters (rejections)
    6: for each meter point of the event, its flag as it now stands (acks):
       [[mpxn, flag or "", effective-from YYYY-MM-DD or "", reason code], ...]

Flag update payload: the JSON body of docs/bridge.md "Flag updates" (UTF-8, sorted keys),
with content type application/json (header 3).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import cbor2
from typing import Any
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from companion.wire.cbor import loads_strict
from companion.errors import BadSignatureError, CompanionError, NotSign1Error
from cryptography.hazmat.primitives import serialization
from companion.wire.cose import (ALG_ES256, HDR_ALG, HDR_KID, TAG_SIGN1, load_public_key, parse_sign1,
                                 sig_structure, verify_sign1)

def key_id(public_point: bytes) -> bytes:
    """A bridge signing key's COSE kid: the first 8 bytes of SHA-256 of its SEC1 point."""
    import hashlib

    return hashlib.sha256(public_point).digest()[:8]


def public_point(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> bytes:
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


ACK_VERSION = 1
HDR_CONTENT_TYPE = 3
MAX_DETAIL = 120
MAX_ACK = 600  # bytes of an ack or rejection (the firmware's agent.ackcheck limit too)
MAX_FLAG_MESSAGE = 16384  # bytes of a flag update
OUTCOMES = ("stored", "duplicate", "rejected")


class Signer:
    """A bridge's signing key."""

    def __init__(self, key: ec.EllipticCurvePrivateKey):
        self.key = key
        self.public = public_point(key)
        self.kid = key_id(self.public)
        # RFC 6979: the same message always gets the same signature (cryptography >= 42).
        self._ecdsa = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
        # Per content type, the constant heads of the Sig_structure and of the message: only
        # the payload and the signature differ from one message to the next.
        self._heads: dict[str | None, tuple[bytes, bytes]] = {}

    def _head(self, content_type: str | None) -> tuple[bytes, bytes]:
        heads = self._heads.get(content_type)
        if heads is None:
            header: dict[int, object] = {HDR_ALG: ALG_ES256, HDR_KID: self.kid}
            if content_type:
                header[HDR_CONTENT_TYPE] = content_type
            protected = cbor2.dumps(header, canonical=True)
            # ["Signature1", protected, b"", payload] (RFC 9052 §4.4) and
            # 18([protected, {}, payload, signature]) (§4.2), each up to its payload
            tbs = sig_structure(protected, b"")[:-1]
            message = cbor2.dumps(cbor2.CBORTag(TAG_SIGN1, [protected, {}, b"", b""]))[:-2]
            heads = self._heads[content_type] = (tbs, message)
        return heads

    def sign(self, payload: bytes, content_type: str | None = None) -> bytes:
        tbs_head, message_head = self._head(content_type)
        body = cbor2.dumps(payload)
        r, s = utils.decode_dss_signature(self.key.sign(tbs_head + body, self._ecdsa))
        return message_head + body + b"\x58\x40" + r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def ack(self, device_id: bytes, event_id: bytes | None, outcome: str, reason: str | None = None,
            detail: str | None = None, flags: list[Any] | None = None) -> bytes:
        return self.sign(ack_payload(device_id, event_id, outcome, reason, detail, flags))

    def flag(self, body: Mapping[str, Any]) -> bytes:
        return self.sign(json.dumps(body, sort_keys=True, separators=(",", ":")).encode(), "application/json")


def ack_payload(device_id: bytes, event_id: bytes | None, outcome: str, reason: str | None = None,
                detail: str | None = None, flags: list[Any] | None = None) -> bytes:
    if outcome not in OUTCOMES or len(device_id) != 8 or (event_id is not None and len(event_id) != 16):
        raise ValueError("ack: bad outcome, device id or event id")
    m: dict[int, object] = {0: ACK_VERSION, 1: device_id, 3: outcome}
    if event_id is not None:
        m[2] = event_id
    if reason:
        m[4] = reason[:40]
    if detail:
        m[5] = detail[:MAX_DETAIL]
    if flags:
        m[6] = [[mpxn, flag or "", since or "", code[:24]] for mpxn, flag, since, code in flags[:4]]
    return cbor2.dumps(m, canonical=True)


# --- receivers --------------------------------------------------------------------------

class UntrustedError(CompanionError):
    reason = "untrusted"


class VersionRegressionError(UntrustedError):
    reason = "version_regression"


@dataclass(frozen=True)
class KeyRing:
    """The bridge public keys a receiver accepts, by kid (more than one during a rollover)."""

    keys: Mapping[bytes, ec.EllipticCurvePublicKey]

    @classmethod
    def of(cls, public_keys: Iterable[bytes | str | dict[str, Any]]) -> "KeyRing":
        out = {}
        for k in public_keys:
            if isinstance(k, dict):
                k = k["public_key"]
            raw = bytes.fromhex(k) if isinstance(k, str) else bytes(k)
            out[key_id(raw)] = load_public_key(raw)
        if not out:
            raise ValueError("no bridge public keys given")
        return cls(out)

    @classmethod
    def from_file(cls, path: str) -> "KeyRing":
        """A keys file: the JSON of GET /v1/keys or of the retained <prefix>/keys topic, or
        one hex key a line."""
        from pathlib import Path

        text = Path(path).read_text()
        try:
            data = json.loads(text)
        except ValueError:
            return cls.of([ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")])
        return cls.of(data["keys"] if isinstance(data, dict) else data)


def verify_bridge_message(message: bytes, ring: KeyRing,
                          max_size: int = MAX_FLAG_MESSAGE) -> tuple[bytes, dict[Any, Any]]:
    """-> (payload bytes, protected header). Raises a CompanionError on anything unsigned,
    signed by an unknown key or badly signed."""
    sign1 = parse_sign1(message, max_size)
    key = ring.keys.get(sign1.kid)
    if key is None:
        raise UntrustedError(f"signed by an unknown key (kid {sign1.kid[:16].hex()})")
    try:
        verify_sign1(sign1, key)
    except BadSignatureError:
        raise BadSignatureError("signature does not verify with the bridge key") from None
    header = loads_strict(sign1.protected, "protected header")
    assert isinstance(header, Mapping)
    return sign1.payload, dict(header)


def verify_ack(message: bytes, ring: KeyRing, device_id: bytes) -> dict[str, Any]:
    """An ack or rejection for DEVICE_ID: {outcome, event_id, reason, detail}."""
    payload, _ = verify_bridge_message(message, ring, MAX_ACK)
    m = loads_strict(payload, "ack payload")
    if not isinstance(m, Mapping) or m.get(0) != ACK_VERSION or m.get(3) not in OUTCOMES:
        raise NotSign1Error("not an ack of version 1")
    if m.get(1) != device_id:
        raise UntrustedError("ack bound to another device")
    eid = m.get(2)
    return {"outcome": m[3], "event_id": eid.hex() if isinstance(eid, bytes) else None,
            "reason": m.get(4), "detail": m.get(5), "flags": [list(f) for f in m.get(6, [])]}


class FlagVerifier:
    """For consumers of <prefix>/flags/<mpxn>: refuses unsigned, badly signed, misaddressed
    and version-regressing updates. Keep one per consumer; it remembers the last version
    seen per meter point (seed it from your own store with `last`)."""

    def __init__(self, ring: KeyRing, last: Mapping[str, int] | None = None):
        self.ring = ring
        self.last: dict[str, int] = dict(last or {})

    def verify(self, message: bytes, topic: str | None = None) -> dict[str, Any]:
        payload, header = verify_bridge_message(message, self.ring)
        if header.get(HDR_CONTENT_TYPE) != "application/json":
            raise NotSign1Error("not a flag update (content type)")
        try:
            body = json.loads(payload)
        except ValueError:
            raise NotSign1Error("flag update payload is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("mpxn"), str) \
                or not isinstance(body.get("version"), int) or isinstance(body.get("version"), bool):
            raise NotSign1Error("flag update without mpxn and version")
        mpxn, version = body["mpxn"], body["version"]
        if topic is not None and topic.rsplit("/", 1)[-1] != mpxn:
            raise UntrustedError(f"flag update for {mpxn[:20]} on another meter point's topic")
        seen = self.last.get(mpxn)
        if seen is not None and version <= seen:
            raise VersionRegressionError(f"version {version} of {mpxn} is not newer than {seen}")
        self.last[mpxn] = version
        return body


def verify_flag(message: bytes, public_keys: Iterable[bytes | str | dict[str, Any]], last_version: int | None = None,
                topic: str | None = None) -> dict[str, Any]:
    """Verify one flag update: signature by one of PUBLIC_KEYS, and (given the last version
    you accepted for that meter point) no regression. Returns the flag body."""
    ring = KeyRing.of(public_keys)
    v = FlagVerifier(ring)
    body = v.verify(message, topic)
    if last_version is not None and body["version"] <= last_version:
        raise VersionRegressionError(f"version {body['version']} of {body['mpxn']} is not newer than {last_version}")
    return body
