"""Strict CBOR decoding for untrusted input: one item, no trailing bytes, no duplicate
map keys (RFC 9052 §3), a nesting limit. Errors map onto the companion error tree."""

from __future__ import annotations

import io

import cbor2

from .errors import DuplicateKeyError, MalformedError

MAX_DEPTH = 16  # the same limit as the firmware decoder (firmware/agent/cbor.py)


def loads_strict(data: bytes, what: str = "message") -> object:
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
