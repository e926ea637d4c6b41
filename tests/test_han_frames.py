"""HAN link framing: the shared vectors on both sides (firmware under micropython, the
emulated hub's CPython codec), round trips, and the firmware deframer under fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil import frame as hub_frame

from .support import load_vectors

V = load_vectors("han_frames")


def fw_deframe(server, data: bytes) -> list[tuple[int, int, bytes]]:
    reply = server.request("deframe " + (data.hex() or ""))
    assert reply.startswith("ok "), reply
    words = reply.split()[2:]
    return [(int(words[i]), int(words[i + 1]), b"" if words[i + 2] == "-" else bytes.fromhex(words[i + 2]))
            for i in range(0, len(words), 3)]


def fw_encode(server, seq: int, ftype: int, payload: bytes) -> bytes:
    reply = server.request(f"encode {seq} {ftype} {payload.hex()}")
    assert reply.startswith("ok "), reply
    return bytes.fromhex(reply[3:])


def test_crc_check_value():
    assert hub_frame.fcs(b"123456789") == 0x906E


@pytest.mark.parametrize("case", V["good"], ids=[c["name"] for c in V["good"]])
def test_good_frames_both_sides(server, case):
    payload = bytes.fromhex(case["payload"])
    want = bytes.fromhex(case["frame"])
    assert hub_frame.encode(case["seq"], case["type"], payload) == want
    assert fw_encode(server, case["seq"], case["type"], payload) == want
    assert hub_frame.Deframer().feed(want) == [(case["seq"], case["type"], payload)]
    assert fw_deframe(server, want) == [(case["seq"], case["type"], payload)]


@pytest.mark.parametrize("case", V["bad"], ids=[c["name"] for c in V["bad"]])
def test_bad_bytes_give_no_frame_then_resync(server, case):
    bad = bytes.fromhex(case["bytes"])
    good = bytes.fromhex(V["good"][0]["frame"])
    assert hub_frame.Deframer().feed(bad) == []
    assert fw_deframe(server, bad) == []
    want = [(V["good"][0]["seq"], V["good"][0]["type"], b"")]
    assert hub_frame.Deframer().feed(bad + good) == want
    assert fw_deframe(server, bad + good) == want


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=252))
def test_round_trip_between_sides(server, seq, ftype, payload):
    enc = fw_encode(server, seq, ftype, payload)
    assert enc == hub_frame.encode(seq, ftype, payload)
    assert fw_deframe(server, enc) == [(seq, ftype, payload)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_firmware_deframer_never_crashes_and_agrees(server, data):
    # Random bytes: whatever comes out must be what the independent codec finds too.
    assert fw_deframe(server, data) == hub_frame.Deframer().feed(data)


def test_firmware_deframer_memory_is_bounded(mpy):
    # 2 MB of noise (with flags and escapes) through the deframer in a 16 KiB heap,
    # the allocated heap measured before and after.
    out = mpy(
        "import gc, os\n"
        "from agent import frame\n"
        "d = frame.Deframer()\n"
        "gc.collect()\n"
        "before = gc.mem_alloc()\n"
        "chunk = bytearray(os.urandom(512))\n"
        "for i in range(4096):\n"
        "    chunk[i % 512] = 0x7E if i % 7 == 0 else 0x7D if i % 11 == 0 else chunk[i % 512]\n"
        "    d.feed(chunk)\n"
        "gc.collect()\n"
        "print(before, gc.mem_alloc(), d.bad_fcs + d.oversize + d.runts)\n",
        heapsize="16k", mpy=True)
    before, after, bad = map(int, out.split())
    assert after - before < 1024, (before, after)
    assert bad > 1000


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.integers(0, 0xFFFF), st.binary(max_size=300)))
def test_request_argument_is_the_cbor_map_the_hub_reads(server, arg):
    """agent.link encodes a request's argument ({0: start index} or {0: EUI-64}) without
    agent.cbor: it is the same CBOR the hub's codec reads (RFC 8949 preferred encoding)."""
    import cbor2

    kind, text = ("int", str(arg)) if isinstance(arg, int) else ("bytes", arg.hex())
    reply = server.request(f"reqarg {kind} {text}")
    assert reply.startswith("ok "), reply
    got = bytes.fromhex(reply[3:])
    assert got == cbor2.dumps({0: arg})
    assert cbor2.loads(got) == {0: arg}
