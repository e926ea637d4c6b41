# Delivery of the outbox over MQTT (docs/agent.md "Delivery"), around micropython-lib's
# umqtt.simple in the spirit of umqtt.robust: connect with a timeout, keepalive pings,
# exponential backoff with jitter and a cap, QoS 1 to <prefix>/events/<device-id>.
# An event leaves the outbox only on the bridge's signed ack on <prefix>/acks/<device-id>
# (agent.ackcheck); until then it is sent again after ack_timeout, as the same signed bytes.
# Acks are checked and applied after the send loop, never from inside a publish, so a
# record is never pulled from under the loop that is reading it.
import gc
import sys
import time
from os import urandom

from umqtt import simple


def _drop(*names):
    # Modules of one step, dropped after it (docs/agent.md "Memory").
    import agent

    for n in names:
        sys.modules.pop(n, None)
        if hasattr(agent, n[6:]):
            delattr(agent, n[6:])
    gc.collect()


# What a failed link means to an installer (errno, or mbedTLS code), with the next step.
_WHY = {111: "no broker there: check network", 113: "no route: check network", 110: "broker not answering",
        104: "broker closed the link", 32: "broker closed the link", -29312: "broker refused this handheld",
        -9984: "broker not trusted: CA mismatch", -30592: "broker refused this handheld"}


def _why(e, connecting):
    if isinstance(e, MemoryError):
        return "out of memory: retrying"
    if isinstance(e, ValueError):  # the TLS handshake's verdict (mbedTLS), in installer words
        # "The certificate validity has expired / starts in the future": a clock far out.
        return "certificate dates: check clock" if "valid" in str(e) else "broker not trusted: check the CA"
    code = e.args[0] if isinstance(e, OSError) and e.args and isinstance(e.args[0], int) else None
    text = _WHY.get(code)
    if text is None:
        text = ("connect failed %r" if connecting else "%r") % (e,)
    return text


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


_MAX_IN = 1024  # bytes of an incoming message we read; larger ones are skipped unread
_MAX_INBOX = 6  # acks queued before the link is closed to check them


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


