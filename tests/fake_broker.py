"""A scripted MQTT 5 broker for one client, in the style of paho's own tests: the test says
what the broker answers (CONNACK, SUBACK) and sends (PUBLISH, DISCONNECT), and reads every
packet the client sent, decoded. It speaks the protocol on a real TCP socket (MQTT 5.0
§2 fixed header, §3 packets), so the client under test is the real paho client unchanged.

It serves the fast tier of the bridge's MQTT handling; the same behaviour is tested against the
shipped mosquitto in the integration tier."""

from __future__ import annotations

import queue
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 1, 2, 3, 4, 8, 9, 12, 13, 14


@dataclass
class Packet:
    kind: int
    flags: int
    body: bytes
    fields: dict[str, Any] = field(default_factory=dict)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def _string(buf: bytes, i: int) -> tuple[bytes, int]:
    (n,) = struct.unpack_from(">H", buf, i)
    return buf[i + 2:i + 2 + n], i + 2 + n


def _str(s: bytes) -> bytes:
    return struct.pack(">H", len(s)) + s


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _varint(len(body)) + body


def decode(kind: int, flags: int, body: bytes) -> Packet:
    p = Packet(kind, flags, body)
    if kind == CONNECT:
        _, i = _string(body, 0)
        level, cflags = body[i], body[i + 1]
        i += 4
        plen, i = _read_varint(body, i)
        i += plen
        client_id, i = _string(body, i)
        p.fields.update(level=level, clean_start=bool(cflags & 2), client_id=client_id.decode())
        if cflags & 4:  # a will: properties, topic, payload
            wlen, i = _read_varint(body, i)
            _, i = _string(body, i + wlen)
            _, i = _string(body, i)
        if cflags & 0x80:
            user, i = _string(body, i)
            p.fields["username"] = user.decode()
        p.fields["password"] = bool(cflags & 0x40)
    elif kind == SUBSCRIBE:
        (pid,) = struct.unpack_from(">H", body, 0)
        plen, i = _read_varint(body, 2)
        i += plen
        topics = []
        while i < len(body):
            t, i = _string(body, i)
            topics.append((t.decode(), body[i] & 3))
            i += 1
        p.fields.update(pid=pid, topics=topics)
    elif kind == PUBLISH:
        topic, i = _string(body, 0)
        qos = (flags >> 1) & 3
        pid = None
        if qos:
            (pid,) = struct.unpack_from(">H", body, i)
            i += 2
        plen, i = _read_varint(body, i)
        p.fields.update(topic=topic.decode(), qos=qos, retain=bool(flags & 1), pid=pid,
                        payload=body[i + plen:])
    elif kind == PUBACK:
        (pid,) = struct.unpack_from(">H", body, 0)
        p.fields.update(pid=pid, rc=body[2] if len(body) > 2 else 0)
    return p


class FakeBroker:
    """One listening socket; each connection is served by a thread until it closes."""

    def __init__(self) -> None:
        self.connack_rc = 0
        self.session_present = False
        self.suback_rc: list[int] = []  # reason codes for the next SUBSCRIBEs, in order (then granted)
        self.received: queue.Queue[Packet] = queue.Queue()
        self.seen: list[Packet] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed = True
        self._sock.close()
        if self._conn is not None:
            self._conn.close()

    # --- what the test drives -------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, pid: int, dup: bool = False) -> None:
        body = _str(topic.encode()) + struct.pack(">H", pid) + b"\0" + payload
        self._send(packet(PUBLISH, 0x02 | (0x08 if dup else 0), body))

    def disconnect(self, rc: int) -> None:
        self._send(packet(DISCONNECT, 0, bytes([rc, 0])))

    def expect(self, kind: int, timeout: float = 5.0, **match: Any) -> Packet:
        """The next packet of this kind (and these fields) the client sends; others are kept in `seen`."""
        while True:
            p = self.received.get(timeout=timeout)
            if p.kind == kind and all(p.fields.get(k) == v for k, v in match.items()):
                return p

    def nothing(self, kind: int, within: float, **match: Any) -> bool:
        try:
            self.expect(kind, within, **match)
        except queue.Empty:
            return True
        return False

    # --- serving --------------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        with self._lock:
            assert self._conn is not None, "no client connected"
            self._conn.sendall(data)

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conn = conn
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                first = self._read(conn, 1)[0]
                n = shift = 0
                while True:
                    b = self._read(conn, 1)[0]
                    n |= (b & 0x7F) << shift
                    shift += 7
                    if not b & 0x80:
                        break
                p = decode(first >> 4, first & 0xF, self._read(conn, n))
                self.seen.append(p)
                self.received.put(p)
                self._answer(p)
        except (EOFError, OSError):
            return

    def _answer(self, p: Packet) -> None:
        if p.kind == CONNECT:
            self._send(packet(CONNACK, 0, bytes([int(self.session_present), self.connack_rc, 0])))
        elif p.kind == SUBSCRIBE:
            rc = self.suback_rc.pop(0) if self.suback_rc else None
            codes = bytes(rc if rc is not None else q for _, q in p.fields["topics"])
            self._send(packet(SUBACK, 0, struct.pack(">H", p.fields["pid"]) + b"\0" + codes))
        elif p.kind == PUBLISH and p.fields["qos"] == 1:
            self._send(packet(PUBACK, 0, struct.pack(">H", p.fields["pid"])))
        elif p.kind == PINGREQ:
            self._send(packet(PINGRESP, 0, b""))
