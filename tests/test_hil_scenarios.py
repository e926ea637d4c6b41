"""Scenario files: their schema, checked at load, and the step logic. The library itself runs
as pytest items (hil/pytest_plugin.py collects hil/scenarios/*.toml, testpaths in pyproject.toml):
each on emulated boards (real firmware, real micropython), against real mosquitto and the
bridge as a process (the demo runs the same library on the embedded broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil import scenario

ROOT = Path(__file__).resolve().parent.parent


def test_scenario_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[handhelds.hh1]\ndevice_id = "70-B3-D5-F1-00-00-00-01"\n[[steps]]\ndo = "dance"\n')
    with pytest.raises(scenario.ScenarioError, match="'do' must be one of"):
        scenario.load(bad)
    with pytest.raises(scenario.ScenarioError, match="no scenario"):
        scenario.load(tmp_path / "missing.toml")


GOOD = """name = "t"
[premises.home.hub]
chf = "00-1B-C5-0C-00-09-00-01"
[[premises.home.devices]]
eui = "00-1B-C5-0C-00-09-00-10"
type = "ESME"
status = "Commissioned"
mpxn = "1900000002001"
[handhelds.hh1]
device_id = "70-B3-D5-F1-00-09-00-01"

[[steps]]
do = "job"
handheld = "hh1"
type = "commission"
mpan = "1900000002001"
{step}
[expect]
flags = {{ "1900000002001" = {{ flag = "A" {flagextra}}} }}
{expect}
"""


@pytest.mark.parametrize("step,expect,message", [
    ("", "flgs = {}", r"bad.toml:\d+: expect: unknown key 'flgs'"),
    ('code = ["wan_down"]', "", r"bad.toml:12: step 1 \(job\): unknown key 'code'"),
    ('mrpn = "3000123456"', "", "unknown key 'mrpn'"),
    ('[[steps]]\ndo = "override"\nhandheld = "hh1"', "", r"step 2 \(override\): 'reason' required"),
    ('[[steps]]\ndo = "job"\nhandheld = "hh1"\ntype = "commission"\nmpan = "1900000002002"', "",
     r"bad.toml:17: step 2: mpan: '1900000002002' is not a valid MPAN"),
    ('[[steps]]\ndo = "hub"\npremises = "home"', "", r"step 2 \(hub\): 'command' required"),
    ('[[steps]]\ndo = "visit"\nhandheld = "hh2"\npremises = "home"', "", "unknown handheld 'hh2'"),
    ("", 'dtc = ["D0350:1900000002001"]', "must be FLOW:MPXN:FLAG"),
    ('[[steps]]\ndo = "forge"\nhandheld = "hh1"\nkind = "wrong_key"', "",
     r"step 2: kind must be one of bad_signature, tampered, unregistered, other_topic, replay"),
    ('[[steps]]\ndo = "forge"\nhandheld = "hh1"\nkind = "replay"\ncount = 0', "", "count must be 1 to 1000"),
    ('[[steps]]\ndo = "revoke"\nhandheld = "hh1"\nat = "2026-11-27 10:00"', "", "at: .*no time zone"),
    ('[[steps]]\ndo = "survey"\nhandheld = "hh1"\nexpect = "saved"', "",
     "expect must be one of ok, error, got .saved."),
    ('[[steps]]\ndo = "wait"\nseconds = "soon"', "", r"step 2: seconds must be a number from 0 to 3600"),
    ('[[steps]]\ndo = "power_cut"\nhandheld = "hh1"\ninside_write = 3\nafter = "SENT"', "",
     "inside_write arms a cut at a flash write"),
    ('[[steps]]\ndo = "job"\nhandheld = "hh1"\ntype = "instal"', "", "type must be one of install, commission"),
    ("", "converge = \"long\"", "converge must be 0 to 3600 seconds"),
    ("", "rejected = { hh9 = [\"bad_signature\"] }", "expect.rejected: unknown key 'hh9'"),
    ("", "no_event_lost = \"yes\"", "no_event_lost must be true or false"),
])
def test_a_typo_fails_at_load_with_its_line(tmp_path, step, expect, message):
    """A key the runner does not know would check nothing and pass: refused before a run."""
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.format(step=step, expect=expect, flagextra=""))
    with pytest.raises(scenario.ScenarioError, match=message):
        scenario.load(bad)
    good = tmp_path / "good.toml"
    good.write_text(GOOD.format(step="", expect="", flagextra=""))
    assert scenario.load(good).steps[0]["type"] == "commission"


def test_hil_run_refuses_a_typo_before_running(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "typo.toml"
    bad.write_text(GOOD.format(step="", expect="flgs = {}", flagextra=""))
    p = subprocess.run([sys.executable, "-m", "hil.cli", "run", str(bad), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "unknown key 'flgs'" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "out" / "report.md").exists()


def test_the_noise_seed_is_the_same_in_every_process(tmp_path):
    """hash() of a str changes per process: a noisy failure could not be replayed."""
    import subprocess
    import sys

    code = "from hil import scenario; print(scenario.load('noisy-serial-line').seed)"
    seeds = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={"PYTHONHASHSEED": str(n), "PATH": "/usr/bin"}).stdout.strip() for n in (1, 2)}
    assert len(seeds) == 1 and seeds.pop().isdigit()
    bad = tmp_path / "bad.toml"
    bad.write_text('seed = "x"\n' + GOOD.format(step="", expect="", flagextra=""))
    with pytest.raises(scenario.ScenarioError, match="seed must be a whole number"):
        scenario.load(bad)


class _ConsoleOnly:
    """A board's console and power switch, no firmware: for the step logic alone."""

    def __init__(self, lines: list[str]):
        self.lines, self.mark, self.cut_at = list(lines), 0, None

    def expect(self, *tags: str, start: int = 0, timeout: float = 60) -> str:
        for i in range(start, len(self.lines)):
            if self.lines[i].startswith(tags):
                self.cut_at = i
                return self.lines[i]
        self.lines.append(f"{tags[0]} later")  # what the board prints next
        self.cut_at = len(self.lines) - 1
        return self.lines[-1]

    def power_cut(self) -> None:
        pass

    def saved_ids(self, start: int = 0) -> list[str]:
        return []


