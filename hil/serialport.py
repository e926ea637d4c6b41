"""The emulated hub's end of a serial line: the master side of a new pseudo-terminal.

The board (firmware under micropython) opens the slave path as its UART; the hub reads and
writes the master. Two descriptors a line, and `poll`, not `select`: a bench of hundreds of
boards has descriptors past select()'s 1024 (pyserial's reads used select(), which capped
a bench at about 80 boards). The line is raw 8N1 both ways (termios on the pair).
"""

from __future__ import annotations

import os
import select
import termios
import tty


class PtyLine:
    def __init__(self, baudrate: int = 19200) -> None:
        self._master, self._slave = os.openpty()
        # Keep our own slave fd open: when the board closes its side (reboot, unplug),
        # reads on the master would otherwise fail with EIO.
        self.slave_path = os.ttyname(self._slave)
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        speed = getattr(termios, f"B{baudrate}", termios.B19200)
        attrs[4] = attrs[5] = speed  # ispeed, ospeed: what the board's UART reads back
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        os.set_blocking(self._master, False)
        self._poll = select.poll()
        self._poll.register(self._master, select.POLLIN)
        # Woken by close() at once, so that a hub's thread stops without waiting out a poll.
        self._wake_r, self._wake_w = os.pipe()
        self._poll.register(self._wake_r, select.POLLIN)
        self.is_open = True

    def read(self, size: int, timeout: float) -> bytes:
        """Up to `size` bytes as soon as any arrive, or b"" after `timeout` seconds; OSError
        once closed."""
        if not self.is_open:
            raise OSError("line closed")
        for fd, _ in self._poll.poll(timeout * 1000):
            if fd == self._wake_r or not self.is_open:
                raise OSError("line closed")
            try:
                return os.read(self._master, size)
            except BlockingIOError:
                return b""
        return b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self.is_open:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:  # the board is not reading: wait for room, as a UART would
                select.poll().poll(10)
                continue
            view = view[n:]

    def close(self) -> None:
        if not self.is_open:
            return
        self.is_open = False
        os.write(self._wake_w, b"x")
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
