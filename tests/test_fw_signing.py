"""Firmware ECDSA and COSE_Sign1 (under micropython) against RFC 6979, the shared
vectors, and independent verifiers (cryptography, pycose)."""

from __future__ import annotations

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import given, settings
from hypothesis import strategies as st
from pycose.keys import EC2Key
from pycose.keys.curves import P256
from pycose.messages import Sign1Message

from .support import firmware_vector_results, load_vectors

ECDSA = firmware_vector_results("ecdsa")
EVENTS = load_vectors("events")
EVENT_RESULTS = {r["name"]: r for r in firmware_vector_results("events")}


@pytest.mark.parametrize("result", ECDSA, ids=[r["case"] for r in ECDSA])
def test_ecdsa_vectors(result):
    assert result["got"] == result["want"]


def test_rfc6979_appendix_a25_values_are_in_the_vectors():
    # The vector file carries RFC 6979 A.2.5 (P-256, SHA-256, "sample") literally.
    rfc = load_vectors("ecdsa")["rfc6979"]
    assert rfc["cases"][0]["signature"].startswith("efd48b2aacb6a8fd1140dd9cd45e81d6")
    assert [r for r in ECDSA if r["case"] == "rfc6979_73616d706c65"][0]["got"] == rfc["cases"][0]["signature"]


def _verify(pub: ec.EllipticCurvePublicKey, sig: bytes, msg: bytes) -> None:
    der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    pub.verify(der, msg, ec.ECDSA(hashes.SHA256()))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 2**256 - 2**224 - 1), st.binary(max_size=300))
def test_firmware_signatures_verify_with_cryptography(server, d, msg):
    key = ec.derive_private_key(d, ec.SECP256R1())
    reply = server.request(f"sign {d.to_bytes(32, 'big').hex()} {msg.hex() or '00'}")
    msg = msg or b"\x00"
    assert reply.startswith("ok ")
    sig = bytes.fromhex(reply[3:])
    _verify(key.public_key(), sig, msg)
    # Deterministic: equal to cryptography's RFC 6979 signature.
    der = key.sign(msg, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = utils.decode_dss_signature(der)
    assert sig == r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_private_key_is_checked(mpy):
    out = mpy(
        "from agent import ecdsa\n"
        "for k in (b'', bytes(32), b'\\xff' * 32, bytes(31) + b'\\x01' + b'\\x00'):\n"
        "    try:\n"
        "        ecdsa.public_key(k)\n"
        "    except ValueError as e:\n"
        "        print(e)\n"
        "k = ecdsa.generate_key()\n"
        "print(len(k), len(ecdsa.public_key(k)))\n"
    )
    assert out.splitlines() == [
        "ecdsa: private key must be 32 bytes",
        "ecdsa: private key out of range",
        "ecdsa: private key out of range",
        "ecdsa: private key must be 32 bytes",
        "32 65",
    ]


@pytest.mark.parametrize("case", EVENTS["cases"], ids=[c["name"] for c in EVENTS["cases"]])
def test_firmware_event_matches_vector_at_every_stage(case):
    got = EVENT_RESULTS[case["name"]]
    assert "error" not in got, got.get("error")
    assert got["payload"] == case["payload"], "payload bytes"
    assert got["protected"] == case["protected"], "protected header"
    assert got["sig_structure"] == case["sig_structure"], "Sig_structure"
    assert got["message"] == case["message"], "whole COSE_Sign1 message"
    assert got["parse_equal"], "agent.event.parse(payload) gives the input back"


def _public_key() -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(EVENTS["public_key"]))


@pytest.mark.parametrize("name", sorted(EVENT_RESULTS))
def test_firmware_message_verifies_with_cryptography_directly(name):
    msg = bytes.fromhex(EVENT_RESULTS[name]["message"])
    tag = cbor2.loads(msg)
    assert tag.tag == 18
    protected, unprotected, payload, sig = tag.value
    assert cbor2.loads(protected) == {1: -7, 4: bytes.fromhex(EVENTS["kid"])}
    assert dict(unprotected) == {}
    _verify(_public_key(), sig, cbor2.dumps(["Signature1", protected, b"", payload]))


def pycose_decode(message: bytes) -> Sign1Message:
    # pycose 1.1.0 checks for a list and a dict where cbor2 6 now gives a tuple and a
    # frozendict, and so refuses every message in Sign1Message.decode (shared/pitfalls.md).
    # Decode the envelope with cbor2 and hand pycose plain containers, so that its own
    # header parsing and signature verification still run.
    tag = cbor2.loads(message)
    assert tag.tag == Sign1Message.cbor_tag
    protected, unprotected, payload, signature = tag.value
    return Sign1Message.from_cose_obj([protected, dict(unprotected), payload, signature], True)


@pytest.mark.parametrize("name", sorted(EVENT_RESULTS))
def test_firmware_message_verifies_with_pycose(name):
    pub = bytes.fromhex(EVENTS["public_key"])
    key = EC2Key(crv=P256, x=pub[1:33], y=pub[33:])
    msg = pycose_decode(bytes.fromhex(EVENT_RESULTS[name]["message"]))
    msg.key = key
    assert msg.verify_signature()
    tampered = pycose_decode(bytes.fromhex(EVENT_RESULTS[name]["message"]))
    tampered.payload = tampered.payload[:-1] + bytes([tampered.payload[-1] ^ 1])
    tampered.key = key
    assert not tampered.verify_signature()