def test_power_cut_after_a_tag_waits_for_a_new_line_not_an_old_one(tmp_path):
    """`power_cut after=SENT` pulls the power at the next SENT, from the step before it on: a
    SENT printed two steps earlier in the same boot no longer triggers it at once."""
    run = scenario.Run.__new__(scenario.Run)
    board = _ConsoleOnly(["READY", "SENT 0123 (an earlier job's)", "ACKED 0123 stored"])
    run.boards, run.saved = {"hh1": board}, {"hh1": []}
    run._mark_step()  # the step before: a wait
    board.lines.append("STATUS outbox=1/100")
    run._mark_step()  # the power cut
    run._step({"do": "power_cut", "handheld": "hh1", "after": "SENT", "reboot": False})
    assert board.cut_at == len(board.lines) - 1 and board.lines[board.cut_at] == "SENT later"



@pytest.mark.parametrize("extra,message", [
    (', history = ["A", "X"]', "history must be a list of A, I and N"),
    (', devices = ["ESME"]', "devices must be a list of TYPE:STATUS"),
    (', dtc = "one"', "dtc must be a whole number"),
    (', reasn = "x"', "unknown key 'reasn'"),
    (', since = "tomorrow"', "since must be YYYY-MM-DD or day"),
    (', override = "yes"', "override must be true or false"),
])
def test_flag_expectations_are_checked_at_load(tmp_path, extra, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.format(step="", expect="", flagextra=extra))
    with pytest.raises(scenario.ScenarioError, match=message):
        scenario.load(bad)


def test_every_step_in_the_registry_is_documented_and_every_documented_step_exists():
    from hil.steps import REGISTRY

    lines = (ROOT / "docs" / "scenarios.md").read_text().splitlines()
    start = lines.index("| `do` | keys | effect |") + 2
    rows = lines[start:lines.index("", start)]
    named = {r.split("`")[1] for r in rows}
    assert named == set(REGISTRY), f"documented only: {named - set(REGISTRY)}; undocumented: {set(REGISTRY) - named}"
    for name, kind in REGISTRY.items():
        text = " ".join(r.split("|")[2] for r in rows if r.split("`")[1] == name)
        for key in sorted(kind.required | kind.optional):
            assert f"`{key}`" in text, f"docs/scenarios.md: step {name}: key {key} is not documented"


def test_poll_until_returns_what_it_last_saw():
    from hil.steps import poll_until

    seen = iter(range(100))
    assert poll_until(lambda: ((n := next(seen)) == 3, n), timeout=5, interval=0) == (True, 3)
    calls = []
    done, value = poll_until(lambda: (calls.append(1) or False, len(calls)), timeout=0.05, interval=0.01)
    assert not done and value == len(calls) >= 2
    assert poll_until(lambda: (False, "once"), timeout=0) == (False, "once")  # at least one look


@pytest.mark.parametrize("value,message", [("abc", "must be a number"), ("0", "more than 0 and at most 100")])
def test_a_bad_timeout_multiplier_is_refused_before_anything_runs(value, message):
    import os
    import subprocess
    import sys

    hil = Path(sys.executable).with_name("hil")
    p = subprocess.run([str(hil), "run", "smets2-gas"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "HIL_TIMEOUT_MULTIPLIER": value})
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
