"""The interned names a job cycle adds to the handheld's heap (docs/agent.md "Memory").

MicroPython interns every name and short string of a .mpy module when it loads, for good,
in pools that double in size. On the 64-bit unix port the fifth pool holds the job cycle's
names; one name past it allocates a sixth pool of about 7 KiB, which a 64 KiB heap in the
middle of a job does not have (measured: the ack check, then the next job, fail with
MemoryError). This counts the distinct interned names of the cycle's modules from their
.mpy qstr tables, so that a test can hold the firmware to a budget.

Usage: python tools/qstr_budget.py [BUILD_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every module a job cycle loads (boot, console, survey, checks, prediction, sign, save,
# deliver, ack).
CYCLE = ["agent/main", "agent/start", "agent/config", "agent/identity", "agent/outbox", "agent/flash",
         "agent/console", "agent/jobrun", "agent/survey", "agent/link", "agent/uart", "agent/frame",
         "agent/ids", "agent/jobs", "agent/saving", "agent/event", "agent/cbor", "agent/cose",
         "agent/ecdsa", "agent/delivery", "agent/mqttc", "agent/stage", "agent/ackcheck",
         "agent/cborlite",
         "agent/ecverify", "agent/ecpoint", "agent/words", "agent/predict", "agent/clock"]
# Measured with micropython.qstr_info() (the bench's `mem` command): with 617 names in these
# tables, a whole console session interns 588 at run time; the fifth pool ends near 610.
BUDGET = 630


def _uint(b: bytes, i: int) -> tuple[int, int]:
    n = 0
    while True:
        c = b[i]
        i += 1
        n = (n << 7) | (c & 0x7F)
        if not c & 0x80:
            return n, i


def names(mpy: Path) -> list[str]:
    """The names a .mpy (format 6) interns when loaded: its qstr table, less the static
    ones the interpreter has in ROM."""
    b = mpy.read_bytes()
    if b[:1] != b"M" or b[1] != 6:
        raise ValueError(f"{mpy}: not a version 6 .mpy")
    i = 4
    n_qstr, i = _uint(b, i)
    _, i = _uint(b, i)
    out = []
    for _ in range(n_qstr):
        n, i = _uint(b, i)
        if n & 1:  # a static qstr, by index
            continue
        n >>= 1
        out.append(b[i:i + n].decode())
        i += n + 1
    return out


def cycle_names(build: Path) -> dict[str, list[str]]:
    return {m: names(build / f"{m}.mpy") for m in CYCLE}


def main() -> int:
    build = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "firmware"
    seen: set[str] = set()
    for module, qs in cycle_names(build).items():
        new = [q for q in qs if q not in seen]
        seen.update(qs)
        print(f"{module:22} {len(new):4} new of {len(qs)}")
    print(f"distinct interned names in a job cycle: {len(seen)} (budget {BUDGET})")
    return 0 if len(seen) <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
