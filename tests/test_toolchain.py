"""The toolchain: micropython-lib fetch (pinned by sha256), the .mpy build, the board path."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from hil import micropython

from .support import load_tool

ROOT = Path(__file__).resolve().parent.parent


def upip_archive(tmp_path: Path) -> tuple[Path, str]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in [("demo-pkg-1.0/demo/mod.py", "X = 42\n"), ("demo-pkg-1.0/setup.py", "")]:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "demo-pkg-1.0.tar.gz"
    path.write_bytes(buf.getvalue())
    return path, hashlib.sha256(buf.getvalue()).hexdigest()


def test_fetch_unpacks_only_listed_modules_and_checks_sha256(tmp_path):
    fetch = load_tool("fetch_mplib")
    archive, sha = upip_archive(tmp_path)
    pkg = {"name": "demo-pkg", "version": "1.0", "url": archive.as_uri(), "sha256": sha,
           "modules": ["demo/mod.py"]}
    lib = tmp_path / "lib"
    fetch.install(pkg, lib, tmp_path / "cache")
    assert (lib / "demo" / "mod.py").read_text() == "X = 42\n"
    assert not (lib / "setup.py").exists()
    out = micropython.run("import demo.mod; print(demo.mod.X)", path=[lib]).stdout
    assert out.strip() == "42"

    with pytest.raises(fetch.FetchError, match="sha256 mismatch"):
        fetch.install({**pkg, "sha256": "0" * 64}, tmp_path / "lib2", tmp_path / "cache2")
    assert not (tmp_path / "lib2").exists()
    with pytest.raises(fetch.FetchError, match="has no demo/other.py"):
        fetch.install({**pkg, "modules": ["demo/other.py"]}, tmp_path / "lib3", tmp_path / "cache")


def test_firmware_runs_from_mpy_only(tmp_path):
    build = load_tool("build_firmware")
    out_dir = tmp_path / "fw"
    built = build.build(out_dir)
    assert out_dir / "agent" / "cbor.mpy" in built
    assert all(p.suffix == ".mpy" for p in built)
    # The .mpy tree alone (no sources on the path) runs the signing code.
    res = micropython.run(
        "from agent import cbor, ecdsa\n"
        "import agent.cbor\n"
        "print(agent.cbor.__file__.endswith('.mpy'), len(ecdsa.sign(b'\\x01' * 32, b'x')))",
        path=[out_dir], mpy=False)
    assert res.stdout.split() == ["True", "64"]


def test_job_cycle_keeps_to_its_interned_name_budget():
    """Each name a cycle module adds is interned for good; past the fifth pool the next one
    costs a 7 KiB pool the 64 KiB heap does not have (tools/qstr_budget.py)."""
    from .support import build_firmware, load_tool

    build_firmware()
    tool = load_tool("qstr_budget")
    found = tool.cycle_names(tool.ROOT / "build" / "firmware")
    distinct = set().union(*found.values())
    assert len(distinct) <= tool.BUDGET, (
        f"{len(distinct)} distinct interned names in a job cycle, budget {tool.BUDGET}: "
        "reuse names, or load the new code outside the cycle (docs/agent.md, Memory)")


def test_selfcheck_in_a_heap_too_small_says_why():
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "hil.cli", "selfcheck", "--heapsize", "8k"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    first = p.stderr.strip().splitlines()[0]
    assert "MemoryError" in first or "heap" in first, p.stderr  # once an empty message
