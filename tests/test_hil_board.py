"""An emulated board with LittleFS flash of fixed size (hil/board/boot.py), through the
pytest plugin's fixtures: power cuts, a full flash, the network path's faults."""

from __future__ import annotations

import random
import time

from hil.board import Board, BoardSpec


def make_board(hil_bench, tmp_path, site, name: str, device: str, **spec) -> Board:
    spec = {"flash": "littlefs", **spec}  # the filesystem a board has, in the same 64 KiB heap
    b = Board(BoardSpec(name, device, **spec), tmp_path / name, hil_bench.broker_address, site.path, pki=hil_bench.pki)
    hil_bench.register(device, b.public_key)
    return b


def test_power_cuts_on_littlefs_lose_nothing(hil_bench, hil_premises, tmp_path):
    site = hil_premises("smets2-dual-fuel")
    b = make_board(hil_bench, tmp_path, site, "lfs", "70-B3-D5-F1-00-02-00-01")
    rnd = random.Random(11)
    told: set[str] = set()
    try:
        for n in range(8):
            b.boot()
            start = b.send(f"job install 2000012345672 - WO-{n} INST-1")
            # Half the cuts land during the survey, signing or the flash write; half
            # after "saved", during delivery.
            b.expect("SURVEY" if n % 2 else "SAVED", start=start)
            time.sleep(rnd.uniform(0.0, 1.0 if n % 2 else 0.3))
            b.power_cut()
            told |= set(b.saved_ids(start))
        b.boot()
        end = time.monotonic() + 60
        while b.pending() and time.monotonic() < end:
            time.sleep(0.3)
        assert b.pending() == 0
    finally:
        b.shutdown()
    assert told, "some jobs were saved before the power went"
    assert hil_bench.stored_ids(told) == told


def test_full_flash_is_reported_and_loses_nothing(hil_bench, hil_premises, tmp_path):
    site = hil_premises("smets2-electricity")
    # 12 blocks of 4 KiB: LittleFS keeps two for itself, each event takes one.
    b = make_board(hil_bench, tmp_path, site, "small", "70-B3-D5-F1-00-02-00-02", flash_limit=12 * 4096)
    try:
        b.boot()
        b.proxy.cut()
        saved, error = [], None
        for n in range(12):
            start = b.send(f"job commission 1312345678907 - WO-{n} INST-1")
            line = b.expect("SAVED", "ERROR", start=start)
            if line.startswith("ERROR"):
                error = " ".join(b.lines[start:])
                break
            saved += b.saved_ids(start)
        assert error is not None and ("ENOSPC" in error or "28" in error or "Outbox full" in error), error
        assert b.running, "a full flash is an error for the installer, not a crash"
        b.proxy.restore()
        end = time.monotonic() + 60
        while b.pending() and time.monotonic() < end:
            time.sleep(0.3)
    finally:
        b.shutdown()
    assert len(saved) >= 3
    assert hil_bench.stored_ids(set(saved)) == set(saved)


def test_power_cut_inside_a_flash_write(hil_bench, hil_premises, tmp_path):
    """The power goes in the middle of the Nth block write (half of it lands), for N across
    a job's writes; LittleFS and the outbox's rename keep every event the installer was told
    was saved, and the flash always mounts again."""
    site = hil_premises("smets2-electricity")
    b = make_board(hil_bench, tmp_path, site, "torn", "70-B3-D5-F1-00-02-00-03")
    told: set[str] = set()
    try:
        b.boot()  # first boot: format and provision, outside the cuts
        b.power_cut()
        for n in (1, 2, 3, 5, 8, 13, 21):
            b.boot(cut_after_writes=n)
            start = b.send(f"job commission 1312345678907 - WO-{n} INST-1")
            try:
                b.expect("SAVED", "ERROR", start=start, timeout=20)
                time.sleep(0.5)  # the cut may still come, during delivery's writes
            except TimeoutError:
                pass  # the power went
            told |= set(b.saved_ids(start))
            b.power_cut()
        b.boot()  # mounts, whatever the cuts tore
        end = time.monotonic() + 60
        while b.pending() and time.monotonic() < end:
            time.sleep(0.3)
        assert b.pending() == 0
        assert not any(ln.startswith("BAD") for ln in b.lines)
    finally:
        b.shutdown()
    assert told, "some jobs got as far as saving"
    assert hil_bench.stored_ids(told) == told


def test_the_hil_handheld_fixture_is_a_registered_board_at_a_premises(hil_handheld, hil_bench):
    """The pytest plugin's hil_handheld: one call gives a booted board plugged into a running
    premises and known to the bridge; a commission goes all the way to the flag."""
    b = hil_handheld("smets2-dual-fuel")
    start = b.send("job commission 2000012345672 3000123456 WO-FIX INST-1")
    assert b.expect("SAVED", "REFUSED", "ERROR", start=start).startswith("SAVED")
    b.expect("ACKED", start=start, timeout=60)
    site = hil_bench.site("2000012345672")
    assert site is not None and site["flag"] == "A"
