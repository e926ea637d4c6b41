"""An emulated board: the real firmware (.mpy) in the real micropython, with a heap limit,
a flash of fixed size (LittleFS2 on a file-backed block device, mounted by hil/board/boot.py;
or a plain folder), its UART on an emulated premises' pty, a console driven line by line, a
clock offset, and its network path to the broker through a fault-injecting proxy.

Power: `power_cut()` is SIGKILL at this instant; `boot()` starts again from the same flash.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import micropython
from .flashimage import provision
from .netem import TcpProxy


def check_timeout_multiplier() -> float:
    """HIL_TIMEOUT_MULTIPLIER, or ValueError saying what is wrong with it (the bench's entry
    points check it before anything runs)."""
    text = os.environ.get("HIL_TIMEOUT_MULTIPLIER", "1")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"HIL_TIMEOUT_MULTIPLIER must be a number, got {text[:20]!r}") from None
    if not 0 < value <= 100:
        raise ValueError(f"HIL_TIMEOUT_MULTIPLIER must be more than 0 and at most 100, got {value:g}")
    return value


def timeout_multiplier() -> float:
    """HIL_TIMEOUT_MULTIPLIER (default 1): every bench wait is this many times longer, for a
    loaded machine (hundreds of boards on two cores), as twister's --timeout-multiplier."""
    try:
        return check_timeout_multiplier()
    except ValueError:
        return 1.0  # refused at the entry points (hil run, pytest); never a crash mid-run


def scaled(seconds: float) -> float:
    return seconds * timeout_multiplier()


@dataclass
class BoardSpec:
    """The resource: a passive description of one handheld."""

    name: str
    device_id: str
    heapsize: str = "64k"
    clock_offset: int = 0
    flash_limit: int = 512 * 1024  # bytes of flash
    # "folder": host files the bench can look into; "littlefs": a LittleFS2 image of flash_limit
    # bytes, as on a board (its driver runs in the board's own heap).
    flash: str = "folder"
    config: dict = field(default_factory=dict)


