"""pytest plugin: the bench's resources and drivers as fixtures.

    pytest_plugins = ["hil.pytest_plugin"]

- `hil_bench`   a Bench (mosquitto and the bridge as processes), one per test session/worker
- `hil_premises` a factory: hil_premises("smets2-gas") -> a running HubEmulator (stopped after the test)
- `hil_run`     a factory: hil_run("smart-for-smart-exchange") -> the scenario's Result on hil_bench
- `hil_handheld` a factory: hil_handheld("smets2-dual-fuel") -> a booted Board (the real firmware in
                the real micropython, 64 KiB heap, .mpy) plugged into that premises and registered
                with the bench's bridge; shut down after the test, its console kept as
                <tmp_path>/<name>.console.log

Options (pytest --help, group "hil"): `--hil-broker embedded|mosquitto` chooses the bench's
broker: the bridge's own (the demo's) or an operator's mosquitto with the shipped
configuration (the default here). Both are secured as shipped. Like pytest-embedded's and
labgrid's, the fixtures hand a test a resource already in the state it needs: a board
booted and registered, a premises running; the test drives them.

Scenario files are tests too: any `*.toml` in a folder named `scenarios` (or named
`*.scenario.toml` anywhere) is collected as one pytest item, so that `pytest hil/scenarios/`,
`pytest path/to/my.scenario.toml -k gas -x --junitxml=out.xml` and `-n auto` work as for any
test. A file that does not load (a typo, an invalid MPAN) is a collection error naming its file
and line, before anything runs. A failed scenario reports its failed checks and its timeline;
each board's console log is kept in the item's folder under pytest's basetemp.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from . import premises, scenario
from .bench import Bench
from .hub import HubEmulator


_HANDHELDS = itertools.count(1)


def pytest_addoption(parser) -> None:
    group = parser.getgroup("hil", "the flagwise hardware-in-the-loop bench")
    group.addoption("--hil-broker", choices=("mosquitto", "embedded"), default="mosquitto",
                    help="the bench's broker: an operator's mosquitto with the shipped configuration "
                         "(default), or the bridge's own")
    group.addoption("--hil-timeout-multiplier", type=float, metavar="X",
                    help="make every bench wait X times longer, for a loaded machine (HIL_TIMEOUT_MULTIPLIER)")


_BENCH = pytest.StashKey[Bench]()


def pytest_configure(config: pytest.Config) -> None:
    multiplier = config.getoption("hil_timeout_multiplier", None)
    if multiplier is not None:
        os.environ["HIL_TIMEOUT_MULTIPLIER"] = str(multiplier)  # xdist workers inherit it
    from .board import check_timeout_multiplier

    try:
        check_timeout_multiplier()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.addinivalue_line("markers", "exclusive: a scenario that restarts the bench's shared broker")


def _tmpdir(config: pytest.Config, name: str) -> Path:
    factory = getattr(config, "_tmp_path_factory", None)  # pytest's basetemp, as tmp_path uses
    return factory.mktemp(name) if factory is not None else Path(tempfile.mkdtemp(prefix=name + "-"))


def shared_bench(config: pytest.Config) -> Bench:
    """One bench per session (per xdist worker), made when first needed, closed at the end;
    the `hil_bench` fixture and the scenario items share it."""
    if _BENCH not in config.stash:
        bench = Bench(_tmpdir(config, "hil-bench"), broker=config.getoption("hil_broker"), say=lambda s: None)
        config.stash[_BENCH] = bench
        config.add_cleanup(bench.close)
    return config.stash[_BENCH]


@pytest.fixture(scope="session")
def hil_bench(pytestconfig):
    return shared_bench(pytestconfig)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".toml" and (file_path.parent.name == "scenarios"
                                        or file_path.name.endswith(".scenario.toml")):
        collector: pytest.Collector = ScenarioFile.from_parent(parent, path=file_path)
        return collector
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        try:
            sc = scenario.load(self.path)
        except scenario.ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        yield ScenarioItem.from_parent(self, name=sc.name, scenario=sc)


class ScenarioFailed(Exception):
    def __init__(self, result: scenario.Result):
        super().__init__(result.failure())
        self.result = result


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: scenario.Scenario, **kwargs: Any):
        super().__init__(**kwargs)
        self.scenario = scenario
        if scenario.exclusive:  # restarts the shared broker: `-m "not exclusive"` leaves it out
            self.add_marker("exclusive")

    def runtest(self) -> None:
        bench = shared_bench(self.config)
        r = scenario.Run(self.scenario, bench, _tmpdir(self.config, self.name), say=lambda s: None).execute()
        self.user_properties += [("seed", r.seed), ("started", r.started), ("boards", str(r.workdir))]
        self.add_report_section("call", "timeline", "\n".join(r.timeline))
        self.add_report_section("call", "checks", "\n".join(
            f"{'ok  ' if c.ok else 'FAIL'} {c.what}: {c.detail}" for c in r.checks))
        if not r.ok:
            raise ScenarioFailed(r)
        if not r.checks:
            raise ScenarioFailed(scenario.Result(r.name, False, r.seconds, error="the scenario checks nothing"))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            r = excinfo.value.result
            lines = [f"scenario {r.name} failed (seed {r.seed}; consoles in {r.workdir})"]
            if r.error:
                lines.append(f"  error: {r.error}")
            lines += [f"  {c.what}: {c.detail}" for c in r.checks if not c.ok]
            return "\n".join([*lines, "--- timeline ---", *r.timeline])
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario: {self.name}"


@pytest.fixture
def hil_premises():
    started: list[HubEmulator] = []

    def make(name: str, seed: int | None = None) -> HubEmulator:
        h = HubEmulator(premises.load(name), seed=seed).start()
        started.append(h)
        return h

    yield make
    for h in started:
        h.stop()


@pytest.fixture
def hil_run(hil_bench, tmp_path):
    def run(name: str) -> scenario.Result:
        return scenario.Run(scenario.load(name), hil_bench, tmp_path / name, say=lambda s: None).execute()

    return run


@pytest.fixture
def hil_handheld(hil_bench, hil_premises, tmp_path):
    """hil_handheld(premises_name, name="hh1", device_id=None, **spec) -> a booted Board plugged
    into a new premises of that name and registered with the bench's bridge."""
    from .board import Board, BoardSpec

    boards: list[Board] = []

    def make(premises_name: str, name: str = "hh1", device_id: str | None = None, **spec) -> Board:
        site = hil_premises(premises_name)
        n = next(_HANDHELDS)  # a device id is never reused with another key: one per board made
        did = device_id or f"70-B3-D5-F1-0F-{os.getpid() % 256:02X}-{n // 256 % 256:02X}-{n % 256:02X}"
        b = Board(BoardSpec(name, did, **spec), tmp_path / name, hil_bench.broker_address, site.path,
                  pki=hil_bench.pki)
        hil_bench.register(did, b.public_key)
        boards.append(b)
        b.boot()
        return b

    yield make
    for b in boards:
        b.shutdown()
        (tmp_path / f"{b.spec.name}.console.log").write_text("\n".join(b.lines) + "\n")
