# The crash-safe outbox on flash (docs/agent.md "Outbox").
#
# One file per event, <root>/outbox/<counter, 12 digits>.ev:
#   b"FWE1" | event id (16) | length (2, big-endian) | CRC-32 of id+message (4) | message
# written as a temporary file and renamed, so a record exists whole or not at all; the
# installer is told "saved" only after the rename. On boot, leftover temporaries (never
# reported saved) are deleted; a record failing its CRC (flash damage) is never deleted:
# it is moved to outbox/bad/ and reported. Records are removed only on the bridge's ack;
# one the bridge refuses for good is moved to outbox/rejected/.
import binascii
import os

from agent import flash

_MAGIC = b"FWE1"
_HEAD = 26  # magic 4 + id 16 + length 2 + crc 4


class OutboxFull(Exception):
    pass


class Outbox:
    def __init__(self, root, capacity):
        self.dir = root + "/outbox"
        self.capacity = capacity
        self.damaged = []  # names of records moved to outbox/bad/
        flash.makedirs(self.dir)
        self._names = {}  # event id -> file name
        self._order = []  # file names, oldest first
        for name in sorted(os.listdir(self.dir)):
            path = self.dir + "/" + name
            if name.endswith(".tmp"):
                os.remove(path)  # a write cut short: never reported saved
                continue
            if not name.endswith(".ev"):
                continue
            eid = self._check(path)
            if eid is None:
                flash.makedirs(self.dir + "/bad")
                os.rename(path, self.dir + "/bad/" + name)
                self.damaged.append(name)
                continue
            self._names[eid] = name
            self._order.append(name)

    def _check(self, path):
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
        if binascii.crc32(data[4:20] + data[26:]) & 0xFFFFFFFF != crc:
            return None
        return bytes(data[4:20])

    def __len__(self):
        return len(self._order)

    def highest_counter(self):
        return int(self._order[-1][:-3]) if self._order else -1

    def full(self):
        return len(self._order) >= self.capacity

    def save(self, counter, eid, message):
        if self.full():
            raise OutboxFull("outbox full: %d events wait for the back office" % len(self._order))
        name = "%012d.ev" % counter
        crc = binascii.crc32(eid + message) & 0xFFFFFFFF
        record = _MAGIC + eid + len(message).to_bytes(2, "big") + crc.to_bytes(4, "big") + message
        flash.write_atomic(self.dir + "/" + name, record)
        self._names[bytes(eid)] = name
        self._order.append(name)

    def pending(self):
        # [(event id, name)] oldest first
        ids = {v: k for k, v in self._names.items()}
        return [(ids[n], n) for n in self._order]

    def message(self, eid):
        with open(self.dir + "/" + self._names[eid], "rb") as f:
            f.seek(_HEAD)
            return f.read()

    def set_aside(self, eid):
        # The back office refused it for good: out of the sending queue, kept on flash.
        name = self._names.pop(bytes(eid), None)
        if name is None:
            return False
        flash.makedirs(self.dir + "/rejected")
        os.rename(self.dir + "/" + name, self.dir + "/rejected/" + name)
        self._order.remove(name)
        return True

    def remove(self, eid):
        name = self._names.pop(bytes(eid), None)
        if name is None:
            return False
        os.remove(self.dir + "/" + name)
        self._order.remove(name)
        return True
