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
"""

from __future__ import annotations

import itertools
import os

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


@pytest.fixture(scope="session")
def hil_bench(tmp_path_factory, pytestconfig):
    bench = Bench(tmp_path_factory.mktemp("hil-bench"), broker=pytestconfig.getoption("hil_broker"),
                  say=lambda s: None)
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
