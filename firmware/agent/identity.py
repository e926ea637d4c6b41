# The device key and the event counter, on flash. The key is made on first boot (or by
# tools/provision.py) and never leaves the device; the counter is reserved on flash
# before an event is built, so after any power cut it never repeats.
from agent import flash

_KEY = "/key.bin"
_COUNTER = "/counter"


def load_key(root):
    # -> (private key, created now?)
    path = root + _KEY
    if flash.exists(path):
        k = flash.read(path)
        if len(k) != 32:
            raise ValueError("%s is damaged (%d bytes); re-provision the device" % (path, len(k)))
        return k, False
    from agent import ecdsa

    k = ecdsa.generate_key()
    flash.write_atomic(path, k)
    return k, True


class Counter:
    # The next counter, kept twice (/counter and /counter.2), each with a CRC, each written
    # before a number is used: one damaged file leaves the other, so the floor still covers
    # every counter ever used, acked and set-aside events' included (the outbox holds only
    # the unacked ones). `floor`: one past the highest counter any outbox file still names.
    def __init__(self, root, floor=0):
        import binascii

        self._path = (root + _COUNTER, root + _COUNTER + ".2")
        marks = [floor]
        self.damaged = False
        for path in self._path:
            # A high-water mark: b"<next> <crc32 of next, hex>"; a bit flip that still parses
            # as a number fails the CRC. Earlier firmware's bare b"<next>" is read as it was.
            if not flash.exists(path):
                continue
            parts = flash.read(path).split()
            try:
                if len(parts) == 1 or int(parts[1], 16) == binascii.crc32(parts[0]) & 0xFFFFFFFF:
                    marks.append(int(parts[0]))
                    continue
            except (ValueError, IndexError):
                pass
            self.damaged = True
        self._next = max(marks)

    def reserve(self):
        # Durable before it is used: a crash after this loses a number, never repeats one.
        import binascii

        n = self._next
        text = b"%d" % (n + 1)
        mark = text + b" %08x" % (binascii.crc32(text) & 0xFFFFFFFF)
        for path in self._path:  # one at a time: a power cut spoils at most one
            flash.write_atomic(path, mark)
        self._next = n + 1
        return n

    @property
    def next(self):
        return self._next
