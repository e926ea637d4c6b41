"""The fast tier: the outbox (agent/outbox.py) and the HAN link (agent/link.py) under the real
micropython (.mpy, 64 KiB heap) over fakes, in the umqtt style: a folder for flash, a
scripted UART for the hub. Each case runs in well under a second; the real-process tests
(tests/test_agent.py, the bench) keep the integration.

The courier's fast tests are in tests/test_fw_delivery.py."""

from __future__ import annotations

import json

import pytest


def _run(mpy, code: str) -> dict:
    out = mpy(code, heapsize="64k", mpy=True).strip().splitlines()
    return json.loads(out[-1])


# --- outbox ------------------------------------------------------------------------------------
OUTBOX = """
import json, os
from agent.start import open_outbox
root = {root!r}
def eid(n, prefix=b""):
    return (prefix + bytes([n]) * 16)[:16]
def reboot():  # the outbox as the boot reads it from flash
    return open_outbox(root, {capacity})
out = {{}}
"""


def test_records_survive_a_reboot_in_order_and_go_only_by_their_id(mpy, tmp_path):
    out = _run(mpy, OUTBOX.format(root=str(tmp_path), capacity=10) + """
box = reboot()
for n in (5, 6, 7):
    box.save(n, eid(n), b"msg%d" % n)
box = reboot()
out["counters"] = box.counters()
out["read"] = [box.read(c)[1].decode() for c in box.counters()]
out["id_ok"] = box.read(6)[0] == eid(6)
out["remove_unknown"] = box.remove(eid(9))
out["remove_6"] = box.remove(eid(6))
out["again"] = box.remove(eid(6))
box = reboot()
out["after"] = box.counters()
out["files"] = sorted(os.listdir(root + "/outbox"))
print(json.dumps(out))
""")
    assert out["counters"] == [5, 6, 7] and out["read"] == ["msg5", "msg6", "msg7"] and out["id_ok"]
    assert out["remove_unknown"] is None and out["remove_6"] == 6 and out["again"] is None
    assert out["after"] == [5, 7]
    assert out["files"] == ["000000000005.ev", "000000000007.ev"]


def test_ids_that_share_their_first_bytes_are_told_apart(mpy, tmp_path):
    """The RAM index keeps 3 bytes of each id; the record on flash decides."""
    out = _run(mpy, OUTBOX.format(root=str(tmp_path), capacity=10) + """
box = reboot()
a, b = b"\\x01\\x02\\x03" + b"A" * 13, b"\\x01\\x02\\x03" + b"B" * 13
box.save(1, a, b"first")
box.save(2, b, b"second")
out["removed"] = box.remove(b)
out["left"] = [box.read(c)[1].decode() for c in box.counters()]
print(json.dumps(out))
""")
    assert out == {"removed": 2, "left": ["first"]}


def test_a_full_outbox_refuses_and_writes_nothing(mpy, tmp_path):
    out = _run(mpy, OUTBOX.format(root=str(tmp_path), capacity=2) + """
box = reboot()
box.save(1, eid(1), b"a")
box.save(2, eid(2), b"b")
out["full"] = box.full()
try:
    box.save(3, eid(3), b"c")
    out["error"] = None
except ValueError as e:
    out["error"] = str(e)
out["files"] = sorted(os.listdir(root + "/outbox"))
print(json.dumps(out))
""")
    assert out["full"] and out["error"] == "outbox full: 2 events wait for the back office"
    assert out["files"] == ["000000000001.ev", "000000000002.ev"]


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic", "empty"])
def test_a_damaged_record_is_moved_aside_and_reported_never_deleted(mpy, tmp_path, damage):
    out = _run(mpy, OUTBOX.format(root=str(tmp_path), capacity=10) + """
box = reboot()
for n in (1, 2, 3):
    box.save(n, eid(n), b"message %d" % n)
path = root + "/outbox/000000000002.ev"
data = bytearray(open(path, "rb").read())
damage = {damage!r}
if damage == "flip":
    data[-1] ^= 1
elif damage == "truncate":
    data = data[:-3]
elif damage == "magic":
    data[0] = 0
else:
    data = b""
open(path, "wb").write(data)
open(root + "/outbox/000000000004.tmp", "wb").write(b"half a write")
box = reboot()
out["counters"] = box.counters()
out["damaged"] = box.damaged
out["bad"] = os.listdir(root + "/outbox/bad")
out["files"] = sorted(os.listdir(root + "/outbox"))
print(json.dumps(out))
""".replace("{damage!r}", repr(damage)))
    assert out["counters"] == [1, 3]
    assert out["damaged"] == ["000000000002.ev"] and out["bad"] == ["000000000002.ev"]
    assert out["files"] == ["000000000001.ev", "000000000003.ev", "bad"]  # the cut write is gone


