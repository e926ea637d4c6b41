"""Property tests: firmware CBOR (under micropython) against CPython cbor2, both ways.

Values are drawn in CPython; cbor2 encodes them; the firmware decodes and re-encodes;
cbor2 decodes the result, which must equal the value, and the bytes must be the
RFC 8949 §4.2.1 deterministic encoding computed here independently of the firmware.
"""

from __future__ import annotations

import struct

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .support import same

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


keys = st.one_of(st.integers(-(2**64), 2**64 - 1), st.text(max_size=8), st.binary(max_size=8))
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.binary(max_size=40), st.text(max_size=40),
)
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(keys, children, max_size=6),
        # Tag numbers cbor2 gives no meaning to (it decodes e.g. 4, 30, 258 semantically).
        st.builds(cbor2.CBORTag, st.integers(60000, 2**64 - 1), children),
    ),
    max_leaves=25,
)


def deterministic(v) -> bytes:
    """RFC 8949 §4.2.1 encoding, built here from cbor2's per-item encodings."""
    if isinstance(v, dict):
        items = sorted((deterministic(k), deterministic(x)) for k, x in v.items())
        head = cbor2.dumps({}) if not items else _head(5, len(items))
        return head + b"".join(k + x for k, x in items)
    if isinstance(v, (list, tuple)):
        return _head(4, len(v)) + b"".join(deterministic(x) for x in v)
    if isinstance(v, cbor2.CBORTag):
        return _head(6, v.tag) + deterministic(v.value)
    return cbor2.dumps(v)  # cbor2 uses shortest forms for scalars


def _head(major: int, n: int) -> bytes:
    # cbor2's own head for an unsigned integer, moved to the wanted major type
    enc = bytearray(cbor2.dumps(n))
    enc[0] |= major << 5
    return bytes(enc)


@SETTINGS
@given(values)
def test_cbor2_encode_firmware_decode_encode_cbor2_decode(server, v):
    reply = server.request("roundtrip " + cbor2.dumps(v).hex())
    assert reply.startswith("ok "), reply
    out = bytes.fromhex(reply[3:])
    assert same(cbor2.loads(out), v)
    assert out == deterministic(v)


@SETTINGS
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=8),
       st.sampled_from(["half", "single", "double"]))
def test_firmware_decodes_floats_of_every_width(server, floats, width):
    if width == "half":
        floats = [struct.unpack(">e", struct.pack(">e", f))[0] for f in floats if abs(f) < 65504 or f != f]
        enc = bytes([0x80 | len(floats)]) + b"".join(b"\xf9" + struct.pack(">e", f) for f in floats)
    elif width == "single":
        floats = [struct.unpack(">f", struct.pack(">f", f))[0] for f in floats if abs(f) < 3e38 or f != f]
        enc = bytes([0x80 | len(floats)]) + b"".join(b"\xfa" + struct.pack(">f", f) for f in floats)
    else:
        enc = bytes([0x80 | len(floats)]) + b"".join(b"\xfb" + struct.pack(">d", f) for f in floats)
    reply = server.request("floats " + enc.hex())
    assert reply.startswith("ok"), reply
    raw = bytes.fromhex(reply[3:]) if len(reply) > 2 else b""
    got = [struct.unpack(">d", raw[i:i + 8])[0] for i in range(0, len(raw), 8)]
    assert same(got, floats)


@SETTINGS
@given(st.binary(max_size=64))
def test_firmware_decoder_survives_random_bytes(server, data):
    reply = server.request("fuzz " + data.hex())
    assert reply == "ok" or reply.startswith("err DecodeError: cbor: "), reply


@SETTINGS
@given(values, st.integers(0, 200), st.integers(0, 255))
def test_firmware_decoder_survives_corrupted_valid_cbor(server, v, pos, byte):
    data = bytearray(cbor2.dumps(v))
    data[pos % len(data)] = byte
    reply = server.request("fuzz " + bytes(data).hex())
    assert reply == "ok" or reply.startswith("err DecodeError: cbor: "), reply
