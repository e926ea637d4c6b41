"""Firmware CBOR codec (under micropython) against RFC 8949 Appendix A and edge cases."""

import pytest

from .support import firmware_vector_results, load_vectors

VECTORS = load_vectors("cbor")
RESULTS = None


def results() -> list[dict]:
    global RESULTS
    if RESULTS is None:
        RESULTS = firmware_vector_results("cbor")
    return RESULTS


@pytest.mark.parametrize("index", range(len(VECTORS["good"])),
                         ids=[c["hex"][:24] for c in VECTORS["good"]])
def test_good_vector_decodes_and_encodes(index):
    case = VECTORS["good"][index]
    got = [r for r in results() if r["index"] == index and not r.get("bad")][0]
    assert "decode_error" not in got, got
    assert got["decoded_equal"], got
    if case["deterministic"]:
        assert got.get("encoded") == case["hex"], got


@pytest.mark.parametrize("index", range(len(VECTORS["bad"])),
                         ids=[c["why"] for c in VECTORS["bad"]])
def test_bad_vector_raises_value_error_with_reason(index):
    got = [r for r in results() if r["index"] == index and r.get("bad")][0]
    assert "decoded" not in got, f"{VECTORS['bad'][index]['why']}: decoded as {got.get('decoded')}"
    assert got["is_value_error"], got["error"]
    assert got["error"].startswith("DecodeError: cbor: "), got["error"]


def test_depth_limit_is_sixteen(mpy):
    out = mpy(
        "from agent import cbor\n"
        "ok = b'\\x81' * 16 + b'\\x01'\n"
        "print(cbor.loads(ok) is not None)\n"
        "try:\n"
        "    cbor.loads(b'\\x81' * 17 + b'\\x01')\n"
        "except ValueError as e:\n"
        "    print('refused', e)\n"
        "x = 1\n"
        "for _ in range(17):\n"
        "    x = [x]\n"
        "try:\n"
        "    cbor.dumps(x)\n"
        "except ValueError as e:\n"
        "    print('refused', e)\n"
    )
    lines = out.splitlines()
    assert lines[0] == "True"
    assert lines[1] == "refused cbor: nesting deeper than 16"
    assert lines[2] == "refused cbor: nesting deeper than 16"


def test_encoder_refuses_floats_and_unknown_types(mpy):
    out = mpy(
        "from agent import cbor\n"
        "for v in (1.5, object()):\n"
        "    try:\n"
        "        cbor.dumps(v)\n"
        "    except TypeError as e:\n"
        "        print(e)\n"
    )
    assert out.splitlines() == [
        "cbor: floats are not encoded (the wire format is integer-only)",
        "cbor: cannot encode object",
    ]


def test_claimed_huge_length_fails_fast_without_allocating(mpy):
    # A 9-byte input claiming 2**63 items must be refused, not attempted, in a small heap.
    out = mpy(
        "from agent import cbor\n"
        "for h in ('9b7fffffffffffffff', 'bb7fffffffffffffff', '5b7fffffffffffffff'):\n"
        "    try:\n"
        "        cbor.loads(bytes.fromhex(h))\n"
        "    except ValueError as e:\n"
        "        print(e)\n",
        heapsize="16k",
        mpy=True,
    )
    assert [line.split(" at offset")[0] for line in out.splitlines()] == [
        "cbor: truncated array", "cbor: truncated map", "cbor: truncated input"]
