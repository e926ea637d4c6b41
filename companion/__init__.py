"""Companion bridge: verifies handheld events, stores them once, derives DCC Service Flags."""

__version__ = "0.1.0"
