# The agent's boot (agent.main.Agent.__init__): configuration, the device key, the outbox
# and the counter. Run once, then dropped, so that its code does not stay in the heap.
import gc

from agent import identity
from agent.outbox import Outbox


def counter_floor(root, outbox):
    # The counter to start from: the higher of the two high-water marks that read whole
    # (b"<next> <crc32 of next, hex>"; earlier firmware's bare b"<next>" as it was), and one
    # past the highest counter any outbox record names: queued, set aside (rejected/) or
    # damaged (bad/), whose file names survive their contents. -> identity.Counter
    import binascii
    import os

    from agent import flash

    marks = [outbox.highest_counter() + 1]
    for sub in ("/rejected", "/bad"):
        try:
            names = os.listdir(outbox.dir + sub)
        except OSError:
            continue
        for name in names:
            try:
                marks.append(int(name[:12]) + 1)
            except ValueError:
                pass
    damaged = False
    for path in (root + "/counter", root + "/counter.2"):
        if not flash.exists(path):
            continue
        parts = flash.read(path).split()
        try:
            if len(parts) == 1 or int(parts[1], 16) == binascii.crc32(parts[0]) & 0xFFFFFFFF:
                marks.append(int(parts[0]))
                continue
        except (ValueError, IndexError):
            pass
        damaged = True
    return identity.Counter(root, max(marks), damaged)


def boot(self, root):
    # Collect early rather than late: a fragmented 64 KiB heap fails big allocations.
    gc.threshold(gc.mem_free() // 4 + gc.mem_alloc())
    from agent import config

    self.cfg = config.load(root)
    self.firmware = config.FIRMWARE
    self.time_floor = config.TIME_FLOOR
    self.key, created = identity.load_key(root)
    from agent import ids

    self.kid = ids.eui64_bytes(self.cfg["device_id"])
    self.outbox = Outbox(root, self.cfg["outbox_max"])
    self.counter = counter_floor(root, self.outbox)
    try:  # seconds added to the device clock, set from the hub's (agent.clock)
        self.clock_fix = int(identity.flash.read(root + "/clock_offset"))
    except (OSError, ValueError):
        pass
    self.refused = None  # (event fields, refusal codes) awaiting an override
    self.outcomes = []  # the bridge's last flags, for `status`
    self.predicted = []  # ["EVENTID MPXN:FLAG ..."]: what the last jobs said (agent.predict)
    self.said = ""  # the job being saved: its prediction, " MPXN:FLAG ..."
    self.courier = None  # made when there is something to deliver
    self.hold = None  # (ticks_ms until, backoff ms, reason told): after a rejection naming no event
    self.acked = 0
    self.ignored = 0  # messages on our ack topics that did not verify (docs/security.md)
    if created:
        self.out("KEY new device key; public key:")
        self.out("PUBKEY " + self.public_key())
    if self.counter.damaged:
        self.say("BAD", "a counter file was damaged: the other copy and the outbox keep counters unique")
    for name in self.outbox.damaged:
        self.say("BAD", "outbox record %s failed its CRC: kept in outbox/bad" % name)
    self.out("READY %s" % self.cfg["device_id"])
    self.out("OUTBOX %d/%d" % (len(self.outbox), self.cfg["outbox_max"]))
