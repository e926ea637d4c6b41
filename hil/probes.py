"""Bench-side helpers that run a probe script on an emulated board (real micropython)."""

from __future__ import annotations

import json
from pathlib import Path

from . import micropython

BOARD = Path(__file__).resolve().parent / "board"


def survey(port: str, *, expect_hub: bool = True, heapsize: str | None = "64k", mpy: bool = True,
           peak: bool = False, timeout: float = 120) -> dict:
    """Survey the premises on ``port`` from a board; the probe's JSON result."""
    args = [port, "1" if expect_hub else "0"] + (["peak"] if peak else [])
    res = micropython.run(script=BOARD / "survey_probe.py", args=args, heapsize=heapsize, mpy=mpy,
                          timeout=timeout)
    return json.loads(res.lines[-1])
