# Identifiers of GB smart metering, validated on the way in (docs/wire.md).
#
# MPAN core: 13 digits, the last a check digit: (sum of the first 12 digits
# times 3 5 7 13 17 19 23 29 31 37 41 43) mod 11 mod 10.
# MPRN: 6 to 10 digits (DUIS allows a string of 1..10; in practice 6..10).
# No MPRN check digit is enforced: its only source is unofficial.
# EUI-64 device id: XX-XX-XX-XX-XX-XX-XX-XX, hex (DUIS DeviceID pattern).
from micropython import const

_MPAN_WEIGHTS = (3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43)
_MPRN_MIN = const(6)
_MPRN_MAX = const(10)
_HEX = "0123456789ABCDEF"


def _digits(s):
    if not isinstance(s, str) or not s:
        return False
    for c in s:
        if c < "0" or c > "9":
            return False
    return True


def mpan_check_digit(first12):
    total = 0
    for i in range(12):
        total += (ord(first12[i]) - 48) * _MPAN_WEIGHTS[i]
    return total % 11 % 10


def check_mpan(s):
    # Returns the MPAN core, or raises ValueError saying what is wrong.
    if not _digits(s) or len(s) != 13:
        raise ValueError("MPAN core must be 13 digits: %r" % (s,))
    if mpan_check_digit(s) != ord(s[12]) - 48:
        raise ValueError("MPAN core check digit mismatch: %r" % (s,))
    return s


def check_mprn(s):
    if not _digits(s) or not _MPRN_MIN <= len(s) <= _MPRN_MAX:
        raise ValueError("MPRN must be %d to %d digits: %r" % (_MPRN_MIN, _MPRN_MAX, s))
    return s


def eui64_bytes(s):
    # "00-1A-2B-3C-4D-5E-6F-70" (either case) -> 8 bytes.
    if not isinstance(s, str) or len(s) != 23:
        raise ValueError("EUI-64 must be XX-XX-XX-XX-XX-XX-XX-XX: %r" % (s,))
    out = bytearray(8)
    for i in range(8):
        hi = _HEX.find(s[3 * i].upper())
        lo = _HEX.find(s[3 * i + 1].upper())
        if hi < 0 or lo < 0 or (i < 7 and s[3 * i + 2] != "-"):
            raise ValueError("EUI-64 must be XX-XX-XX-XX-XX-XX-XX-XX: %r" % (s,))
        out[i] = hi * 16 + lo
    return bytes(out)


def eui64_text(b):
    if not isinstance(b, (bytes, bytearray)) or len(b) != 8:
        raise ValueError("EUI-64 must be 8 bytes")
    return "-".join("%02X" % x for x in b)