class Board:
    """The driver: provisions the flash, boots, drives the console, pulls the power."""

    def __init__(self, spec: BoardSpec, flash: Path, broker: tuple[str, int], uart: str | None,
                 proxy: bool = True, pki=None):
        self.spec = spec
        self.flash = flash
        self.proxy = TcpProxy(broker).start() if proxy else None
        port = self.proxy.port if self.proxy else broker[1]
        extra = {"backoff_min": 1, "backoff_max": 4, "ack_timeout": 5, "keepalive": 15, **spec.config}
        # With LittleFS, `flash` is the seed folder copied in at first boot; the image is beside it.
        self.public_key = provision(flash, spec.device_id, f"127.0.0.1:{port}", uart, extra=extra, pki=pki)
        self.image = flash.with_suffix(".lfs")
        if spec.flash == "littlefs" and not self.image.exists():
            self.image.write_bytes(b"\xff" * spec.flash_limit)
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self._partial = ""

    # --- power and console ----------------------------------------------------------------
    def argv(self, *args: str) -> list[str]:
        """The board's boot (hil/board/boot.py): its flash, the bench's clock offset, then
        the agent's arguments."""
        boot = [str(micropython.ROOT / "hil" / "board" / "boot.py")]
        boot += [str(self.image), str(self.flash)] if self.spec.flash == "littlefs" else ["--folder", str(self.flash)]
        if self.spec.clock_offset:
            boot += ["--clock-offset", str(self.spec.clock_offset)]
        return micropython.command(self.spec.heapsize) + boot + list(args)

    def boot(self, cut_after_writes: int = 0) -> "Board":
        """Power on. With cut_after_writes (LittleFS only), the power goes in the middle of
        that flash block write: half of it lands, the process dies there."""
        self.check_flash()
        args = []
        if cut_after_writes:
            if self.spec.flash != "littlefs":
                raise ValueError("a cut inside a flash write needs LittleFS flash")
            args = ["--cut-after-writes", str(cut_after_writes)]
        self.proc = subprocess.Popen(self.argv(*args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     env=micropython.environment(micropython.firmware_path(mpy=True)))
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._out_poll = select.poll()  # woken by the board's output, not by a timer
        self._out_poll.register(self.proc.stdout.fileno(), select.POLLIN)
        self.mark = len(self.lines)
        self.expect("READY", start=self.mark)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, line: str) -> int:
        """Send a console line; returns the index of the first output line it may cause."""
        self.pump()
        start = len(self.lines)
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return start

    def pump(self) -> None:
        if self.proc is None:
            return
        try:
            chunk = self.proc.stdout.read()
        except (TypeError, ValueError, OSError):
            chunk = None
        if chunk:
            self._partial += chunk
            *full, self._partial = self._partial.split("\n")
            self.lines.extend(full)

    def expect(self, *prefixes: str, timeout: float = 60, start: int = 0) -> str:
        """The first console line from `start` on that begins with one of `prefixes`; waits
        up to `timeout` seconds times the bench's timeout multiplier, then TimeoutError."""
        end = time.monotonic() + scaled(timeout)
        while True:
            self.pump()
            for line in self.lines[start:]:
                if line.startswith(prefixes):
                    return line
            if not self.running or time.monotonic() > end:
                self.pump()
                for line in self.lines[start:]:
                    if line.startswith(prefixes):
                        return line
                raise TimeoutError(f"{self.spec.name}: no line starting {prefixes}; last lines:\n"
                                   + "\n".join(self.lines[-40:]))
            self._out_poll.poll(max(1, min(200, (end - time.monotonic()) * 1000)))

    def power_cut(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.pump()
        if self._partial:  # a line cut off by the power: it ends here, never joined to the next boot's
            self.lines.append(self._partial)
            self._partial = ""

    def shutdown(self) -> None:
        if self.running:
            try:
                self.send("quit")
                self.proc.wait(10)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self.power_cut()
        if self.proxy:
            self.proxy.stop()

    # --- flash ------------------------------------------------------------------------------
    def outbox(self) -> list[str]:
        """The outbox records (folder flash only: a LittleFS image is read through the console)."""
        d = self.flash / "outbox"
        return sorted(p.name for p in d.glob("*.ev")) if d.exists() else []

    def pending(self) -> int:
        """Events waiting in the outbox, as the board reports them."""
        if self.spec.flash == "folder":
            return len(self.outbox())
        if not self.running:
            self.boot()
        start = self.send("status")
        line = self.expect("STATUS", start=start)
        return int(line.split("outbox=")[1].split("/")[0])

    def flash_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.flash.rglob("*") if p.is_file())

    def check_flash(self) -> None:
        if self.spec.flash == "littlefs":
            return  # the image is its bound: LittleFS reports "no space" itself
        used = self.flash_bytes()
        if used > self.spec.flash_limit:
            raise RuntimeError(f"{self.spec.name}: flash holds {used} bytes, over its {self.spec.flash_limit}")

    def set_config(self, **values: object) -> None:
        p = self.flash / "config.json"
        data = json.loads(p.read_text())
        data.update(values)
        p.write_text(json.dumps(data))

    def saved_ids(self, start: int = 0) -> list[str]:
        """The event ids the console reported saved from line `start` on. The id is the line
        after SAVED: if that line has not come yet, it is waited for (a running board prints
        both, but the two may reach us apart)."""
        self.pump()
        if self.running and self.lines[start:] and self.lines[-1].startswith("SAVED"):
            try:
                self.expect("  ", start=len(self.lines), timeout=5)
            except TimeoutError:
                pass
        ls = self.lines[start:]
        return [ls[i + 1].strip() for i, ln in enumerate(ls[:-1]) if ln.startswith("SAVED")]
