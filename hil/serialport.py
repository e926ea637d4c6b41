"""A pyserial port on the master side of a new pseudo-terminal.

The board (firmware under micropython) opens the slave path as its UART; the emulated
hub talks through the master with pyserial's normal read/write/timeouts. pyserial opens
ports by path and a pty master has none, so this adopts the fd from os.openpty().
"""

from __future__ import annotations

import fcntl
import os

import serial


class PtyPort(serial.Serial):
    def __init__(self, baudrate: int = 19200, timeout: float | None = 0.05) -> None:
        self._master, self._slave = os.openpty()
        # Keep our own slave fd open: when the board closes its side (reboot, unplug),
        # reads on the master would otherwise fail with EIO.
        self.slave_path = os.ttyname(self._slave)
        super().__init__(port=None, baudrate=baudrate, timeout=timeout)
        self.port = self.slave_path  # for messages only; open() below adopts the master
        self.open()

    def open(self) -> None:
        if self.is_open:
            return
        self.fd = self._master
        os.set_blocking(self.fd, False)
        self.pipe_abort_read_r, self.pipe_abort_read_w = os.pipe()
        self.pipe_abort_write_r, self.pipe_abort_write_w = os.pipe()
        fcntl.fcntl(self.pipe_abort_read_r, fcntl.F_SETFL, os.O_NONBLOCK)
        fcntl.fcntl(self.pipe_abort_write_r, fcntl.F_SETFL, os.O_NONBLOCK)
        self.is_open = True
        self._reconfigure_port(force_update=True)  # raw 8N1 at baudrate, for the pair

    def close(self) -> None:
        super().close()
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None
