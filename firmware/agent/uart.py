# A serial port with one small interface, whatever is underneath:
#   write(data) -> None      read() -> what has arrived (maybe nothing), as a view of the
#                            port's own 64-byte buffer, good until the next read
#   wait(timeout_ms) -> bool (True when bytes are waiting)      close()
# UART(port, baudrate): port is a UART number on a board (machine.UART), or a path on the
# unix port (the bench): a tty or pseudo-terminal opened as a file, put in raw mode with
# termios. Either is polled with select. One class for both: a class costs about 250 bytes
# of the heap during the survey (docs/agent.md "Memory").
import select

# Linux c_cc indexes; the unix port's termios module has no names for them.
_VTIME = 5
_VMIN = 6


class UART:
    def __init__(self, port, baudrate=19200):
        self._f = None  # the tty, on the unix port
        if isinstance(port, str):
            import termios

            self._u = self._f = open(port, "r+b")
            fd = self._f.fileno()
            termios.setraw(fd)
            attrs = termios.tcgetattr(fd)
            # VMIN = VTIME = 0: read() returns what has arrived without blocking.
            attrs[6][_VMIN] = 0
            attrs[6][_VTIME] = 0
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        else:
            from machine import UART

            self._u = UART(port, baudrate=baudrate)
        self._poll = select.poll()
        self._poll.register(self._u, select.POLLIN)
        # Read into one buffer made now: a new 256-byte string a read needed a free block of
        # that size in a heap the survey's garbage had split (docs/agent.md "Memory").
        self._buf = bytearray(64)

    def write(self, data):
        if self._f is None:
            self._u.write(data)
            return
        mv = memoryview(data)
        while mv:  # a tty may take part of it
            n = self._f.write(mv)
            mv = mv[n:] if n else mv

    def read(self):
        n = self._u.readinto(self._buf)
        return memoryview(self._buf)[:n or 0]

    def wait(self, timeout_ms):
        return bool(self._poll.poll(max(0, timeout_ms)))

    def close(self):
        if self._f is None:
            self._u.deinit()
        else:
            self._f.close()
