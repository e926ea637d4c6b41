"""The emulated hub on its own: its protocol answers, errors and console, over a real pty
(the CPython frame codec on the slave side stands in for a handheld here)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import cbor2
import pytest

from hil import frame, hub, premises


def _readable(fd: int, ms: int) -> bool:
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(ms))


class Handheld:
    """A minimal client on the slave side of the pty."""

    def __init__(self, path: str):
        import tty

        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.deframer = frame.Deframer()
        self.seq = 0

    def ask(self, cmd: int, args: object = None, timeout: float = 2.0):
        self.seq += 1
        os.write(self.fd, frame.encode(self.seq, cmd, b"" if args is None else cbor2.dumps(args)))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if _readable(self.fd, 50):
                for seq, ftype, payload in self.deframer.feed(os.read(self.fd, 256)):
                    if seq == self.seq:
                        return ftype, cbor2.loads(payload)
        return None

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def dual():
    with hub.HubEmulator(premises.load("smets2-dual-fuel")) as h:
        hh = Handheld(h.path)
        yield h, hh
        hh.close()


def test_a_hub_serves_with_descriptors_past_1024_in_few_of_them_and_stops_at_once():
    """A bench of hundreds of boards has descriptors past select()'s 1024 (pyserial's reads
    used select(): about 80 boards a process). The hub's line uses poll, and four descriptors."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        before = len(os.listdir("/proc/self/fd"))
        h = hub.HubEmulator(premises.load("smets2-dual-fuel")).start()
        assert len(os.listdir("/proc/self/fd")) - before <= 4
        hh = Handheld(h.path)
        assert hh.fd > 1024
        ftype, body = hh.ask(hub.CMD_IDENTIFY)
        assert ftype == 0x81 and body[2] == "SMETS2"
        hh.close()
        t0 = time.monotonic()
        h.stop()
        assert time.monotonic() - t0 < 1.0 and not h._thread.is_alive()
    finally:
        for fd in filler:
            os.close(fd)


def test_identify_and_wan(dual):
    h, hh = dual
    ftype, body = hh.ask(hub.CMD_IDENTIFY)
    assert ftype == 0x81
    assert body[0] == bytes.fromhex("001BC50C00000301") and body[2] == "SMETS2" and body[6] == h.rev
    assert hh.ask(hub.CMD_WAN) == (0x82, {0: True, 1: -68})
    h.set_wan(False)
    assert hh.ask(hub.CMD_WAN) == (0x82, {0: False})
    assert hh.ask(hub.CMD_IDENTIFY)[1][6] == h.rev == 2


def test_log_is_paged(dual):
    h, hh = dual
    _, first = hh.ask(hub.CMD_LOG, {0: 0})
    _, second = hh.ask(hub.CMD_LOG, {0: 2})
    _, past = hh.ask(hub.CMD_LOG, {0: 9})
    assert first[0] == second[0] == 4
    assert len(first[1]) == len(second[1]) == hub.LOG_PAGE
    assert past[1] == []
    assert first[1][0] == {0: bytes.fromhex("001BC50C00000310"), 1: "ESME", 2: "Commissioned", 3: "2000012345672"}
    assert second[1][1] == {0: bytes.fromhex("001BC50C00000313"), 1: "IHD"}  # no status: Type 2


def test_error_responses(dual):
    h, hh = dual
    assert hh.ask(0x33)[0] == hub.ERROR and hh.ask(0x33)[1][0] == hub.E_UNKNOWN_COMMAND
    assert hh.ask(hub.CMD_LOG, {0: -1})[1][0] == hub.E_BAD_REQUEST
    assert hh.ask(hub.CMD_DEVICE, {0: b"\x00" * 8})[1][0] == hub.E_UNKNOWN_DEVICE
    h.remove_device("00-1B-C5-0C-00-00-03-10")
    ftype, body = hh.ask(hub.CMD_DEVICE, {0: bytes.fromhex("001BC50C00000310")})
    assert (ftype, body[0]) == (hub.ERROR, hub.E_NOT_RESPONDING)


def test_hung_and_unplugged_hub_is_silent(dual):
    h, hh = dual
    h.command("hang")
    assert hh.ask(hub.CMD_IDENTIFY, timeout=0.5) is None
    h.command("unhang")
    h.command("unplug")
    assert hh.ask(hub.CMD_IDENTIFY, timeout=0.5) is None
    h.command("plug")
    assert hh.ask(hub.CMD_IDENTIFY)[0] == 0x81


def test_responses_are_paced_at_the_baud_rate():
    slow = premises.load("smets2-electricity")
    slow.baud, slow.response_delay_ms = 1200, (0, 0)
    with hub.HubEmulator(slow) as h:
        hh = Handheld(h.path)
        t0 = time.monotonic()
        hh.ask(hub.CMD_IDENTIFY)
        elapsed = time.monotonic() - t0
        hh.close()
    # IDENTIFY's response is ~50 bytes: at 1200 baud (120 bytes/s) that is ~0.4 s on the wire.
    assert elapsed > 0.25


def test_console_commands_change_state_and_report_errors(dual):
    h, _ = dual
    assert h.command("wan down") == "ok" and not h.premises.wan.connected
    assert h.command("status 00-1B-C5-0C-00-00-03-10 Decommissioned") == "ok"
    assert h.premises.device("00-1B-C5-0C-00-00-03-10").status == "Decommissioned"
    assert h.command("status 00-1B-C5-0C-00-00-03-10 Gone").startswith("error: status must be one of")
    assert h.command("fault corrupt_rate 0.02") == "ok" and h.faults.corrupt_rate == 0.02
    assert h.command("fault nosuch 1").startswith("error: no fault 'nosuch'")
    assert h.command("remove 00-00-00-00-00-00-00-00").startswith("error: smets2-dual-fuel: no device")
    assert h.command("dance").startswith("error: unknown command")


def test_premises_definition_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[hub]\nchf = "00-00-00-00-00-00-00-01"\n[[devices]]\neui = "00-00-00-00-00-00-00-02"\n'
                   'type = "ESME"\nstatus = "Fitted"\n')
    with pytest.raises(premises.PremisesError, match="status must be one of"):
        premises.load(bad)
    with pytest.raises(premises.PremisesError, match="no premises file"):
        premises.load(tmp_path / "missing.toml")
    bad.write_text("[[devices]]\neui = 'x'\ntype = 'ESME'\nstatus = 'Pending'\n")
    with pytest.raises(premises.PremisesError, match="devices need a hub"):
        premises.load(bad)


def test_hil_premises_command_prints_the_pty_and_takes_commands():
    exe = Path(sys.executable).with_name("hil")
    p = subprocess.Popen([str(exe), "premises", "--config", "smets2-gas"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    first = p.stdout.readline()
    assert first.startswith("pty: /dev/pts/")
    hh = Handheld(first.split()[1])
    assert hh.ask(hub.CMD_IDENTIFY)[1][1] == bytes.fromhex("001BC50C00000202")
    out, _ = p.communicate("wan down\nshow\nquit\n", timeout=10)
    hh.close()
    assert "ok" in out and "rev 2" in out
    assert p.returncode == 0
