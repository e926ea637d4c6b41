"""The wire-format self-check: the firmware (built .mpy, 64 KiB heap, real micropython)
makes a key and signs events; the companion verifies them and refuses tampered ones."""

from __future__ import annotations

import time
from typing import Callable

from companion.errors import WireError
from companion.wire.cose import verify_event

from . import micropython

FIRMWARE_SIDE = """
import json, time
from agent import cose, ecdsa, event
key = ecdsa.generate_key()
kid = b"\\x70\\xb3\\xd5\\xf1\\x00\\x00\\x00\\x01"
hub = {"chf": "00-1B-C5-0C-00-00-00-01", "gpf": "00-1B-C5-0C-00-00-00-02", "generation": "SMETS2"}
ev = {"type": "commission", "mpans": ["1312345678907"], "mprns": ["1234567890"],
      "job": "SELFCHECK-1", "installer": "INST-0001", "time": 1795860000, "firmware": "0.1.0",
      "evidence": {"read_time": 1795859990, "hub": hub, "wan": {"connected": True, "signal": -70},
                   "devices": [{"eui": "00-1B-C5-0C-00-00-00-10", "type": "ESME",
                                "status": "Commissioned", "mpxn": "1312345678907"},
                               {"eui": "00-1B-C5-0C-00-00-00-11", "type": "GSME",
                                "status": "Commissioned", "mpxn": "1234567890"}]}}
print(ecdsa.public_key(key).hex())
for i in range(N):
    ev["id"] = event.new_id()
    ev["counter"] = i
    t0 = time.ticks_us()
    msg = cose.sign1(event.build(ev), key, kid)
    print(time.ticks_diff(time.ticks_us(), t0), msg.hex())
"""


def run(n: int = 5, heapsize: str = "64k", say: Callable[[str], None] = print) -> bool:
    say(f"firmware: signing {n} events under micropython -X heapsize={heapsize} (.mpy build)")
    t0 = time.perf_counter()
    res = micropython.run(f"N = {n}\n" + FIRMWARE_SIDE, heapsize=heapsize, mpy=True)
    pub, *lines = res.lines
    say(f"  device public key {pub[:24]}… (process {time.perf_counter() - t0:.2f} s)")
    key = bytes.fromhex(pub)
    ok = len(lines) == n
    for i, line in enumerate(lines):
        us, hexmsg = line.split()
        msg = bytes.fromhex(hexmsg)
        try:
            v = verify_event(msg, key)
        except WireError as exc:
            say(f"  event {i}: REJECTED ({exc.reason}: {exc})")
            ok = False
            continue
        ev = v.event
        say(f"  event {i}: built+signed in {int(us) / 1000:.1f} ms, {len(msg)} B; verified: "
            f"id {ev.id_hex[:8]}… {ev.type} {','.join(ev.mpxns)} counter {ev.counter}")
        tampered = bytearray(msg)
        tampered[len(msg) // 2] ^= 0x01
        try:
            verify_event(bytes(tampered), key)
        except WireError as exc:
            say(f"           tampered copy refused: {exc.reason}")
        else:
            say("           tampered copy ACCEPTED")
            ok = False
    say("selfcheck: " + ("OK" if ok else "FAILED"))
    return ok