def test_a_refused_event_is_set_aside_out_of_the_queue_and_kept(mpy, tmp_path):
    out = _run(mpy, OUTBOX.format(root=str(tmp_path), capacity=10) + """
box = reboot()
box.save(1, eid(1), b"a")
box.save(2, eid(2), b"b")
out["set_aside"] = box.set_aside(eid(1))
out["unknown"] = box.set_aside(eid(9))
box = reboot()
out["counters"] = box.counters()
out["rejected"] = os.listdir(root + "/outbox/rejected")
print(json.dumps(out))
""")
    assert out == {"set_aside": 1, "unknown": None, "counters": [2], "rejected": ["000000000001.ev"]}


# --- the HAN link over a scripted UART --------------------------------------------------------
LINK = """
import json, time
from agent import cbor, frame, link
from agent.frame import Deframer

class Uart:
    # The UART's surface as the link uses it (write, wait, read), in front of a scripted hub:
    # script(n, seq, cmd, arg) -> the bytes the hub sends back to request n (b"": nothing).
    def __init__(self, script):
        self.script, self.rx, self.n, self.requests = script, b"", 0, []
        self.d = Deframer()
    def write(self, data):
        for seq, cmd, payload in self.d.feed(data):
            self.n += 1
            arg = cbor.loads(payload) if payload else None
            key0 = arg.get(0) if arg else None
            self.requests.append([cmd, key0.hex() if isinstance(key0, bytes) else key0])
            self.rx += self.script(self.n, seq, cmd, arg)
    def wait(self, ms):
        if self.rx:
            return True
        time.sleep_ms(min(ms, 5))
        return False
    def read(self):
        data, self.rx = self.rx, b""
        return data

def ok(seq, cmd, body):
    return frame.encode(seq, cmd | link.RESPONSE, cbor.dumps(body))

def error(seq, code, text):
    return frame.encode(seq, link.ERROR, cbor.dumps({0: code, 1: text}))

def run(script, cmd=link.CMD_IDENTIFY, arg=None, requests=1):
    u = Uart(script)
    l = link.Link(u, attempt_ms=40, silence_ms=150, tries=6)  # silence comes before the tries run out
    out = {}
    try:
        for _ in range(requests):
            out["body"] = l.request(cmd, arg)
    except link.LinkError as e:
        out["error"] = e.kind
        out["message"] = str(e)
        out["code"] = getattr(e, "code", None)
    out["stats"] = l.stats()
    out["requests"] = u.requests
    return out
"""


def _link(mpy, body: str) -> dict:
    return _run(mpy, LINK + body)


def test_an_answer_is_matched_to_its_request_and_a_late_one_is_skipped(mpy):
    out = _link(mpy, """
def script(n, seq, cmd, arg):
    # an answer to an earlier attempt (old sequence number), then this one's
    return ok((seq - 1) & 0xFF, cmd, {0: "stale"}) + ok(seq, cmd, {0: "fresh"})
print(json.dumps(run(script, link.CMD_DEVICE, bytes(range(8)))))
""")
    assert out["body"] == {"0": "fresh"}
    assert out["requests"] == [[4, "0001020304050607"]]  # DEVICE with the 8-byte id as key 0
    assert out["stats"]["attempts"] == 1


def test_a_corrupt_answer_is_asked_again(mpy):
    out = _link(mpy, """
def script(n, seq, cmd, arg):
    good = ok(seq, cmd, {0: True})
    if n == 1:
        return good[:-3] + bytes([good[-3] ^ 0x55]) + good[-2:]  # a bit error: the FCS fails
    return good
print(json.dumps(run(script, link.CMD_WAN)))
""")
    assert out["body"] == {"0": True}
    assert out["stats"]["attempts"] == 2 and out["stats"]["bad_fcs"] == 1


