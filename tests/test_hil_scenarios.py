"""The scenario library on emulated boards (real firmware, real micropython), against real
mosquitto and the bridge as a process (the demo runs the same library on the embedded broker)."""

from __future__ import annotations

import pytest

from hil import scenario


@pytest.mark.parametrize("name", scenario.library())
def test_scenario(hil_run, name):
    r = hil_run(name)
    failed = [f"{c.what}: {c.detail}" for c in r.checks if not c.ok]
    assert r.ok, "\n".join([r.error or "", *failed, "--- timeline ---", *r.timeline])
    assert r.checks, "a scenario checks something"


def test_scenario_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[handhelds.hh1]\ndevice_id = "70-B3-D5-F1-00-00-00-01"\n[[steps]]\ndo = "dance"\n')
    with pytest.raises(scenario.ScenarioError, match="'do' must be one of"):
        scenario.load(bad)
    with pytest.raises(scenario.ScenarioError, match="no scenario"):
        scenario.load(tmp_path / "missing.toml")
