"""House checks, part of `make test`: ruff over every Python tree (the firmware included,
which ruff reads as Python 3), mypy over the bridge, and one version for the project, the
bridge and the firmware."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    p = subprocess.run([str(ruff), "check", "--no-cache", "companion", "hil", "tools", "tests", "firmware"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_one_version_for_the_project_the_bridge_and_the_firmware():
    import companion

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    firmware = next(ln.split('"')[1] for ln in (ROOT / "firmware" / "agent" / "config.py").read_text().splitlines()
                    if ln.startswith("FIRMWARE = "))
    assert companion.__version__ == project == firmware


def test_mypy_is_clean_on_the_bridge():
    """Type-checked (mypy's defaults; --strict is not yet clean, see the closing notes)."""
    mypy = Path(sys.executable).with_name("mypy")
    p = subprocess.run([str(mypy), "--no-incremental"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
