# The CBOR decoder of agent.cbor (RFC 8949), for the bench and the tests: never shipped to a
# handheld (firmware/manifest.py), which only encodes.
# Accepts any well-formed item of the supported types; raises DecodeError (a ValueError).
from micropython import const

from agent.cbor import MAX_DEPTH, DecodeError, Tag

_BREAK = const(0xFF)


def _need(data, pos, n):
    if pos + n > len(data):
        raise DecodeError("cbor: truncated input at offset %d" % pos)


def _argument(data, pos, ai):
    if ai < 24:
        return ai, pos
    if ai > 27:
        raise DecodeError("cbor: reserved additional information %d at offset %d" % (ai, pos - 1))
    n = 1 << (ai - 24)
    _need(data, pos, n)
    return int.from_bytes(data[pos:pos + n], "big"), pos + n


def _half(h):
    # IEEE 754 binary16 (RFC 8949 Appendix D), without relying on struct "e".
    exp = (h >> 10) & 0x1F
    mant = h & 0x3FF
    if exp == 0:
        val = mant * 2.0 ** -24
    elif exp == 31:
        val = float("inf") if mant == 0 else float("nan")
    else:
        val = (mant + 1024) * 2.0 ** (exp - 25)
    return -val if h & 0x8000 else val


def _string(data, pos, major, ai):
    if ai == 31:
        chunks = []
        while True:
            _need(data, pos, 1)
            ib = data[pos]
            pos += 1
            if ib == _BREAK:
                break
            if ib >> 5 != major or ib & 31 == 31:
                raise DecodeError("cbor: bad chunk in indefinite-length string at offset %d" % (pos - 1))
            n, pos = _argument(data, pos, ib & 31)
            _need(data, pos, n)
            chunks.append(data[pos:pos + n])
            pos += n
        raw = b"".join(chunks)
    else:
        n, pos = _argument(data, pos, ai)
        _need(data, pos, n)
        raw = data[pos:pos + n]
        pos += n
    if major == 3:
        try:
            return str(raw, "utf-8"), pos
        except UnicodeError:
            raise DecodeError("cbor: invalid UTF-8 in text string")
    return raw, pos


def _item(data, pos, depth):
    if depth > MAX_DEPTH:
        raise DecodeError("cbor: nesting deeper than %d" % MAX_DEPTH)
    _need(data, pos, 1)
    ib = data[pos]
    pos += 1
    major = ib >> 5
    ai = ib & 31
    if major == 0 or major == 1:
        if ai == 31:
            raise DecodeError("cbor: indefinite length on an integer at offset %d" % (pos - 1))
        n, pos = _argument(data, pos, ai)
        return (n if major == 0 else -1 - n), pos
    if major == 2 or major == 3:
        return _string(data, pos, major, ai)
    if major == 4:
        out = []
        if ai == 31:
            while True:
                _need(data, pos, 1)
                if data[pos] == _BREAK:
                    return out, pos + 1
                v, pos = _item(data, pos, depth + 1)
                out.append(v)
        n, pos = _argument(data, pos, ai)
        if n > len(data) - pos:  # each item takes at least one byte
            raise DecodeError("cbor: truncated array at offset %d" % pos)
        for _ in range(n):
            v, pos = _item(data, pos, depth + 1)
            out.append(v)
        return out, pos
    if major == 5:
        return _map(data, pos, ai, depth)
    if major == 6:
        if ai == 31:
            raise DecodeError("cbor: indefinite length on a tag at offset %d" % (pos - 1))
        tag, pos = _argument(data, pos, ai)
        v, pos = _item(data, pos, depth + 1)
        if tag == 2 or tag == 3:
            if not isinstance(v, bytes):
                raise DecodeError("cbor: bignum tag %d must wrap a byte string" % tag)
            n = int.from_bytes(v, "big") if v else 0
            return (n if tag == 2 else -1 - n), pos
        return Tag(tag, v), pos
    # major 7: simple values and floats
    if ai == 20:
        return False, pos
    if ai == 21:
        return True, pos
    if ai == 22:
        return None, pos
    if ai == 25:
        _need(data, pos, 2)
        return _half(int.from_bytes(data[pos:pos + 2], "big")), pos + 2
    if ai == 26 or ai == 27:
        import struct  # only needed for the rare float input

        n = 4 if ai == 26 else 8
        _need(data, pos, n)
        return struct.unpack(">f" if n == 4 else ">d", data[pos:pos + n])[0], pos + n
    if ai == 31:
        raise DecodeError("cbor: unexpected break at offset %d" % (pos - 1))
    if ai in (28, 29, 30):
        raise DecodeError("cbor: reserved additional information %d at offset %d" % (ai, pos - 1))
    raise DecodeError("cbor: unsupported simple value at offset %d" % (pos - 1))


def _map(data, pos, ai, depth):
    # A map (major type 5) after its initial byte: keys must be scalars, never repeated.
    out = {}
    if ai == 31:
        n = -1
    else:
        n, pos = _argument(data, pos, ai)
        if 2 * n > len(data) - pos:
            raise DecodeError("cbor: truncated map at offset %d" % pos)
    while n != 0:
        if n < 0:
            _need(data, pos, 1)
            if data[pos] == _BREAK:
                return out, pos + 1
        kpos = pos
        k, pos = _item(data, pos, depth + 1)
        if isinstance(k, (list, dict, Tag)):
            raise DecodeError("cbor: unsupported map key type at offset %d" % kpos)
        if k in out:
            raise DecodeError("cbor: duplicate map key %r at offset %d" % (k, kpos))
        v, pos = _item(data, pos, depth + 1)
        out[k] = v
        n -= 1
    return out, pos


def loads(data):
    if not isinstance(data, bytes):
        data = bytes(data)
    v, pos = _item(data, 0, 0)
    if pos != len(data):
        raise DecodeError("cbor: %d trailing bytes after the item" % (len(data) - pos))
    return v
