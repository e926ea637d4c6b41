"""A fault-injecting TCP proxy: one per emulated board, between it and the broker.

Faults, switchable at any time: `cut` (new connections refused by closing them at once,
open ones dropped), `delay` (ms added to every chunk, both ways), `throttle` (bytes/s each
way), `reset` (close every open connection now, with a TCP RST).
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass


@dataclass
class NetFaults:
    cut: bool = False
    delay_ms: int = 0
    throttle_bps: int = 0  # 0: unlimited


class TcpProxy:
    def __init__(self, target: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0)):
        self.target = target
        self.faults = NetFaults()
        self._srv = socket.create_server(listen)
        self._srv.setblocking(False)
        self.port = self._srv.getsockname()[1]
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._srv, selectors.EVENT_READ, None)
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"proxy-{self.port}", daemon=True)
        self.connections = 0
        self.bytes = 0

    def start(self) -> "TcpProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.reset()
        self._srv.close()

    def cut(self) -> None:
        self.faults.cut = True
        self.reset()

    def restore(self) -> None:
        self.faults = NetFaults()

    def reset(self) -> None:
        with self._lock:
            for s in list(self._pairs):
                self._close(s, rst=True)

    def command(self, action: str) -> None:
        words = action.split()
        if words[0] == "cut":
            self.cut()
        elif words[0] == "restore":
            self.restore()
        elif words[0] == "reset":
            self.reset()
        elif words[0] == "delay":
            self.faults.delay_ms = int(words[1])
        elif words[0] == "throttle":
            self.faults.throttle_bps = int(words[1])
        else:
            raise ValueError(f"unknown network action {action!r} (cut, restore, reset, delay MS, throttle BPS)")

    def _close(self, s: socket.socket, rst: bool = False) -> None:
        peer = self._pairs.pop(s, None)
        for x in (s, peer):
            if x is None:
                continue
            self._pairs.pop(x, None)
            try:
                self._sel.unregister(x)
            except (KeyError, ValueError):
                pass
            if rst:
                try:
                    x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            x.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.1):
                with self._lock:
                    if key.data is None:
                        self._accept()
                    elif key.fileobj in self._pairs:
                        self._forward(key.fileobj)

    def _accept(self) -> None:
        try:
            client, _ = self._srv.accept()
        except BlockingIOError:
            return
        if self.faults.cut:
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(True)
            s.settimeout(5)
        self._pairs[client], self._pairs[upstream] = upstream, client
        self._sel.register(client, selectors.EVENT_READ, "c")
        self._sel.register(upstream, selectors.EVENT_READ, "u")
        self.connections += 1

    def _forward(self, s: socket.socket) -> None:
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data or self.faults.cut:
            self._close(s)
            return
        f = self.faults
        if f.delay_ms:
            time.sleep(f.delay_ms / 1000)
        if f.throttle_bps:
            time.sleep(len(data) / f.throttle_bps)
        try:
            self._pairs[s].sendall(data)
            self.bytes += len(data)
        except (OSError, KeyError):
            self._close(s)
