"""Signed acks (docs/security.md): the shared vectors (tests/vectors/acks.json, made by
tools/make_vectors.py from cbor2 and cryptography) run through both receivers, the
firmware's agent.ackcheck under micropython and companion.wire.signing.verify_ack; and the
bridge's Signer checked against the firmware, and its verify cost on the handheld."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from companion.errors import CompanionError
from companion.wire.signing import KeyRing, Signer, verify_ack

from .support import firmware_vector_results, load_vectors

V = load_vectors("acks")
FW = {r["name"]: r for r in firmware_vector_results("acks")}
DEVICE = bytes.fromhex(V["device_id"].replace("-", ""))


@pytest.mark.parametrize("case", V["good"], ids=[c["name"] for c in V["good"]])
def test_good_acks_are_acted_on_by_both_runtimes(case):
    assert FW[case["name"]].get("got") == case["want"], FW[case["name"]]
    got = verify_ack(bytes.fromhex(case["message"]), KeyRing.of(V["bridge_keys"]), DEVICE)
    assert {k: got[k] for k in ("event_id", "outcome", "reason")} == case["want"]


@pytest.mark.parametrize("case", V["bad"], ids=[c["name"] for c in V["bad"]])
def test_bad_acks_are_refused_by_both_runtimes(case):
    fw = FW[case["name"]]
    assert "error" in fw and "crash" not in fw, fw
    with pytest.raises(CompanionError):
        verify_ack(bytes.fromhex(case["message"]), KeyRing.of(V["bridge_keys"]), DEVICE)


def test_the_bridge_signer_makes_acks_the_firmware_accepts(mpy):
    key = ec.generate_private_key(ec.SECP256R1())
    s = Signer(key)
    eid = bytes(range(16, 32))
    msg = s.ack(DEVICE, eid, "rejected", "time_in_future", "device clock 3 days ahead")
    out = mpy(f"from agent import ackcheck\nprint(ackcheck.check({msg!r}, [{s.public!r}], {DEVICE!r}))",
              heapsize="24k", mpy=True)
    assert out.strip() == f"({eid!r}, 'rejected', 'time_in_future', [])"


@pytest.mark.parametrize("said,differs", [("A", False), ("I", True), ("", True)])
def test_the_handheld_says_when_the_office_has_another_flag(mpy, said, differs):
    """The ack carries each meter point's flag as the bridge now has it; the handheld shows
    it, and says DIFFERS when it is not what it predicted on site for that event."""
    key = ec.generate_private_key(ec.SECP256R1())
    s = Signer(key)
    eid, other = bytes(range(16, 32)), bytes(range(32, 48))
    msg = s.ack(DEVICE, eid, "stored", flags=[["1900000000096", "A", "2026-11-28", "commissioned"]])
    code = f"""
from agent import ackcheck
class Box:
    def remove(self, eid):
        return 1
class Agent:
    cfg = {{"bridge_keys": [{s.public.hex()!r}], "device_id": {V["device_id"]!r}}}
    outbox = Box()
    acked = ignored = 0
    outcomes = []
    predicted = [{other.hex() + " 1900000000096:N"!r}, {eid.hex() + " 1900000000096:" + (said or "-")!r}]
    def out(self, line):
        print(line)
    def say(self, tag, text):
        print(tag, text)
ackcheck.apply(Agent(), [(False, {msg!r})])
"""
    lines = mpy(code, heapsize="32k", mpy=True).splitlines()
    assert "FLAG 1900000000096 A 2026-11-28 commissioned, on the SM WAN" in lines, lines
    want = f"DIFFERS 1900000000096: said {said or '-'}, office has A"
    assert (want in lines) is differs, lines
