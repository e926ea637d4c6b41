# The crash-safe outbox on flash (docs/agent.md "Outbox").
#
# One file per event, <root>/outbox/<counter, 12 digits>.ev:
#   b"FWE1" | event id (16) | length (2, big-endian) | CRC-32 of id+message (4) | message
# written as a temporary file and renamed, so a record exists whole or not at all; the
# installer is told "saved" only after the rename. On boot, leftover temporaries (never
# reported saved) are deleted; a record failing its CRC (flash damage) is never deleted:
# it is moved to outbox/bad/ and reported. Records are removed only on the bridge's ack;
# one the bridge refuses for good is moved to outbox/rejected/. The boot's reading of the
# flash is agent.start.open_outbox.
#
# RAM: only two lists of small integers (counter, first 3 bytes of the id) per record --
# a few bytes each, so a full outbox fits a 64 KiB heap; ids and messages stay on flash.
import binascii
import os

from agent import flash

_MAGIC = b"FWE1"
_HEAD = 26  # magic 4 + id 16 + length 2 + crc 4


def _tag(eid):
    return (eid[0] << 16) | (eid[1] << 8) | eid[2]


class Outbox:
    def __init__(self, root, capacity):
        # Empty: agent.start.open_outbox reads what the flash holds (boot-only code, dropped).
        self.dir = root + "/outbox"
        self.capacity = capacity
        self.damaged = []  # names of records moved to outbox/bad/
        self._order = []  # counters, oldest first
        self._tags = []  # the first 3 bytes of each record's event id, as an int

    def _path(self, counter):
        return "%s/%012d.ev" % (self.dir, counter)

    def __len__(self):
        return len(self._order)

    def full(self):
        return len(self._order) >= self.capacity

    def save(self, counter, eid, message):
        # message: bytes, or a tuple of byte strings that joined are the message
        # (agent.cose.sign1_parts): the CRC runs over id then each part, and the record is
        # written in parts, so no joined copy is made right after signing, the heap's
        # tightest moment.
        if self.full():
            raise ValueError("outbox full: %d events wait for the back office" % len(self._order))
        parts = message if isinstance(message, tuple) else (message,)
        crc = binascii.crc32(eid)
        n = 0
        for part in parts:
            crc = binascii.crc32(part, crc)
            n += len(part)
        head = _MAGIC + eid + n.to_bytes(2, "big") + (crc & 0xFFFFFFFF).to_bytes(4, "big")
        flash.write_atomic(self._path(counter), (head,) + parts)
        self._order.append(counter)
        self._tags.append(_tag(eid))

    def counters(self):
        # The records' counters, oldest first (a copy: records may go while iterating).
        return list(self._order)

    def read(self, counter):
        # -> (event id, message) of one record
        with open(self._path(counter), "rb") as f:
            head = f.read(_HEAD)
            return head[4:20], f.read()

    def _find(self, eid):
        tag = _tag(eid)
        for i in range(len(self._order)):
            if self._tags[i] == tag:
                with open(self._path(self._order[i]), "rb") as f:
                    if f.read(20)[4:] == eid:
                        return i
        return -1

    def _take(self, eid):
        i = self._find(bytes(eid))
        if i < 0:
            return None
        self._tags.pop(i)
        return self._order.pop(i)

    def set_aside(self, eid):
        # The back office refused it for good: out of the sending queue, kept on flash.
        counter = self._take(eid)
        if counter is None:
            return None
        flash.makedirs(self.dir + "/rejected")
        os.rename(self._path(counter), "%s/rejected/%012d.ev" % (self.dir, counter))
        return counter

    def remove(self, eid):
        # -> the record's counter, or None when no record has this id
        counter = self._take(eid)
        if counter is not None:
            os.remove(self._path(counter))
        return counter
