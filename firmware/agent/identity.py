# The event counter, on flash: reserved before an event is built, so after any power cut it
# never repeats. (The device key is read at boot: agent.start.load_key.)
from agent import flash

_COUNTER = "/counter"


class Counter:
    # The next counter, kept twice (/counter and /counter.2), each with a CRC, each written
    # before a number is used: one damaged file leaves the other. Where to start (`next`) is
    # worked out at boot (agent.start.counter_floor), so that this resident class stays small.
    def __init__(self, root, next=0, damaged=False):
        self._path = (root + _COUNTER, root + _COUNTER + ".2")
        self._next = next
        self.damaged = damaged

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
