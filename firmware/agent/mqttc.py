# The handheld's MQTT client (docs/agent.md "Delivery"): MQTT 3.1.1 (OASIS), the part a
# courier needs and no more: CONNECT with a persistent session, SUBSCRIBE and PUBLISH at
# QoS 1, PINGREQ, DISCONNECT, and a bounded read of what the broker sends. TLS always checks
# the broker. No policy here: agent.delivery (the courier) decides when to connect, what to
# send, when to give up and what a failure means to the installer.
#
# Written for the heap rather than taken from micropython-lib's umqtt.simple, which it
# replaces: one class instead of that library and the subclass and socket shim that gave it
# timeouts and bounded reads, about 3 KiB less while the TLS handshake runs (docs/agent.md
# "Memory"). Every packet is read whole, so the stream never loses its place.
import socket

_MAX_IN = 1024  # bytes of an incoming message we read; larger ones are skipped unread


def _close(*socks):
    for s in socks:
        if s is not None:
            try:
                s.close()
            except Exception:
                pass


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _str(b):
    # An MQTT UTF-8 string or binary field (§1.5.3): two bytes of length, then the bytes.
    return len(b).to_bytes(2, "big") + b


def _head(op, n):
    # A fixed header (§2.2): the packet type and flags, then the remaining length n.
    out = bytearray((op,))
    while True:
        if n < 0x80:
            out.append(n)
            return out
        out.append(n & 0x7F | 0x80)
        n >>= 7


class _Client:
    def __init__(self, cb, timeout):
        self.cb = cb  # cb(topic, message): message None when it was too large to read
        self.read_timeout = timeout
        self.sock = None  # what is read and written: the TLS socket under TLS
        self.raw = None  # the TCP socket
        self.pid = 0

    def _write(self, *parts):
        for p in parts:
            self.sock.write(p)

    def _take(self, n):
        # Exactly n bytes (under the socket's timeout), or OSError: the broker closed the link.
        b = self.sock.read(n)
        if b is None or len(b) != n:
            raise OSError(-1)
        return b

    def _byte(self):
        return self._take(1)[0]

    def _length(self):
        # The remaining length (§2.2.3): at most four bytes.
        n = 0
        for shift in (0, 7, 14, 21):
            b = self._byte()
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
        raise OSError(-1)  # a malformed length: the stream cannot be trusted

    def _skip(self, n):
        while n > 0:
            k = min(n, 256)
            if not self.sock.read(k):
                raise OSError(-1)
            n -= k

    def check_msg(self):
        # One packet if one has begun to arrive, else None at once.
        self.sock.setblocking(False)
        try:
            first = self.sock.read(1)
        finally:
            # setblocking(True) would drop the timeout: restore the timeout instead.
            self.raw.settimeout(self.read_timeout)
        if first is None:
            return None
        if not first:
            raise OSError(-1)
        return self._packet(first[0])

    def _packet(self, op):
        # Reads the rest of the packet whose first byte is op. An application message goes
        # to the callback and is acknowledged (QoS 1). -> (op, body) for any other packet
        # (body: its first 4 bytes at most, the rest read and dropped), or None.
        n = self._length()
        if op & 0xF0 != 0x30:
            body = self._take(min(n, 4))
            self._skip(n - len(body))
            return op, body
        t = self._take(2)
        k = t[0] << 8 | t[1]
        topic = self._take(k) if k <= 128 else None
        if topic is None:
            self._skip(k)
        n -= k + 2
        pid = None
        if op & 6:
            pid = self._take(2)
            n -= 2
        if n < 0:
            raise OSError(-1)  # a topic longer than its packet: the stream cannot be trusted
        if n > _MAX_IN or topic is None:
            self._skip(n)
            self.cb(topic or b"", None)
        else:
            self.cb(topic, self._take(n))
        if pid is not None:
            self._write(b"\x40\x02" + pid)  # PUBACK
        return None

    def _wait(self, op, pid):
        # Reads packets until the one of type op for packet id pid (SUBACK, PUBACK).
        while True:
            got = self._packet(self._byte())
            if got is not None and got[0] == op and got[1][:2] == pid:
                return got[1]

    def _next_pid(self):
        self.pid = self.pid % 0xFFFF + 1
        return self.pid.to_bytes(2, "big")

    def subscribe(self, topic, qos=1):
        pid = self._next_pid()
        self._write(_head(0x82, len(topic) + 5) + pid + _str(topic) + bytes((qos,)))
        if self._wait(0x90, pid)[2:3] == b"\x80":
            raise OSError("broker refused the subscription to %s" % topic.decode())

    def publish(self, topic, msg, qos=1):
        # QoS 1: returns once the broker's PUBACK for it is in.
        pid = self._next_pid()
        self._write(_head(0x32, len(topic) + 4 + len(msg)) + _str(topic) + pid, msg)
        self._wait(0x40, pid)

    def ping(self):
        self._write(b"\xc0\x00")  # its PINGRESP is read (and dropped) by check_msg

    def disconnect(self):
        self._write(b"\xe0\x00")

    def _drop(self):
        # Close the TLS socket as well as the TCP one: the TLS state is only freed by its
        # close, and a dropped link must give the heap back.
        _close(self.sock, self.raw)


def connect(cfg, cb):
    # -> a client connected with a persistent session (clean session 0, §3.1.2.4), or
    # raises with every socket of the failed attempt closed (the TLS state too).
    c = _Client(cb, cfg["socket_timeout"])
    try:
        addr = socket.getaddrinfo(cfg["broker_host"], cfg["broker_port"])[0][-1]
        c.sock = c.raw = socket.socket()
        c.raw.settimeout(cfg["connect_timeout"])
        c.raw.connect(addr)
        if cfg["tls"]:
            import ssl

            # config.load refused tls without a CA: the broker's certificate is always checked.
            params = {"server_hostname": cfg["tls_server_name"] or cfg["broker_host"],
                      "cadata": _read(cfg["tls_ca"]), "cert_reqs": ssl.CERT_REQUIRED}
            if cfg["tls_cert"]:
                params["cert"] = _read(cfg["tls_cert"])
                params["key"] = _read(cfg["tls_key"])
            c.sock = ssl.wrap_socket(c.raw, **params)
            params = None  # the certificate and key bytes are not needed after the handshake
        # Plain TCP (insecure): the handheld logs in with its password; under TLS, its certificate.
        dev = cfg["device_id"].encode()
        pw = None if cfg["tls"] else cfg["password"]
        login = _str(dev) + _str(pw.encode()) if pw else b""
        k = cfg["keepalive"]
        body = b"\x00\x04MQTT\x04" + bytes((0xC0 if pw else 0, k >> 8, k & 0xFF)) + _str(dev) + login
        c._write(_head(0x10, len(body)) + body)
        body = login = None
        op = c._byte()
        ack = c._packet(op)
        if op != 0x20 or ack is None or len(ack[1]) != 2:
            raise OSError("broker sent no CONNACK")
        if ack[1][1]:
            # §3.2.2.3: 4 bad user name or password, 5 not authorized
            raise OSError("broker refused this handheld" if ack[1][1] in (4, 5) else
                          "broker refused the connection (code %d)" % ack[1][1])
    except Exception:
        c._drop()
        raise
    # Nagle + delayed ACK would hold each small write (shared/pitfalls.md): IPPROTO_TCP, TCP_NODELAY.
    try:
        c.raw.setsockopt(6, 1, 1)
    except (OSError, AttributeError):
        pass
    c.raw.settimeout(cfg["socket_timeout"])
    return c