def test_a_busy_hub_is_asked_again_and_a_hub_error_is_reported_with_its_code(mpy):
    out = _link(mpy, """
busy = run(lambda n, seq, cmd, arg: error(seq, link.E_BUSY, "busy") if n < 3 else ok(seq, cmd, {0: 1}),
           link.CMD_LOG, 0)
unknown = run(lambda n, seq, cmd, arg: error(seq, link.E_UNKNOWN_DEVICE, "not in the log"),
              link.CMD_DEVICE, b"\\x00" * 8)
print(json.dumps({"busy": busy, "unknown": unknown}))
""")
    assert out["busy"]["body"] == {"0": 1} and out["busy"]["stats"]["attempts"] == 3
    assert out["unknown"]["error"] == "HubError" and out["unknown"]["code"] == 3
    assert out["unknown"]["message"] == "hub error 3: not in the log"
    assert out["unknown"]["stats"]["attempts"] == 1  # an error answer is not retried


def test_silence_noise_and_a_hub_gone_quiet_are_told_apart(mpy):
    out = _link(mpy, """
absent = run(lambda n, seq, cmd, arg: b"")
noise = run(lambda n, seq, cmd, arg: b"\\x13\\x37 garbage \\x00" if n == 1 else b"")
quiet = run(lambda n, seq, cmd, arg: ok(seq, cmd, {0: 1}) if n == 1 else b"", requests=2)
print(json.dumps({"absent": absent, "noise": noise, "quiet": quiet}))
""")
    assert out["absent"]["error"] == "HubAbsent" and "check the cable" in out["absent"]["message"]
    assert out["noise"]["error"] == "LineError" and "bytes of noise" in out["noise"]["message"]
    assert out["quiet"]["error"] == "HubTimeout" and "stopped answering" in out["quiet"]["message"]
    assert out["quiet"]["body"] == {"0": 1}  # the first request was answered


def test_a_line_that_never_carries_a_valid_answer_gives_up_after_its_tries(mpy):
    out = _link(mpy, """
def script(n, seq, cmd, arg):
    good = ok(seq, cmd, {0: 1})
    return good[:-1] + bytes([good[-1] ^ 1])  # always a bad FCS, never silence
print(json.dumps(run(script)))
""")
    assert out["error"] == "LineError" and "no valid answer to IDENTIFY in 6 tries" in out["message"]
    assert out["stats"]["attempts"] == 6


# --- the counter -------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["lower", "garbage", "empty"])
def test_a_damaged_counter_file_never_lets_a_counter_repeat(mpy, tmp_path, damage):
    """Defect 19: a damaged counter file restarted from the outbox's highest counter + 1,
    ignoring acked and set-aside events, so the bridge saw the genuine handheld's counters
    repeat (counter_reused). The counter is kept twice with a CRC; set-aside records count."""
    out = _run(mpy, OUTBOX.format(root=str(tmp_path), capacity=10) + """
from agent.start import counter_floor
c = counter_floor(root, reboot())
used = [c.reserve() for _ in range(12)]
box = reboot()
box.save(used[-2], eid(1), b"a")
box.remove(eid(1))                     # acked: gone from flash
box.save(used[-1], eid(2), b"b")
box.set_aside(eid(2))                  # refused for good: in rejected/, not in the queue
damage = {damage!r}
data = {"lower": b"3", "garbage": b"\\xff\\x00 zz", "empty": b""}[damage]
open(root + "/counter", "wb").write(data)
c = counter_floor(root, reboot())
out["next"] = c.reserve()
out["used"] = used
out["damaged"] = c.damaged
import os
os.remove(root + "/counter.2")         # both copies lost: the set-aside record still floors it
open(root + "/counter", "wb").write(b"")
out["floor"] = counter_floor(root, reboot()).next
print(json.dumps(out))
""".replace("{damage!r}", repr(damage)))
    # A bare lower number reads as earlier firmware's format: taken, and the mirror outvotes it.
    assert out["next"] == max(out["used"]) + 1 and out["damaged"] is (damage != "lower")
    assert out["floor"] == out["used"][-1] + 1
