"""Companion decode-and-verify against the shared vectors, and each rejection reason."""

from __future__ import annotations

import dataclasses
import time

import pytest

from companion import errors
from companion.wire.cose import MAX_MESSAGE, load_public_key, parse_sign1, verify_event

from .support import load_vectors, value

EVENTS = load_vectors("events")
BAD = load_vectors("events_bad")
PUB = bytes.fromhex(EVENTS["public_key"])

REASONS = {cls.reason: cls for cls in (
    errors.OversizeError, errors.MalformedError, errors.DuplicateKeyError, errors.NotSign1Error,
    errors.WrongAlgError, errors.MissingKidError, errors.BadSignatureError, errors.SchemaError,
    errors.UnsupportedVersionError, errors.UnknownEventTypeError, errors.InvalidMpxnError,
    errors.InvalidDeviceIdError)}


def as_named(ev) -> dict:
    """The companion's Event as the vector input form (named fields, lists)."""
    d = dataclasses.asdict(ev)

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if v is not None}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    out = clean(d)
    out.pop("version")
    out["evidence"]["hub"] = clean(d["evidence"]["hub"]) if d["evidence"]["hub"] else None
    out["evidence"]["wan"] = clean(d["evidence"]["wan"]) if d["evidence"]["wan"] else None
    return out


def normal_input(inp: dict) -> dict:
    ev = value(inp)
    for sub in [ev["evidence"]["hub"]] + ev["evidence"]["devices"]:
        for k in ("chf", "gpf", "eui"):
            if sub and k in sub:
                sub[k] = sub[k].upper()
    return ev


@pytest.mark.parametrize("case", EVENTS["cases"] + EVENTS["v1_cases"],
                         ids=[c["name"] for c in EVENTS["cases"] + EVENTS["v1_cases"]])
def test_good_vectors_verify_and_decode_to_their_input(case):
    v = verify_event(bytes.fromhex(case["message"]), PUB)
    assert v.event.version == (1 if case in EVENTS["v1_cases"] else 2)
    assert v.event.evidence.hub_time == case["input"]["evidence"].get("hub_time")
    assert v.sign1.kid.hex() == EVENTS["kid"]
    assert v.sign1.protected.hex() == case["protected"]
    assert v.sign1.to_be_signed().hex() == case["sig_structure"]
    assert v.sign1.payload.hex() == case["payload"]
    assert as_named(v.event) == normal_input(case["input"])


@pytest.mark.parametrize("case", BAD["inputs"], ids=[c["name"] for c in BAD["inputs"]])
def test_signed_bad_content_is_rejected_with_its_reason(case):
    with pytest.raises(errors.WireError) as info:
        verify_event(bytes.fromhex(case["message"]), PUB)
    assert info.value.reason == case["reason"], str(info.value)
    assert type(info.value) is REASONS[case["reason"]]
    assert str(info.value).startswith(case["field"].split("[")[0].split(".")[0]), str(info.value)


@pytest.mark.parametrize("case", BAD["messages"], ids=[c["name"] for c in BAD["messages"]])
def test_bad_messages_are_rejected_with_their_reason(case):
    with pytest.raises(errors.WireError) as info:
        verify_event(bytes.fromhex(case["message"]), PUB)
    assert info.value.reason == case["reason"], str(info.value)
    assert type(info.value) is REASONS[case["reason"]]


def test_every_reason_has_its_own_class_and_is_a_value_error():
    assert len(REASONS) == 12
    assert all(issubclass(cls, ValueError) for cls in REASONS.values())


def test_ten_megabyte_message_is_refused_before_decoding():
    blob = b"\xd2" + b"\x00" * (10 * 1024 * 1024)
    t0 = time.perf_counter()
    with pytest.raises(errors.OversizeError, match="10485761 bytes exceeds the 4096-byte limit"):
        verify_event(blob, PUB)
    assert MAX_MESSAGE == 4096
    # not a timing assertion on speed: the refusal must not depend on the content
    assert time.perf_counter() - t0 < 5


def test_wrong_device_key_is_a_bad_signature():
    other = load_vectors("ecdsa")["rfc6979"]["public_key"]
    with pytest.raises(errors.BadSignatureError, match="does not verify"):
        verify_event(bytes.fromhex(EVENTS["cases"][0]["message"]), bytes.fromhex(other))


def test_malformed_public_key_is_a_clear_error():
    with pytest.raises(ValueError, match="not a P-256 public key"):
        load_public_key(b"\x04" + b"\x01" * 64)


def test_kid_is_available_before_verification():
    # The bridge looks the key up by kid, so parsing must not need the key.
    s = parse_sign1(bytes.fromhex(EVENTS["cases"][0]["message"]))
    assert s.kid.hex() == EVENTS["kid"]


def test_nesting_bomb_is_malformed_not_a_crash():
    bomb = b"\x81" * 100000 + b"\x01"
    with pytest.raises(errors.OversizeError):
        verify_event(bomb, PUB)
    with pytest.raises(errors.MalformedError, match="depth|nest"):
        verify_event(b"\x81" * 4000 + b"\x01", PUB)


def _general(message: bytes):
    """parse_sign1 without its fast path: what the fast path must agree with."""
    from unittest import mock

    from companion.wire import cose

    with mock.patch.object(cose, "_plain_sign1", lambda m: None):
        return parse_sign1(message)


def test_the_fast_path_agrees_with_the_general_one_or_steps_aside():
    """A handheld's message in its exact form is read without decoding (cose._plain_sign1);
    any change to it, byte by byte (a longer head, another header, trailing bytes, a shorter
    signature), is read by the general path, refused or not as before. Where the fast path
    takes a message, the parts and the stored bytes are the general path's."""
    import random

    import cbor2

    from companion.wire import cose

    from .bridge_support import make_event

    rng = random.Random(7)
    msgs = [make_event("install", 1795860000 + i, i + 1)[1] for i in range(5)]
    variants = list(msgs)
    for m in msgs:
        p, u, pay, sig = cbor2.loads(m).value
        variants += [
            m + b"\x00",  # trailing bytes
            m[:-1],  # truncated
            cbor2.dumps(cbor2.CBORTag(18, [p, {}, pay, sig[:63]])),  # short signature
            cbor2.dumps(cbor2.CBORTag(18, [p, {5: b"x"}, pay, sig])),  # unprotected header
            cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps({4: cbor2.loads(p)[4], 1: -7}), {}, pay, sig])),  # other order
            b"\xd2\x84\x58\x0d" + m[3:],  # the protected header's head in a longer form than needed
        ]
        for _ in range(60):  # one byte changed anywhere
            i = rng.randrange(len(m))
            variants.append(m[:i] + bytes([rng.randrange(256)]) + m[i + 1:])
    taken = 0
    for v in variants:
        fast = cose._plain_sign1(v)
        try:
            general = _general(v)
        except errors.WireError:
            assert fast is None, v.hex()
            continue
        if fast is not None:
            taken += 1
            assert (fast.protected, fast.kid, fast.payload, fast.signature) == \
                (general.protected, general.kid, general.payload, general.signature)
            assert fast.canonical() == general.canonical() == v
    assert taken >= len(msgs)  # the exact form is taken by the fast path
