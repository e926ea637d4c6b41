"""Shared fixtures. Firmware tests run the firmware under the real `micropython`."""

from __future__ import annotations

import pytest

from .support import MicroPythonRunner


@pytest.fixture(scope="session", autouse=True)
def firmware_built() -> None:
    """Keep build/firmware (.mpy) current with firmware/ when pytest runs on its own."""
    from .support import build_firmware

    build_firmware()


@pytest.fixture(scope="session")
def mpy() -> MicroPythonRunner:
    return MicroPythonRunner()


@pytest.fixture
def broker(tmp_path):
    """A real mosquitto on a free loopback port, for this test."""
    from hil.services import Mosquitto

    m = Mosquitto(tmp_path).start()
    yield m
    m.stop()
