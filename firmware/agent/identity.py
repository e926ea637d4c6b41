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


def _read_mark(path):
    # A high-water mark: b"<next> <crc32 of next, hex>". -> next, or None when missing or
    # damaged (a bit flip that still parses as a number fails the CRC). The bare b"<next>"
    # of earlier firmware is read as it was.
    try:
        data = flash.read(path)
    except OSError:
        return None
    import binascii

    parts = data.split()
    try:
        n = int(parts[0])
        if len(parts) == 1:
            return n
        if len(parts) == 2 and int(parts[1], 16) == binascii.crc32(parts[0]) & 0xFFFFFFFF:
            return n
    except (ValueError, IndexError):
        pass
    return None


class Counter:
    # The next counter, kept twice (/counter and /counter.2), each with a CRC, each written
    # before a number is used: one damaged file leaves the other, so the floor still covers
    # every counter ever used, acked and set-aside events' included (the outbox holds only
    # the unacked ones). `floor`: one past the highest counter any outbox file still names.
    def __init__(self, root, floor=0):
        self._paths = (root + _COUNTER, root + _COUNTER + ".2")
        marks = [m for m in (_read_mark(p) for p in self._paths) if m is not None]
        self.damaged = len(marks) < len([p for p in self._paths if flash.exists(p)])
        self._next = max(marks + [floor])

    def reserve(self):
        # Durable before it is used: a crash after this loses a number, never repeats one.
        import binascii

        n = self._next
        text = b"%d" % (n + 1)
        mark = text + b" %08x" % (binascii.crc32(text) & 0xFFFFFFFF)
        for path in self._paths:  # one at a time: a power cut spoils at most one
            flash.write_atomic(path, mark)
        self._next = n + 1
        return n

    @property
    def next(self):
        return self._next
