"""pytest plugin: the bench's resources and drivers as fixtures.

    pytest_plugins = ["hil.pytest_plugin"]

- `hil_bench`   a Bench (mosquitto and the bridge as processes), one per test session/worker
- `hil_premises` a factory: hil_premises("smets2-gas") -> a running HubEmulator (stopped after the test)
- `hil_run`     a factory: hil_run("smart-for-smart-exchange") -> the scenario's Result on hil_bench
"""

from __future__ import annotations

import pytest

from . import premises, scenario
from .bench import Bench
from .hub import HubEmulator


@pytest.fixture(scope="session")
def hil_bench(tmp_path_factory):
    bench = Bench(tmp_path_factory.mktemp("hil-bench"), broker="mosquitto", say=lambda s: None)
    yield bench
    bench.close()


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
