"""The field agent on the bench for tests: hil's emulated board (real micropython, the .mpy
build, a 64 KiB heap, flash in a folder), straight to the broker, plus one-shot runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hil import micropython
from hil.board import Board as HilBoard
from hil.board import BoardSpec


class Board(HilBoard):
    def __init__(self, flash: Path, device_id: str, broker_port: int, uart: str | None, pki=None, **cfg):
        spec = BoardSpec(flash.name, device_id, flash="folder",
                         config={"backoff_max": 2, "ack_timeout": 3, "keepalive": 10, **cfg})
        super().__init__(spec, flash, ("127.0.0.1", broker_port), uart, proxy=False, pki=pki)

    set = HilBoard.set_config

    def run(self, *args: str, timeout: float = 120) -> tuple[int, list[str]]:
        """One non-interactive run; (exit status, output lines, then stderr as STDERR lines)."""
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                           env=micropython.environment(micropython.firmware_path(mpy=True)))
        return p.returncode, p.stdout.splitlines() + [f"STDERR {ln}" for ln in p.stderr.splitlines()]

    def job(self, jtype: str, mpan: str = "-", mprn: str = "-", ref: str = "WO-1", who: str = "INST-1",
            *extra: str) -> tuple[int, list[str]]:
        return self.run("--job", jtype, mpan, mprn, ref, who, *extra)
