"""HAN link framing, the emulated hub's side (docs/han-link.md).

The same frame format as firmware/agent/frame.py, written for CPython; both pass
tests/vectors/han_frames.json.
"""

from __future__ import annotations

FLAG, ESC = 0x7E, 0x7D
MAX_BODY = 256
MAX_PAYLOAD = MAX_BODY - 4
GOOD_RESIDUE = 0xF0B8  # RFC 1662 §C.2


def _table() -> list[int]:
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
        out.append(c)
    return out


_T = _table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    for b in data:
        crc = (crc >> 8) ^ _T[(crc ^ b) & 0xFF]
    return crc


def fcs(data: bytes) -> int:
    return crc16(data) ^ 0xFFFF


def encode(seq: int, ftype: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"frame: payload of {len(payload)} bytes over {MAX_PAYLOAD}")
    body = bytes([seq & 0xFF, ftype & 0xFF]) + payload
    body += fcs(body).to_bytes(2, "little")
    out = bytearray([FLAG])
    for b in body:
        if b in (FLAG, ESC):
            out += bytes([ESC, b ^ 0x20])
        else:
            out.append(b)
    out.append(FLAG)
    return bytes(out)


class Deframer:
    """Bytes in, good frames out as (seq, type, payload); bounded memory."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._esc = False
        self._over = False
        self.good = self.bad_fcs = self.oversize = self.runts = 0

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        frames = []
        for b in data:
            if b == FLAG:
                if self._esc:
                    self.runts += 1
                elif self._over:
                    self.oversize += 1
                elif len(self._buf) >= 4:
                    if crc16(self._buf) == GOOD_RESIDUE:
                        self.good += 1
                        frames.append((self._buf[0], self._buf[1], bytes(self._buf[2:-2])))
                    else:
                        self.bad_fcs += 1
                elif self._buf:
                    self.runts += 1
                self._buf.clear()
                self._esc = self._over = False
            elif b == ESC:
                self._esc = True
            else:
                if self._esc:
                    b ^= 0x20
                    self._esc = False
                if len(self._buf) < MAX_BODY:
                    self._buf.append(b)
                else:
                    self._over = True
        return frames