class Courier:
    def __init__(self, cfg, outbox, say):
        self.cfg = cfg
        self.outbox = outbox
        self.say = say
        dev = cfg["device_id"]
        self.events_topic = ("%s/events/%s" % (cfg["prefix"], dev)).encode()
        self.acks_topic = ("%s/acks/%s" % (cfg["prefix"], dev)).encode()
        self.rejected_topic = ("%s/rejected/%s" % (cfg["prefix"], dev)).encode()
        self.client = None
        self.sent = {}  # record counter -> ticks_ms of the last send
        self.backoff = cfg["backoff_min"] * 1000
        self.next_try = time.ticks_ms()
        self.last_io = time.ticks_ms()
        self.failures = 0
        self.ignored = 0  # messages on our topics that did not verify
        self._rx = 0
        self._inbox = []  # (topic is rejected?, message) received, checked with the link down

    def close(self):
        self._close_link()

    @property
    def connected(self):
        return self.client is not None

    def _connect(self):
        cfg = self.cfg
        _TimedSocket.timeout = cfg["connect_timeout"]
        _TimedSocket.last = None
        simple.socket = _TimedSocket
        params = {}
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
        c.set_callback(self._on_message)
        try:
            c.connect(clean_session=False)
        except Exception:
            _close(c.sock, _TimedSocket.last)  # the TLS state too, not only the TCP socket
            _TimedSocket.last = None
            raise
        c.ssl_params = None  # the certificate and key bytes are not needed after the handshake
        c.raw = _TimedSocket.last
        # Nagle + delayed ACK would hold each small write (shared/pitfalls.md): IPPROTO_TCP, TCP_NODELAY.
        try:
            c.raw.setsockopt(6, 1, 1)
        except (OSError, AttributeError):
            pass
        c.raw.settimeout(cfg["socket_timeout"])
        c.subscribe(self.acks_topic, qos=1)
        c.subscribe(self.rejected_topic, qos=1)
        self.client = c
        self.sent = {}  # after a reconnect, everything pending goes again
        self.backoff = cfg["backoff_min"] * 1000
        self.last_io = time.ticks_ms()
        self.say("LINK up %s:%d" % (cfg["broker_host"], cfg["broker_port"]))

    def _drop(self, why):
        was_up = self.client is not None
        if was_up:
            # Close the TLS socket as well as the TCP one: the TLS state is only freed by its
            # close, and a dropped link must give the heap back.
            _close(self.client.sock, self.client.raw)
            self.client = None
        gc.collect()
        self.say("LINK down" if was_up else "LINK failed")
        self.say("  " + why[:32])
        self.failures += 1
        # Exponential backoff with full jitter, capped.
        jitter = int.from_bytes(urandom(2), "big") / 65535
        delay = int(self.backoff * (0.5 + jitter / 2))
        self.next_try = time.ticks_add(time.ticks_ms(), delay)
        self.backoff = min(self.backoff * 2, self.cfg["backoff_max"] * 1000)

    def _on_message(self, topic, msg):
        # Called from inside umqtt (check_msg); only queue here.
        self._rx += 1
        if msg is None or (topic != self.acks_topic and topic != self.rejected_topic):
            self.ignored += 1
            return
        if len(self._inbox) < _MAX_INBOX:
            self._inbox.append((topic == self.rejected_topic, msg))
        else:
            self.ignored += 1  # more than a burst of acks: the rest come again

    def take_inbox(self):
        # -> the acks and rejections received and not yet checked (agent.ackcheck checks
        # them with the link down and this module unloaded).
        inbox, self._inbox = self._inbox, []
        return inbox

    def _close_link(self):
        c, self.client = self.client, None
        if c is not None:
            try:
                c.disconnect()
            except Exception:
                pass
            _close(c.sock, c.raw)
        c = None
        gc.collect()

    def service(self, budget=20):
        # Do a little delivery work; never blocks longer than the socket timeouts.
        now = time.ticks_ms()
        if self.client is None:
            if self._inbox:
                return  # the agent checks them before the link comes up again
            if not len(self.outbox) or time.ticks_diff(now, self.next_try) < 0:
                return
            try:
                gc.collect()  # the TLS handshake needs the largest free blocks we have
                self._connect()
            except Exception as e:  # OSError, MQTTException, a broker's garbage: all mean "not now"
                self.client = None
                _close(_TimedSocket.last)  # never leak the socket of a failed connect
                _TimedSocket.last = None
                self._drop(_why(e, True))
                return
        try:
            for _ in range(50):  # drain what has arrived (acks), one packet a call
                before = self._rx
                if self.client.check_msg() is None and self._rx == before:
                    break
                self.last_io = time.ticks_ms()
            resend = self.cfg["ack_timeout"] * 1000
            waiting = 0  # records sent, their ack not yet in
            for counter in self.outbox.counters():
                t = self.sent.get(counter)
                if t is not None and time.ticks_diff(time.ticks_ms(), t) < resend:
                    waiting += 1
                    continue
                if budget <= 0 or len(self._inbox) >= _MAX_INBOX:
                    break
                try:
                    eid, message = self.outbox.read(counter)
                except OSError:
                    continue  # acked or set aside meanwhile
                self.client.publish(self.events_topic, message, qos=1)
                del message
                self.sent[counter] = self.last_io = time.ticks_ms()
                self.say("SENT %s" % eid.hex()[:16])
                budget -= 1
                waiting += 1
            if self._inbox and (len(self._inbox) >= _MAX_INBOX or len(self._inbox) >= waiting):
                # Every ack we wait for is in (or the queue is full): close the link, so that
                # the agent checks them with its memory back (docs/agent.md "Delivery"); it
                # comes up again at once if records remain.
                self._close_link()
                self.next_try = time.ticks_ms()
                return
            if time.ticks_diff(time.ticks_ms(), self.last_io) > self.cfg["keepalive"] * 500:
                self.client.ping()
                self.last_io = time.ticks_ms()
        except Exception as e:  # the link failed; the outbox is untouched
            self._drop(_why(e, False))
