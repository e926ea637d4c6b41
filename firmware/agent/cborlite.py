# A small strict CBOR reader (RFC 8949) for what the hub and the bridge send: definite
# lengths; unsigned and negative integers, byte and text strings, arrays, maps (no repeated
# keys), true, false and null; nothing else (no tags, floats or indefinite lengths) and at
# most a few levels deep. Anything else is a ValueError. Much smaller in the heap than
# the tests' decoder (tests/mpy/cbordec.py), which reads any well-formed CBOR.
from micropython import const

_DEPTH = const(6)


def _head(d, p):
    ib = d[p]
    ai = ib & 31
    p += 1
    if ai < 24:
        return ib >> 5, ai, p
    if ai > 27:
        raise ValueError("cbor: not supported")
    n = 1 << (ai - 24)
    if p + n > len(d):
        raise ValueError("cbor: truncated")
    return ib >> 5, int.from_bytes(d[p:p + n], "big"), p + n


def _item(d, p, depth):
    if depth > _DEPTH or p >= len(d):
        raise ValueError("cbor: not supported")
    if d[p] in (0xF4, 0xF5, 0xF6):
        return (False, True, None)[d[p] - 0xF4], p + 1
    major, n, p = _head(d, p)
    if major == 0:
        return n, p
    if major == 1:
        return -1 - n, p
    if major == 2 or major == 3:
        if p + n > len(d):
            raise ValueError("cbor: truncated")
        v = d[p:p + n]
        return (str(v, "utf-8") if major == 3 else v), p + n
    if major == 4:
        out = []
        for _ in range(n):
            v, p = _item(d, p, depth + 1)
            out.append(v)
        return out, p
    if major == 5:
        out = {}
        for _ in range(n):
            k, p = _item(d, p, depth + 1)
            if isinstance(k, (list, dict)) or k in out:
                raise ValueError("cbor: bad or repeated map key")
            out[k], p = _item(d, p, depth + 1)
        return out, p
    raise ValueError("cbor: not supported")  # tags, floats, indefinite lengths


def loads(d):
    v, p = _item(d, 0, 0)
    if p != len(d):
        raise ValueError("cbor: trailing bytes")
    return v
