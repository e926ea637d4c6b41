"""GB metering identifiers: MPAN core, MPRN, EUI-64 device id (docs/wire.md).

- MPAN core: 13 digits; check digit = (sum of the first 12 digits times
  3 5 7 13 17 19 23 29 31 37 41 43) mod 11 mod 10.
- MPRN: 6 to 10 digits. No check digit is enforced (its only source is unofficial).
- EUI-64: ``XX-XX-XX-XX-XX-XX-XX-XX`` in hex (the DUIS DeviceID pattern).
"""

from __future__ import annotations

import operator
import re

from companion.wire.cbor import summary as _summary

MPAN_WEIGHTS = (3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43)
MPRN_MIN, MPRN_MAX = 6, 10
_EUI64 = re.compile(r"[A-Fa-f0-9]{2}(-[A-Fa-f0-9]{2}){7}")


def mpan_check_digit(first12: str) -> int:
    return int(sum(map(operator.mul, map(int, first12), MPAN_WEIGHTS))) % 11 % 10


def check_mpan(value: object) -> str:
    if not isinstance(value, str) or len(value) != 13 or not value.isascii() or not value.isdigit():
        raise ValueError(f"MPAN core must be 13 digits: {_summary(value)}")
    if mpan_check_digit(value[:12]) != int(value[12]):
        raise ValueError(f"MPAN core check digit mismatch: {_summary(value)}")
    return value


def check_mprn(value: object) -> str:
    if (
        not isinstance(value, str)
        or not value.isascii()
        or not value.isdigit()
        or not MPRN_MIN <= len(value) <= MPRN_MAX
    ):
        raise ValueError(f"MPRN must be {MPRN_MIN} to {MPRN_MAX} digits: {_summary(value)}")
    return value


def check_mpxn(value: object) -> str:
    """An MPAN core (13 digits) or an MPRN (6 to 10 digits)."""
    if isinstance(value, str) and len(value) == 13:
        return check_mpan(value)
    return check_mprn(value)


def is_mpan(mpxn: str) -> bool:
    return len(mpxn) == 13


def eui64_text(raw: bytes) -> str:
    if not isinstance(raw, bytes) or len(raw) != 8:
        raise ValueError(f"EUI-64 must be 8 bytes, got {_summary(raw)}")
    return raw.hex("-").upper()


def is_eui64(text: object) -> bool:
    """XX-XX-XX-XX-XX-XX-XX-XX in hex, either case (the DUIS DeviceID pattern)."""
    return isinstance(text, str) and _EUI64.fullmatch(text) is not None


def eui64_bytes(text: str) -> bytes:
    if not isinstance(text, str) or not _EUI64.fullmatch(text):
        raise ValueError(f"EUI-64 must be XX-XX-XX-XX-XX-XX-XX-XX: {_summary(text)}")
    return bytes.fromhex(text.replace("-", ""))
