"""Scenario files as pytest items (hil/pytest_plugin.py), run as an engineer would: pytest on
a folder of their own scenarios, with pytest's options."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GAS = (ROOT / "hil" / "scenarios" / "smets2-gas.toml").read_text()


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_a_scenario_with_a_typo_is_a_collection_error_naming_its_line_and_nothing_runs(tmp_path):
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "typo.toml").write_text(GAS.replace('mprn = "9000000102"\n\n[expect]',
                                                                  'mrpn = "9000000102"\n\n[expect]'))
    p = _pytest(tmp_path, "scenarios")
    assert p.returncode == 2, p.stdout
    assert "typo.toml:20: step 1 (job): unknown key 'mrpn'" in p.stdout
    assert "Traceback" not in p.stdout and "passed" not in p.stdout


def test_scenarios_in_a_folder_of_ones_own_run_with_pytest_options_and_a_failure_says_why(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "gas-ok.scenario.toml").write_text(GAS.replace('name = "smets2-gas"', 'name = "gas-ok"'))
    (d / "gas-wrong.scenario.toml").write_text(
        GAS.replace('name = "smets2-gas"', 'name = "gas-wrong"').replace('flag = "A", since', 'flag = "I", since')
        .replace("00-01-02-01\"\n\n[[steps]]", "00-01-02-09\"\n\n[[steps]]"))  # a device id is never reused
    p = _pytest(tmp_path, "mine", "-q", "--junitxml", str(tmp_path / "junit.xml"), "--basetemp", str(tmp_path / "bt"))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "1 failed, 1 passed" in p.stdout
    assert "scenario gas-wrong failed (seed" in p.stdout
    assert "flag 9000000102: want I since" in p.stdout and "got A since" in p.stdout
    assert "--- timeline ---" in p.stdout and "SAVED" in p.stdout
    cases = {c.get("name"): c for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
    assert set(cases) == {"gas-ok", "gas-wrong"}
    assert cases["gas-wrong"].find("failure") is not None and cases["gas-ok"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in cases["gas-ok"].iter("property")}
    assert props["seed"].isdigit() and props["started"].startswith("20")
    consoles = list((tmp_path / "bt").rglob("hh1.console.log"))
    assert len(consoles) == 2 and all("READY" in c.read_text() for c in consoles)

    p = _pytest(tmp_path, "mine", "-q", "-k", "ok", "--basetemp", str(tmp_path / "bt2"))
    assert p.returncode == 0 and "1 passed, 1 deselected" in p.stdout, p.stdout
