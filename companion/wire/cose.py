"""Decode and verify a handheld's event: COSE_Sign1 (RFC 9052 §4.2) with ES256.

Checks run cheapest first: size, CBOR well-formedness, COSE structure, protected
header (alg ES256, kid), then the ECDSA signature over the Sig_structure (§4.4),
and only then the payload schema (companion.event). The received protected-header
bytes are verified as received, never re-encoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from companion.wire.cbor import loads_strict, summary
from companion.errors import (
    BadSignatureError,
    MissingKidError,
    NotSign1Error,
    OversizeError,
    WrongAlgError,
)
from companion.wire.event import Event, parse_payload

MAX_MESSAGE = 4096  # bytes of a whole COSE_Sign1 message (docs/wire.md)
TAG_SIGN1 = 18
ALG_ES256 = -7
HDR_ALG, HDR_KID = 1, 4
_ECDSA = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True)
class Sign1:
    protected: bytes  # as received
    kid: bytes
    payload: bytes
    signature: bytes  # r || s, 64 bytes
    # The message as received, when it is already exactly its canonical form (_plain_sign1).
    received: bytes | None = field(default=None, compare=False, repr=False)

    def to_be_signed(self) -> bytes:
        return sig_structure(self.protected, self.payload)

    def canonical(self) -> bytes:
        """The message rebuilt from its signed parts alone (protected header, payload and
        signature as received; an empty unprotected header): what the store keeps, so that
        no unsigned wrapper or encoding variant can change what is kept or compared."""
        if self.received is not None:
            return self.received
        return cbor2.dumps(cbor2.CBORTag(TAG_SIGN1, [self.protected, {}, self.payload, self.signature]))


@dataclass(frozen=True)
class VerifiedEvent:
    sign1: Sign1
    event: Event


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected, b"", payload])


def load_public_key(key: bytes | ec.EllipticCurvePublicKey) -> ec.EllipticCurvePublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(key))
    except ValueError as exc:
        raise ValueError(f"not a P-256 public key (SEC1 point): {exc}") from exc


def _bstr(m: bytes, i: int) -> tuple[int, int]:
    """(start, end) of the byte string whose head is at m[i], in its shortest form; (-1, -1)
    if there is none (another item, a longer head than needed, or past the end)."""
    ib = m[i] if i < len(m) else 0
    if 0x40 <= ib <= 0x57:
        start, n = i + 1, ib - 0x40
    elif ib == 0x58 and i + 1 < len(m) and m[i + 1] >= 24:
        start, n = i + 2, m[i + 1]
    elif ib == 0x59 and i + 2 < len(m) and m[i + 1]:
        start, n = i + 3, m[i + 1] << 8 | m[i + 2]
    else:
        return -1, -1
    return (start, start + n) if start + n <= len(m) else (-1, -1)


# The protected header a handheld sends: {1: -7 (ES256), 4: an 8-byte kid}, deterministic.
_PLAIN_HEADER = b"\xa2\x01\x26\x04\x48"


def _plain_sign1(m: bytes) -> Sign1 | None:
    """The message, if it is exactly what a handheld sends: tag 18, an array of a protected
    header {1: -7, 4: kid (8 bytes)}, an empty unprotected map, the payload and a 64-byte
    signature, every head in its shortest form and nothing after. Its shape is then known
    whole, so nothing needs decoding, and it is its own canonical form. Anything else
    -> None: the general path reads it and says what is wrong."""
    if m[:3] != b"\xd2\x84\x4d" or m[3:8] != _PLAIN_HEADER or m[16:17] != b"\xa0":
        return None
    start, end = _bstr(m, 17)
    if end < 0 or m[end:end + 2] != b"\x58\x40" or end + 66 != len(m):
        return None
    return Sign1(m[3:16], m[8:16], m[start:end], m[end + 2:], m)


def parse_sign1(message: bytes, max_size: int = MAX_MESSAGE) -> Sign1:
    if type(message) is not bytes and not isinstance(message, (bytearray, memoryview)):
        raise NotSign1Error("message must be bytes")
    if len(message) > max_size:
        raise OversizeError(f"message of {len(message)} bytes exceeds the {max_size}-byte limit")
    if type(message) is bytes:
        plain = _plain_sign1(message)
        if plain is not None:
            return plain
    obj = loads_strict(message if type(message) is bytes else bytes(message), top_tag=TAG_SIGN1)
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != TAG_SIGN1:
        raise NotSign1Error("not a tagged COSE_Sign1 (CBOR tag 18)")
    parts = obj.value
    if not isinstance(parts, (list, tuple)) or len(parts) != 4:
        raise NotSign1Error("COSE_Sign1 must be an array of 4 items")
    protected, unprotected, payload, signature = parts
    if not isinstance(protected, bytes):
        raise NotSign1Error("protected header must be a byte string")
    if type(unprotected) is not dict and not isinstance(unprotected, Mapping):
        raise NotSign1Error("unprotected header must be a map")
    if not isinstance(payload, bytes):
        raise NotSign1Error("payload must be an attached byte string")
    if not isinstance(signature, bytes):
        raise NotSign1Error("signature must be a byte string")
    header = loads_strict(protected, "protected header") if protected else {}
    if type(header) is not dict and not isinstance(header, Mapping):
        raise NotSign1Error("protected header must encode a map")
    if HDR_ALG in unprotected or HDR_KID in unprotected:
        # Our profile: alg and kid are integrity-protected (RFC 9052 §3.1 allows either).
        raise NotSign1Error("alg and kid belong in the protected header only")
    if len(unprotected):
        # Nothing unsigned may travel with the evidence (docs/wire.md): a re-wrapped copy
        # must never be stored in place of the genuine one.
        raise NotSign1Error("the unprotected header must be empty")
    alg = header.get(HDR_ALG)
    if alg != ALG_ES256:
        raise WrongAlgError(f"alg must be ES256 (-7), got {summary(alg)}")
    kid = header.get(HDR_KID)
    if not isinstance(kid, bytes) or not kid:
        raise MissingKidError("protected header has no kid")
    return Sign1(protected, kid, payload, signature)


BAD_SIGNATURE = "signature does not verify with the device key"


def check_signature(public_key: bytes | ec.EllipticCurvePublicKey, to_be_signed: bytes, signature: bytes) -> None:
    """ES256 (RFC 9052 §8.1): `signature` (r || s) over `to_be_signed` by `public_key`; raises
    BadSignatureError (and ValueError for a key that is no P-256 point)."""
    if len(signature) != 64:
        raise BadSignatureError(f"ES256 signature must be 64 bytes, got {len(signature)}")
    der = utils.encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        load_public_key(public_key).verify(der, to_be_signed, _ECDSA)
    except InvalidSignature:
        raise BadSignatureError(BAD_SIGNATURE) from None


def verify_sign1(sign1: Sign1, public_key: bytes | ec.EllipticCurvePublicKey) -> None:
    check_signature(public_key, sign1.to_be_signed(), sign1.signature)


def verify_event(
    message: bytes,
    public_key: bytes | ec.EllipticCurvePublicKey,
    max_size: int = MAX_MESSAGE,
) -> VerifiedEvent:
    """Parse, verify and schema-check one event message; raises a WireError subclass."""
    sign1 = parse_sign1(message, max_size)
    verify_sign1(sign1, public_key)
    return VerifiedEvent(sign1, parse_payload(sign1.payload))
