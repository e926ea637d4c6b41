"""Firmware event builder (under micropython): validation on the way in, limits, heap."""

from __future__ import annotations

import pytest

from companion.wire.cose import verify_event

from .support import firmware_vector_results, load_vectors

BAD = load_vectors("events_bad")["inputs"]
BAD_RESULTS = {r["name"]: r for r in firmware_vector_results("events_bad")}

EVENT = """
from agent import event, cose, ecdsa
ev = {"id": b"0123456789abcdef", "type": "install", "mpans": ["1312345678907"], "mprns": [],
      "job": "J1", "installer": "I1", "time": 1795860000, "counter": 1, "firmware": "0.1.0",
      "evidence": {"read_time": 1795860000, "hub": None, "wan": None, "devices": []}}
"""


@pytest.mark.parametrize("case", BAD, ids=[c["name"] for c in BAD])
def test_builder_refuses_bad_input_naming_the_field(case):
    got = BAD_RESULTS[case["name"]]
    assert "crash" not in got, got["crash"]
    assert "payload" not in got, "the builder accepted it"
    assert got["error"].startswith(case["field"] + ":"), got["error"]


def test_builder_enforces_payload_limit(mpy):
    # 16 devices with every text field at its maximum stays under MAX_PAYLOAD ...
    out = mpy(EVENT + """
d = {"eui": "00-00-00-00-00-00-00-01", "type": "ESME", "status": "Commissioned",
     "mpxn": "1312345678907", "serial": "S" * 32, "smets": "V" * 32, "mode": "M" * 32,
     "firmware": "F" * 32, "answered": True}
ev["evidence"]["devices"] = [d] * 16
ev["job"] = "J" * 40
ev["override"] = {"reason": "R" * 200, "checks": ["C" * 32] * 8}
p = event.build(ev)
print(len(p) <= event.MAX_PAYLOAD)
ev["evidence"]["devices"] = [d] * 17
try:
    event.build(ev)
except ValueError as e:
    print(e)
""")
    assert out.splitlines() == ["True", "evidence.devices: a list of at most 16 required"]


def test_event_ids_are_random_and_sixteen_bytes(mpy):
    out = mpy("from agent import event\nids = set(event.new_id() for _ in range(1000))\n"
              "print(len(ids), set(len(i) for i in ids))")
    assert out.split() == ["1000", "{16}"]


def test_override_is_carried_and_checked(mpy):
    out = mpy(EVENT + """
ev["override"] = {"reason": "meter answers: neighbour's hub", "checks": ["meter_answers"]}
import eventread
o = eventread.parse(event.build(ev))["override"]
print(o["reason"], o["checks"])
for bad in ({"reason": "", "checks": ["x"]}, {"reason": "r", "checks": []}, {"why": "r"}):
    ev["override"] = bad
    try:
        event.build(ev)
    except ValueError as e:
        print(e)
""")
    assert out.splitlines() == [
        "meter answers: neighbour's hub ['meter_answers']",
        "override.reason: text of 1 to 200 characters required",
        "override.checks: a list of 1 to 8 check codes required",
        "override: a map of reason and checks required",
    ]


def test_sign_an_event_with_mpy_modules_in_64k_heap(mpy):
    # The board form: .mpy modules, a 64 KiB heap. Report the peak for the record.
    out = mpy(EVENT + """
import micropython, gc
gc.collect()
key = ecdsa.generate_key()
kid = b"\\x70\\xb3\\xd5\\xf1\\x00\\x00\\x00\\x01"
for i in range(20):
    ev["counter"] = i
    msg = cose.sign1(event.build(ev), key, kid)
print(msg.hex(), ecdsa.public_key(key).hex())
""", heapsize="64k", mpy=True)
    msg, pub = out.split()
    verified = verify_event(bytes.fromhex(msg), bytes.fromhex(pub))
    assert verified.event.counter == 19
    assert verified.sign1.kid.hex() == "70b3d5f100000001"


def test_envelope_is_the_cbor_of_cose_sign1_at_every_length_form(mpy):
    """agent.cose writes the envelope's few shapes by hand (the signing stage loads no CBOR
    encoder): at each byte-string length form (RFC 8949 §3: <24, 1-byte, 2-byte) it is the
    deterministic CBOR of the COSE_Sign1 structure (RFC 9052 §4.2, §4.4)."""
    import cbor2

    lengths = [0, 1, 23, 24, 255, 256, 3968]
    out = mpy("""
from agent import cose
kid = b"\\x70\\xb3\\xd5\\xf1\\x00\\x00\\x00\\x01"
p = cose.protected_header(kid)
for n in %r:
    payload = bytes(range(256)) * (n // 256) + bytes(range(n %% 256))
    print(cose.sig_structure(p, payload).hex(), cose.sign1(payload, b"\\x01" * 32, kid).hex())
""" % lengths)
    kid = bytes.fromhex("70b3d5f100000001")
    protected = cbor2.dumps({1: -7, 4: kid})
    for n, line in zip(lengths, out.splitlines(), strict=True):
        payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
        sig_structure, msg = (bytes.fromhex(x) for x in line.split())
        assert sig_structure == cbor2.dumps(["Signature1", protected, b"", payload])
        decoded = cbor2.loads(msg)
        assert decoded.tag == 18
        assert list(decoded.value[:3]) == [protected, {}, payload] and len(decoded.value[3]) == 64
        assert msg == cbor2.dumps(decoded, canonical=True)
