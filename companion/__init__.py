"""Companion bridge: verifies handheld events, stores them once, derives DCC Service Flags."""

__version__ = "0.2.0"  # as pyproject.toml and firmware/agent/config.py FIRMWARE (tests/test_house.py)
