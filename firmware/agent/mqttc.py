# The handheld's MQTT protocol (docs/agent.md "Delivery"): micropython-lib's umqtt.simple with
# a timeout on connect, bounded reads, TCP_NODELAY, and TLS that always checks the broker. No
# policy here: agent.delivery (the courier) decides when to connect, what to send, when to give
# up and what a failure means to the installer.
import sys

from umqtt import simple

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


def _ussl():
    # umqtt.simple 1.3.4 imports `ussl` for TLS; MicroPython 1.29 calls it `ssl`.
    if "ussl" not in sys.modules:
        import ssl

        sys.modules["ussl"] = ssl


class _TimedSocket:
    # umqtt.simple makes its socket inside connect(); this gives it a timeout there.
    timeout = 5

    last = None  # the raw TCP socket, under TLS too

    @staticmethod
    def socket(*args):
        import socket

        s = socket.socket(*args)
        s.settimeout(_TimedSocket.timeout)
        _TimedSocket.last = s
        return s

    @staticmethod
    def getaddrinfo(*args):
        import socket

        return socket.getaddrinfo(*args)


class _Client(simple.MQTTClient):
    read_timeout = 5
    raw = None  # the TCP socket (self.sock is an SSLSocket under TLS)

    def wait_msg(self):
        # umqtt.simple ends each read with setblocking(True), dropping the timeout: restore it.
        try:
            return self._wait_msg()
        finally:
            if self.raw is not None:
                self.raw.settimeout(self.read_timeout)

    def _wait_msg(self):
        # umqtt.simple's wait_msg, bounded: a message over _MAX_IN is read in small pieces and
        # dropped (still PUBACKed, so a retained or repeated poison never blocks delivery).
        res = self.sock.read(1)
        self.sock.setblocking(True)
        if res is None:
            return None
        if res == b"":
            raise OSError(-1)
        if res == b"\xd0":  # PINGRESP
            self.sock.read(1)
            return None
        op = res[0]
        if op & 0xF0 != 0x30:
            return op
        sz = self._recv_len()
        n = self.sock.read(2)
        n = (n[0] << 8) | n[1]
        topic = self.sock.read(n) if n <= 128 else None
        if topic is None:
            self._skip(n)
        sz -= n + 2
        pid = 0
        if op & 6:
            pid = self.sock.read(2)
            pid = pid[0] << 8 | pid[1]
            sz -= 2
        if sz > _MAX_IN or topic is None:
            self._skip(sz)
            self.cb(topic or b"", None)
        else:
            self.cb(topic, self.sock.read(sz))
        if op & 6 == 2:
            self.sock.write(bytes((0x40, 2, pid >> 8, pid & 255)))
        return None

    def _skip(self, n):
        while n > 0:
            k = min(n, 256)
            self.sock.read(k)
            n -= k

    def _drop(self):
        # Close the TLS socket as well as the TCP one: the TLS state is only freed by its
        # close, and a dropped link must give the heap back.
        _close(self.sock, self.raw)


def connect(cfg, cb):
    # -> a client connected with a persistent session (clean_session False), or raises with
    # every socket of the failed attempt closed (the TLS state too).
    _TimedSocket.timeout = cfg["connect_timeout"]
    _TimedSocket.last = None
    simple.socket = _TimedSocket
    params = {}
    c = None
    try:
        if cfg["tls"]:
            import ssl

            _ussl()
            # config.load refused tls without a CA: the broker's certificate is always checked.
            params = {"server_hostname": cfg["tls_server_name"] or cfg["broker_host"],
                      "cadata": _read(cfg["tls_ca"]), "cert_reqs": ssl.CERT_REQUIRED}
            if cfg["tls_cert"]:
                params["cert"] = _read(cfg["tls_cert"])
                params["key"] = _read(cfg["tls_key"])
        # Plain TCP (insecure): the handheld logs in with its password; under TLS, its certificate.
        pw = None if cfg["tls"] else cfg["password"]
        c = _Client(cfg["device_id"], cfg["broker_host"], cfg["broker_port"], user=pw and cfg["device_id"],
                   password=pw, keepalive=cfg["keepalive"], ssl=cfg["tls"], ssl_params=params)
        params = None
        c.read_timeout = cfg["socket_timeout"]
        c.set_callback(cb)
        c.connect(clean_session=False)
    except Exception:
        _close(c and c.sock, _TimedSocket.last)
        _TimedSocket.last = None
        raise
    c.ssl_params = None  # the certificate and key bytes are not needed after the handshake
    c.raw, _TimedSocket.last = _TimedSocket.last, None
    # Nagle + delayed ACK would hold each small write (shared/pitfalls.md): IPPROTO_TCP, TCP_NODELAY.
    try:
        c.raw.setsockopt(6, 1, 1)
    except (OSError, AttributeError):
        pass
    c.raw.settimeout(cfg["socket_timeout"])
    return c
