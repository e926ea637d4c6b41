# HAN link framing (docs/han-link.md): HDLC-like, after RFC 1662.
#
#   0x7E | stuffed( seq | type | payload | FCS16 ) | 0x7E
#
# Byte stuffing per RFC 1662 §4.2 (0x7E and 0x7D sent as 0x7D, b ^ 0x20); FCS is
# CRC-16/X.25 (RFC 1662 §C.2: reflected poly 0x8408, init 0xFFFF, complemented),
# sent least significant byte first. A body (seq..FCS, unstuffed) is at most MAX_BODY.
from micropython import const

FLAG = const(0x7E)
ESC = const(0x7D)
MAX_BODY = const(256)
MAX_PAYLOAD = const(252)  # MAX_BODY - seq - type - FCS

# CRC-16/X.25 by nibbles: 16 entries instead of 256.
_NIB = (
    0x0000, 0x1081, 0x2102, 0x3183, 0x4204, 0x5285, 0x6306, 0x7387,
    0x8408, 0x9489, 0xA50A, 0xB58B, 0xC60C, 0xD68D, 0xE70E, 0xF78F,
)


def crc16(data, crc=0xFFFF):
    # Running register; the FCS is crc16(body) ^ 0xFFFF.
    for b in data:
        crc ^= b
        crc = (crc >> 4) ^ _NIB[crc & 15]
        crc = (crc >> 4) ^ _NIB[crc & 15]
    return crc


def fcs(data):
    return crc16(data) ^ 0xFFFF


def encode(seq, ftype, payload=b""):
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("frame: payload of %d bytes over %d" % (len(payload), MAX_PAYLOAD))
    body = bytearray((seq & 0xFF, ftype & 0xFF))
    body.extend(payload)
    f = fcs(body)
    body.append(f & 0xFF)
    body.append(f >> 8)
    out = bytearray((FLAG,))
    for b in body:
        if b == FLAG or b == ESC:
            out.append(ESC)
            out.append(b ^ 0x20)
        else:
            out.append(b)
    out.append(FLAG)
    return bytes(out)


class Deframer:
    # Feed it bytes as they arrive; it returns the frames whose FCS is good, as
    # (seq, type, payload) tuples. Memory is bounded: one MAX_BODY buffer, whatever
    # the input. Bad frames are counted, never raised: the link retries.

    def __init__(self):
        self._buf = bytearray(MAX_BODY)
        self._n = 0
        self._esc = False
        self._over = False
        self.good = 0
        self.bad_fcs = 0
        self.oversize = 0
        self.runts = 0

    def reset(self):
        self._n = 0
        self._esc = False
        self._over = False

    def feed(self, data):
        frames = None
        buf = self._buf
        for b in data:
            if b == FLAG:
                if self._esc:  # 0x7D 0x7E: abort sequence (RFC 1662 §4.2)
                    self.runts += 1
                elif self._over:
                    self.oversize += 1
                elif self._n >= 4:
                    n = self._n
                    if crc16(memoryview(buf)[:n]) == 0xF0B8:  # good-FCS residue, RFC 1662 §C.2
                        self.good += 1
                        if frames is None:
                            frames = []
                        frames.append((buf[0], buf[1], bytes(memoryview(buf)[2:n - 2])))
                    else:
                        self.bad_fcs += 1
                elif self._n:
                    self.runts += 1
                self.reset()
            elif b == ESC:
                self._esc = True
            else:
                if self._esc:
                    b ^= 0x20
                    self._esc = False
                if self._n < MAX_BODY:
                    buf[self._n] = b
                    self._n += 1
                else:
                    self._over = True
        return frames or ()
