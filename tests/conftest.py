"""Shared fixtures. Firmware tests run the firmware under the real `micropython`."""

from __future__ import annotations

import pytest

from .support import MicroPythonRunner


@pytest.fixture(scope="session")
def mpy() -> MicroPythonRunner:
    return MicroPythonRunner()
