"""Strict CBOR decoding for untrusted input: one item, no trailing bytes, no duplicate
map keys (RFC 9052 §3), a nesting limit. Errors map onto the companion error tree."""

from __future__ import annotations

import io

import cbor2

from companion.errors import DuplicateKeyError, MalformedError, NotSign1Error

MAX_DEPTH = 16  # the same limit as the firmware decoder (firmware/agent/cbor.py)
MAX_ITEMS = 4096  # data items in one decode; a 4 KB message has fewer than that


def _arg(data: bytes, pos: int, ai: int) -> tuple[int, int]:
    if ai < 24:
        return ai, pos
    if ai > 27:
        raise MalformedError(f"reserved or indefinite length (additional information {ai}) at offset {pos - 1}")
    n = 1 << (ai - 24)
    if pos + n > len(data):
        raise MalformedError(f"truncated at offset {pos}")
    return int.from_bytes(data[pos:pos + n], "big"), pos + n


# What each initial byte needs, so the walk below does one table look-up an item
# (RFC 8949 §3): _SKIP, bytes to step over (an integer's or a float's argument, a short
# string's content); _STR, a string whose length follows in _ARG bytes; _ARRAY and _MAP,
# containers of _ARG items (pairs) or, with _WIDE, whose count follows in _ARG bytes;
# _TAG; _BAD, what this profile never uses (indefinite lengths, reserved values, other
# simple values).
_SKIP, _STR, _ARRAY, _MAP, _WIDE_ARRAY, _WIDE_MAP, _TAG, _BAD = range(8)


def _table() -> tuple[bytes, bytes]:
    kind, arg = bytearray([_BAD] * 256), bytearray(256)
    for ib in range(256):
        major, ai = ib >> 5, ib & 31
        if major in (0, 1, 2, 3, 4, 5, 6) and ai < 28:
            wide = 1 << (ai - 24) if ai >= 24 else 0
            if major in (0, 1):
                kind[ib], arg[ib] = _SKIP, wide
            elif major in (2, 3):
                kind[ib], arg[ib] = (_STR, wide) if wide else (_SKIP, ai)
            elif major == 4:
                kind[ib], arg[ib] = (_WIDE_ARRAY, wide) if wide else (_ARRAY, ai)
            elif major == 5:
                kind[ib], arg[ib] = (_WIDE_MAP, wide) if wide else (_MAP, 2 * ai)
            else:
                kind[ib] = _TAG
        elif major == 7 and ai in (20, 21, 22):
            kind[ib] = _SKIP
        elif major == 7 and ai in (25, 26, 27):
            kind[ib], arg[ib] = _SKIP, 1 << (ai - 24)
    return bytes(kind), bytes(arg)


_KIND, _ARG = _table()


def _refuse(what: str, ib: int, at: int) -> MalformedError:
    major, ai = ib >> 5, ib & 31
    if major == 7:
        return MalformedError(f"{what}: CBOR simple value {ai} at offset {at} is not used")
    if ai == 31:
        return MalformedError(f"{what}: indefinite length at offset {at} is not used")
    return MalformedError(f"reserved or indefinite length (additional information {ai}) at offset {at}")


def check_shape(data: bytes, top_tag: int | None = None, what: str = "message") -> None:
    """Walk the CBOR item's heads before anything decodes it: definite lengths only, at most
    MAX_DEPTH deep and MAX_ITEMS items, and no tag at all except TOP_TAG on the outermost
    item. Value-sharing (tags 28/29), bignums, dates and every other tag the schema does not
    use are refused here, so nothing downstream can expand them (shared/pitfalls.md)."""
    kinds, args = _KIND, _ARG
    pos, end = 0, len(data)
    left = 1  # items still to read at the open level
    outer: list[int] = []  # the same for each level around it
    items = 0
    while True:
        if not left:
            if not outer:
                break
            left = outer.pop()
            continue
        left -= 1
        if pos >= end:
            raise MalformedError(f"{what}: truncated at offset {pos}")
        ib = data[pos]
        pos += 1
        items += 1
        k = kinds[ib]
        if k == _SKIP:
            pos += args[ib]
            continue
        if items > MAX_ITEMS:
            raise MalformedError(f"{what}: more than {MAX_ITEMS} CBOR items")
        if k == _STR:
            n, pos = _arg(data, pos, ib & 31)
            pos += n
            if pos > end:
                raise MalformedError(f"{what}: truncated string")
            continue
        if k == _ARRAY or k == _MAP:
            count = args[ib]
        elif k == _WIDE_ARRAY or k == _WIDE_MAP:
            n, pos = _arg(data, pos, ib & 31)
            count = n if k == _WIDE_ARRAY else 2 * n
        elif k == _TAG:
            n, pos = _arg(data, pos, ib & 31)
            if items == 1 and top_tag is not None and n != top_tag:
                raise NotSign1Error(f"{what}: CBOR tag {n} where tag {top_tag} belongs")
            if not (n == top_tag and items == 1):
                raise MalformedError(f"{what}: CBOR tag {n} at offset {pos - 1} is not used by this schema")
            count = 1
        else:
            raise _refuse(what, ib, pos - 1)
        if count > end - pos:
            raise MalformedError(f"{what}: truncated container at offset {pos}")
        outer.append(left)
        left = count
        if len(outer) > MAX_DEPTH:
            raise MalformedError(f"{what}: CBOR nested too deeply")
    if items > MAX_ITEMS:
        raise MalformedError(f"{what}: more than {MAX_ITEMS} CBOR items")
    if pos > end:
        raise MalformedError(f"{what}: truncated at offset {end}")


def summary(value: object, limit: int = 24) -> str:
    """Attacker data in a message: its type and size and a short prefix, never a full repr."""
    if isinstance(value, (bytes, bytearray)):
        return f"bytes[{len(value)}] {bytes(value[:limit // 2]).hex()}" + ("…" if len(value) > limit // 2 else "")
    if isinstance(value, str):
        return f"'{value[:limit]}'" + (f"… ({len(value)} chars)" if len(value) > limit else "")
    if value is None or isinstance(value, (bool, int)):
        text = str(value)
        return text if len(text) <= limit else f"int of {len(text)} digits"
    size = len(value) if hasattr(value, "__len__") else 0
    return f"{type(value).__name__}[{size}]"


def loads_strict(data: bytes, what: str = "message", top_tag: int | None = None) -> object:
    check_shape(data, top_tag, what)
    fp = io.BytesIO(data)
    try:
        obj = cbor2.CBORDecoder(fp, allow_duplicate_keys=False, max_depth=MAX_DEPTH).decode()
    except cbor2.CBORDecodeError as exc:
        # cbor2 has no distinct exception class for this; its message is pinned by a test.
        if "Duplicate map key" in str(exc):
            raise DuplicateKeyError(f"{what}: duplicate map key ({exc})") from exc
        raise MalformedError(f"{what}: not well-formed CBOR ({exc})") from exc
    except RecursionError as exc:
        raise MalformedError(f"{what}: CBOR nested too deeply") from exc
    rest = len(data) - fp.tell()
    if rest:
        raise MalformedError(f"{what}: {rest} trailing bytes after the CBOR item")
    return obj
