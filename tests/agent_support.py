"""The field agent on the bench: real micropython running the .mpy build in a 64 KiB heap,
its flash a folder, its UART an emulated premises' pty, its broker a real mosquitto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from hil import micropython

from .support import load_tool

PROVISION = load_tool("provision")


class Board:
    def __init__(self, flash: Path, device_id: str, broker_port: int, uart: str | None, **cfg):
        self.flash = flash
        self.device_id = device_id
        extra = {"backoff_min": 1, "backoff_max": 2, "ack_timeout": 3, "keepalive": 10, **cfg}
        self.public_key = PROVISION.provision(flash, device_id, f"127.0.0.1:{broker_port}", uart, extra=extra)
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []

    def set(self, **cfg) -> None:
        p = self.flash / "config.json"
        data = json.loads(p.read_text())
        data.update(cfg)
        p.write_text(json.dumps(data))

    def cmd(self, *args: str, heapsize: str = "64k") -> list[str]:
        return micropython.command(heapsize) + ["-m", "agent.main", "--flash", str(self.flash), *args]

    def run(self, *args: str, timeout: float = 120, heapsize: str = "64k") -> tuple[int, list[str]]:
        """One non-interactive run; (exit status, output lines)."""
        p = subprocess.run(self.cmd(*args, heapsize=heapsize), capture_output=True, text=True, timeout=timeout,
                           env=micropython.environment(micropython.firmware_path(mpy=True)))
        return p.returncode, p.stdout.splitlines() + [f"STDERR {ln}" for ln in p.stderr.splitlines()]

    def job(self, jtype: str, mpan: str = "-", mprn: str = "-", ref: str = "WO-1", who: str = "INST-1",
            *extra: str) -> tuple[int, list[str]]:
        return self.run("--job", jtype, mpan, mprn, ref, who, *extra)

    # --- interactive console --------------------------------------------------------------
    def boot(self, heapsize: str = "64k") -> "Board":
        self.proc = subprocess.Popen(self.cmd(heapsize=heapsize), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     env=micropython.environment(micropython.firmware_path(mpy=True)))
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.lines = []
        self.expect("READY")
        return self

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def _pump(self) -> None:
        try:
            chunk = self.proc.stdout.read()
        except (TypeError, ValueError):
            chunk = None
        if chunk:
            self._partial = getattr(self, "_partial", "") + chunk
            *full, self._partial = self._partial.split("\n")
            self.lines.extend(full)

    def expect(self, prefix: str, timeout: float = 30, start: int = 0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self._pump()
            for line in self.lines[start:]:
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None:
                self._pump()
                break
            time.sleep(0.01)
        raise TimeoutError(f"no line starting {prefix!r}; got:\n" + "\n".join(self.lines[-30:]))

    def power_cut(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._pump()

    def shutdown(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.power_cut()

    def outbox(self) -> list[str]:
        d = self.flash / "outbox"
        return sorted(p.name for p in d.glob("*.ev")) if d.exists() else []
