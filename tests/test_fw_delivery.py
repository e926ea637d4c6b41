"""The courier's ack queue (agent/delivery.py), fast, under micropython over a fake MQTT
client in the umqtt style: an ack that arrives while a publish is in flight is queued, never
applied under the send loop, and the link closes once every awaited ack is in."""

from __future__ import annotations

import json


def run(mpy, tmp_path, acks_during_publish: bool) -> dict:
    code = f"""
import json
from agent import delivery
from agent.start import open_outbox
import os
root = {str(tmp_path)!r}
box = open_outbox(root, 10)
for n in range(3):
    box.save(n, bytes([n]) * 16, b"\\xd2" + bytes([n]) * 40)
said = []
class FakeClient:
    # umqtt.simple's surface as the courier uses it; publish() delivers the broker's ack for
    # the record being published *during* the publish, as umqtt does while it waits for PUBACK.
    sock = raw = None
    def __init__(self, cb, acks_topic):
        self.cb, self.acks_topic, self.published = cb, acks_topic, []
    def publish(self, topic, msg, qos=0):
        self.published.append(msg)
        if {acks_during_publish!r}:
            self.cb(self.acks_topic, b"ack for " + msg[1:2])
            # the send loop reads the next record after this returns: it must still be there
        for c in box.counters():
            box.read(c)
    def check_msg(self):
        return None
    def ping(self):
        pass
    def disconnect(self):
        pass
class TestCourier(delivery.Courier):
    def _connect(self):
        self.client = FakeClient(self._on_message, self.acks_topic)
        self.fake = self.client
        self.sent = {{}}
cfg = {{"device_id": "70-B3-D5-F1-00-00-00-01", "prefix": "flagwise", "backoff_min": 1, "backoff_max": 2,
       "ack_timeout": 30, "keepalive": 60}}
c = TestCourier(cfg, box, said.append)
c.service()
out = {{"published": len(c.fake.published), "in_outbox": len(box), "connected": c.connected,
       "inbox": [m.decode() for _, m in c.take_inbox()], "said": said}}
print(json.dumps(out))
"""
    return json.loads(mpy(code, heapsize="64k", mpy=True).strip().splitlines()[-1])


def test_acks_during_publish_are_queued_and_the_link_closes_to_apply_them(mpy, tmp_path):
    out = run(mpy, tmp_path, True)
    assert out["published"] == 3, out  # the send loop read every record, none pulled from under it
    assert out["in_outbox"] == 3  # nothing is removed by the link: the agent applies acks later
    assert out["inbox"] == [f"ack for {chr(n)}" for n in range(3)], out
    assert out["connected"] is False  # every awaited ack is in: closed, so the agent can check them
    assert not any(s.startswith("LINK down") for s in out["said"]), out


def test_without_acks_the_link_stays_up_and_waits(mpy, tmp_path):
    out = run(mpy, tmp_path, False)
    assert out["published"] == 3 and out["in_outbox"] == 3 and out["inbox"] == []
    assert out["connected"] is True
