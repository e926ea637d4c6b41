# CBOR (RFC 8949) for the handheld: a deterministic encoder and a strict decoder.
#
# Encoder: the core deterministic encoding requirements of RFC 8949 §4.2.1 --
# shortest argument forms, definite lengths only, map keys sorted bytewise by
# their encoded form. Integers beyond 64 bits become bignums (tags 2/3, §3.4.3)
# without leading zero bytes. Floats are refused: the wire format is integer-only.
#
# Decoder: accepts any well-formed CBOR of the supported types (including
# non-shortest forms, indefinite lengths and half/single/double floats) and
# raises DecodeError (a ValueError) with a reason on malformed, truncated,
# over-deep (MAX_DEPTH), duplicate-key or trailing input.
from micropython import const

MAX_DEPTH = const(16)  # nesting limit for arrays, maps and tags, both directions

_U64 = 1 << 64


class DecodeError(ValueError):
    pass


class Tag:
    # A tagged item (major type 6) other than the bignum tags 2 and 3.
    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and other.tag == self.tag and other.value == self.value

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


# --- encoder ---------------------------------------------------------------

def _head(buf, major, n):
    mt = major << 5
    if n < 24:
        buf.append(mt | n)
    elif n < 0x100:
        buf.append(mt | 24)
        buf.append(n)
    elif n < 0x10000:
        buf.append(mt | 25)
        buf.extend(n.to_bytes(2, "big"))
    elif n < 0x100000000:
        buf.append(mt | 26)
        buf.extend(n.to_bytes(4, "big"))
    else:
        buf.append(mt | 27)
        buf.extend(n.to_bytes(8, "big"))


def _bignum_bytes(n):
    size = 0
    m = n
    while m:  # MicroPython ints have no bit_length()
        size += 1
        m >>= 8
    return n.to_bytes(size, "big")


def _encode(buf, obj, depth):
    if depth > MAX_DEPTH:
        raise ValueError("cbor: nesting deeper than %d" % MAX_DEPTH)
    if obj is None:
        buf.append(0xF6)
    elif obj is False:
        buf.append(0xF4)
    elif obj is True:
        buf.append(0xF5)
    elif isinstance(obj, int):
        major = 0
        if obj < 0:
            major = 1
            obj = -1 - obj
        if obj < _U64:
            _head(buf, major, obj)
        else:
            _head(buf, 6, 2 + major)  # bignum, RFC 8949 §3.4.3
            b = _bignum_bytes(obj)
            _head(buf, 2, len(b))
            buf.extend(b)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        _head(buf, 2, len(obj))
        buf.extend(obj)
    elif isinstance(obj, str):
        b = obj.encode()
        _head(buf, 3, len(b))
        buf.extend(b)
    elif isinstance(obj, (list, tuple)):
        _head(buf, 4, len(obj))
        for item in obj:
            _encode(buf, item, depth + 1)
    elif isinstance(obj, dict):
        pairs = []
        for k, v in obj.items():
            kb = bytearray()
            _encode(kb, k, depth + 1)
            pairs.append((bytes(kb), v))
        # §4.2.1: keys sorted by the bytewise lexicographic order of their encoding
        pairs.sort(key=lambda p: p[0])
        _head(buf, 5, len(pairs))
        for kb, v in pairs:
            buf.extend(kb)
            _encode(buf, v, depth + 1)
    elif isinstance(obj, Tag):
        _head(buf, 6, obj.tag)
        _encode(buf, obj.value, depth + 1)
    elif isinstance(obj, float):
        raise TypeError("cbor: floats are not encoded (the wire format is integer-only)")
    else:
        raise TypeError("cbor: cannot encode %s" % type(obj).__name__)


def dumps(obj):
    buf = bytearray()
    _encode(buf, obj, 0)
    return bytes(buf)


# --- decoder: the bench's and the tests' (tests/mpy/cbordec.py). The handheld only encodes;
# its one reader, of the bridge's acks, is agent.cborlite. Not shipped (firmware/manifest.py).

def loads(data):
    import cbordec

    return cbordec.loads(data)
