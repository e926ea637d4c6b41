# The agent's boot (agent.main.Agent.__init__): configuration, the device key, the outbox
# and the counter. Run once, then dropped, so that its code does not stay in the heap.
import binascii
import gc

from agent import flash, identity
from agent.outbox import _HEAD, _MAGIC, Outbox, _tag


def load_key(root):
    # The device key: made on first boot (or by tools/provision.py), never leaves the
    # device. -> (private key, created now?)
    path = root + "/key.bin"
    if flash.exists(path):
        k = flash.read(path)
        if len(k) != 32:
            raise ValueError("%s is damaged (%d bytes); re-provision the device" % (path, len(k)))
        return k, False
    from agent import ecdsa

    k = ecdsa.generate_key()
    flash.write_atomic(path, k)
    return k, True


def open_outbox(root, capacity):
    # The outbox as the flash holds it (agent.outbox): temporaries, never reported saved,
    # are deleted; a record failing its CRC is moved to outbox/bad/ and named in `damaged`.
    import os

    box = Outbox(root, capacity)
    flash.makedirs(box.dir)
    names = sorted(n for n in os.listdir(box.dir) if n.endswith(".ev") or n.endswith(".tmp"))
    for name in names:
        path = box.dir + "/" + name
        if name.endswith(".tmp"):
            os.remove(path)  # a write cut short: never reported saved
            continue
        eid = _check(path)
        if eid is None:
            flash.makedirs(box.dir + "/bad")
            os.rename(path, box.dir + "/bad/" + name)
            box.damaged.append(name)
            continue
        box._order.append(int(name[:-3]))
        box._tags.append(_tag(eid))
    return box


def _check(path):
    # -> a record's event id, or None when it is not whole
    try:
        data = flash.read(path)
    except OSError:
        return None
    if len(data) < _HEAD or data[:4] != _MAGIC:
        return None
    n = (data[20] << 8) | data[21]
    if len(data) != _HEAD + n:
        return None
    crc = int.from_bytes(data[22:26], "big")
    mv = memoryview(data)
    if binascii.crc32(mv[26:], binascii.crc32(mv[4:20])) & 0xFFFFFFFF != crc:
        return None
    return bytes(data[4:20])


def counter_floor(root, outbox):
    # The counter to start from: the higher of the two high-water marks that read whole
    # (b"<next> <crc32 of next, hex>"; earlier firmware's bare b"<next>" as it was), and one
    # past the highest counter any outbox record names: queued, set aside (rejected/) or
    # damaged (bad/), whose file names survive their contents. -> identity.Counter
    import os

    marks = [outbox._order[-1] + 1 if outbox._order else 0]
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
    self.key, created = load_key(root)
    from agent import ids

    self.kid = ids.eui64_bytes(self.cfg["device_id"])
    self.outbox = open_outbox(root, self.cfg["outbox_max"])
    self.counter = counter_floor(root, self.outbox)
    try:  # seconds added to the device clock, set from the hub's (agent.clock)
        self.clock_fix = int(flash.read(root + "/clock_offset"))
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


def arguments(argv):
    # The command line (agent.main's header) -> {"flash", "job", "override", "deliver",
    # "pubkey"}, or the exit code 2 once the error is on the screen.
    args = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--job":
            args["job"] = argv[i + 1:i + 6]
            if len(args["job"]) != 5:
                print("ERROR --job TYPE MPAN MPRN JOBREF INSTALLER (- for no MPAN or MPRN)")
                return 2
            i += 6
        elif a in ("--flash", "--override", "--deliver"):
            if i + 1 >= len(argv):
                print("ERROR %s needs a value" % a)
                return 2
            args[a[2:]] = argv[i + 1]
            i += 2
        elif a == "--pubkey":
            args["pubkey"] = True
            i += 1
        else:
            print("ERROR unknown argument %s" % a)
            return 2
    if "deliver" in args:
        try:
            args["deliver"] = float(args["deliver"])
        except ValueError:
            print("ERROR --deliver SECONDS, a number")
            return 2
    if "override" in args and len(args["override"].split()) < 3:
        print("ERROR --override: say why, in a few words (3 words at least)")
        return 2
    return args
