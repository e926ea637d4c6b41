# A serial port with one small interface, whatever is underneath:
#   write(data) -> None      read() -> bytes (what has arrived, maybe b"")
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

    def write(self, data):
        if self._f is None:
            self._u.write(data)
            return
        mv = memoryview(data)
        while mv:  # a tty may take part of it
            n = self._f.write(mv)
            mv = mv[n:] if n else mv

    def read(self):
        return (self._u.read() if self._f is None else self._f.read(256)) or b""

    def wait(self, timeout_ms):
        return bool(self._poll.poll(max(0, timeout_ms)))

    def close(self):
        if self._f is None:
            self._u.deinit()
        else:
            self._f.close()
