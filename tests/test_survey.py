"""The firmware's survey (real micropython, .mpy, 64 KiB heap) of emulated premises on
real pseudo-terminals: every profile, a noisy line, a hung hub, a pulled cable."""

from __future__ import annotations

import threading
import time

import pytest

from hil import hub, premises, probes
from hil.premises import Device

# firmware/agent/link.py: SILENCE_MS, ATTEMPT_MS (docs/han-link.md "Timing")
SILENCE_MS, ATTEMPT_MS = 2000, 300


def evidence(result: dict) -> dict:
    assert result["ok"], result
    ev = dict(result["evidence"])
    read_time = ev.pop("read_time")
    assert isinstance(read_time, int)
    if "hub_time" in ev:  # the hub's clock, read by IDENTIFY: true UTC plus the premises' offset
        assert abs(ev.pop("hub_time") - read_time) <= 5
    return ev


def when_requests(h: hub.HubEmulator, n: int, action) -> threading.Thread:
    """Run action() once the hub has seen n requests (a fault or change mid-survey)."""
    def watch() -> None:
        deadline = time.monotonic() + 30
        while h.stats.requests < n and time.monotonic() < deadline:
            time.sleep(0.002)
        action()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("name", [n for n in premises.library() if n != "legacy-meter"])
def test_survey_equals_the_premises(name):
    p = premises.load(name)
    with hub.HubEmulator(p, seed=1) as h:
        result = probes.survey(h.path)
    assert evidence(result) == p.expected_evidence()
    assert result["link"]["attempts"] == result["link"]["requests"]  # a clean line: no retries


def test_legacy_meter_silence_is_no_hub_only_when_declared():
    p = premises.load("legacy-meter")
    with hub.HubEmulator(p) as h:
        declared = probes.survey(h.path, expect_hub=False)
        expected = probes.survey(h.path, expect_hub=True)
    assert evidence(declared) == {"hub": None, "wan": None, "devices": []}
    assert not expected["ok"]
    assert expected["error"] == "HubAbsent"
    assert "no hub answered IDENTIFY" in expected["message"] and "check the cable" in expected["message"]
    assert expected["ms"] < SILENCE_MS + ATTEMPT_MS + 1000


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_noisy_line_still_gives_the_right_survey(seed):
    p = premises.load("smets2-dual-fuel")
    with hub.HubEmulator(p, seed=seed) as h:
        h.faults.corrupt_rate = 0.01
        h.faults.drop_frame_rate = 0.05
        result = probes.survey(h.path, timeout=300)
        assert h.stats.corrupted_bytes > 0
    assert evidence(result) == p.expected_evidence()
    assert result["link"]["attempts"] > result["link"]["requests"], "the faults caused retries"


def test_dropped_bytes_and_delays_are_survived():
    p = premises.load("smets2-electricity")
    with hub.HubEmulator(p, seed=5) as h:
        h.faults.drop_byte_rate = 0.01
        h.faults.delay_ms = 150
        result = probes.survey(h.path, timeout=300)
    assert evidence(result) == p.expected_evidence()


@pytest.mark.parametrize("fault", ["hung", "unplugged"])
def test_hub_going_silent_mid_survey_fails_clearly_in_bounded_time(fault):
    p = premises.load("smets2-dual-fuel")
    with hub.HubEmulator(p) as h:
        when_requests(h, 3, lambda: setattr(h.faults, fault, True))
        result = probes.survey(h.path)
    assert not result["ok"]
    assert result["error"] == "HubTimeout"
    assert result["message"].startswith(f"hub stopped answering: no byte for {SILENCE_MS} ms")
    # docs/han-link.md: a silent hub is reported within SILENCE_MS (+ one attempt) of going quiet.
    assert result["ms"] < SILENCE_MS + 2 * ATTEMPT_MS + 1500


def test_cable_unplugged_and_replugged_quickly_is_survived():
    p = premises.load("smets2-gas")
    with hub.HubEmulator(p) as h:
        def pulse() -> None:
            h.faults.unplugged = True
            time.sleep(0.8)
            h.faults.unplugged = False

        when_requests(h, 2, pulse)
        result = probes.survey(h.path)
    assert evidence(result) == p.expected_evidence()


def test_state_change_mid_survey_restarts_for_a_consistent_snapshot():
    p = premises.load("smets2-electricity")
    joined = Device(eui="00-1B-C5-0C-00-00-01-11", type="GSME", status="InstalledNotCommissioned",
                    mpxn="1234567890", serial="G4P0000109", firmware="1.1.2")
    with hub.HubEmulator(p) as h:
        when_requests(h, 3, lambda: h.add_device(joined))  # after IDENTIFY, WAN, first LOG page
        result = probes.survey(h.path)
        final = h.premises.expected_evidence()
    assert evidence(result) == final
    assert any(d["eui"] == joined.eui for d in final["devices"])


def test_line_of_noise_is_reported_as_unusable():
    p = premises.load("smets2-electricity")
    with hub.HubEmulator(p, seed=3) as h:
        h.faults.corrupt_rate = 0.5  # every frame broken, both ways, but bytes keep coming
        stop = threading.Event()

        def noise() -> None:  # the hub side keeps sending junk, as a bad cable would
            while not stop.is_set():
                h._port.write(bytes([0x7E, 0x01, 0x81, 0x00, 0x00, 0x7E]))
                time.sleep(0.02)

        t = threading.Thread(target=noise, daemon=True)
        t.start()
        try:
            result = probes.survey(h.path, timeout=300)
        finally:
            stop.set()
            t.join()
    assert not result["ok"]
    assert result["error"] == "LineError"
    assert result["message"].startswith("line unusable: no valid answer to IDENTIFY in 30 tries")
