# A serial port with one small interface, whatever is underneath:
#   write(data) -> None      read() -> bytes (what has arrived, maybe b"")
#   wait(timeout_ms) -> bool (True when bytes are waiting)      close()
# On a board: machine.UART. On the unix port (the bench): a tty or pseudo-terminal
# opened as a file, put in raw mode with termios, polled with select.
import select

# Linux c_cc indexes; the unix port's termios module has no names for them.
_VTIME = 5
_VMIN = 6


class PosixUART:
    def __init__(self, path):
        import termios

        self._f = open(path, "r+b")
        fd = self._f.fileno()
        termios.setraw(fd)
        attrs = termios.tcgetattr(fd)
        # VMIN = VTIME = 0: read() returns what has arrived without blocking.
        attrs[6][_VMIN] = 0
        attrs[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)

    def write(self, data):
        mv = memoryview(data)
        while mv:
            n = self._f.write(mv)
            mv = mv[n:] if n else mv

    def read(self):
        return self._f.read(256) or b""

    def wait(self, timeout_ms):
        return bool(self._poll.poll(max(0, timeout_ms)))

    def close(self):
        self._f.close()


class BoardUART:
    def __init__(self, uart_id, baudrate, **kw):
        from machine import UART

        self._u = UART(uart_id, baudrate=baudrate, **kw)
        self._poll = select.poll()
        self._poll.register(self._u, select.POLLIN)

    def write(self, data):
        self._u.write(data)

    def read(self):
        return self._u.read() or b""

    def wait(self, timeout_ms):
        return bool(self._poll.poll(max(0, timeout_ms)))

    def close(self):
        self._u.deinit()


def open_uart(port, baudrate=19200):
    # port: a path ("/dev/ttyUSB0", a pty) on the unix port, a UART number on a board.
    if isinstance(port, str):
        return PosixUART(port)
    return BoardUART(port, baudrate)
