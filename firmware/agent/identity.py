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
    def __init__(self, root, floor=0):
        self._path = root + _COUNTER
        n = 0
        if flash.exists(self._path):
            try:
                n = int(flash.read(self._path))
            except ValueError:
                n = 0  # a damaged file: the outbox floor below still keeps us ahead
        self._next = max(n, floor)

    def reserve(self):
        # Durable before it is used: a crash after this loses a number, never repeats one.
        n = self._next
        flash.write_atomic(self._path, b"%d" % (n + 1))
        self._next = n + 1
        return n

    @property
    def next(self):
        return self._next
