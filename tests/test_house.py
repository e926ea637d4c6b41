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
    """Type-checked, strict (pyproject.toml [tool.mypy]). Incremental, with mypy's cache
    (.mypy_cache): a full check on a fresh clone, a couple of seconds in the `make check` loop."""
    mypy = Path(sys.executable).with_name("mypy")
    p = subprocess.run([str(mypy)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def test_rejection_reasons_are_one_list_documented_and_known_to_the_handheld():
    """companion/errors.py REJECTIONS is every reason: each WireError's, the bridge's own,
    the docs table (docs/bridge.md) names exactly these, and the handheld's hints name no other."""
    import re

    from companion import errors

    wire = {c.reason for c in vars(errors).values()
            if isinstance(c, type) and issubclass(c, errors.WireError) and c is not errors.WireError}
    wire -= {"invalid", "invalid_message"}  # abstract bases
    assert wire == set(errors.WIRE_REASONS)
    doc = (ROOT / "docs" / "bridge.md").read_text()
    table = doc[doc.index("## Ingest"):doc.index("## Flag updates")]
    documented = {code for row in table.splitlines() if row.startswith("| `")
                  for code in re.findall(r"`([a-z0-9_]+)`", row.split("|")[1])}
    assert documented == set(errors.REJECTIONS)
    hints = (ROOT / "firmware" / "agent" / "ackcheck.py").read_text()
    hinted = set(re.findall(r'"([a-z0-9_]+)": "', hints[hints.index("_HINTS = {"):]))
    assert hinted and hinted <= set(errors.REJECTIONS), hinted - set(errors.REJECTIONS)
