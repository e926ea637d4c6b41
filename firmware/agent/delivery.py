# Delivery of the outbox over MQTT (docs/agent.md "Delivery"), around micropython-lib's
# umqtt.simple in the spirit of umqtt.robust: connect with a timeout, keepalive pings,
# exponential backoff with jitter and a cap, QoS 1 to <prefix>/events/<device-id>.
# An event leaves the outbox only on the bridge's ack on <prefix>/acks/<device-id>;
# until then it is sent again after ack_timeout, as the same signed bytes.
import sys
import time
from os import urandom

from agent import cbor

from umqtt import simple


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
            return super().wait_msg()
        finally:
            if self.raw is not None:
                self.raw.settimeout(self.read_timeout)


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
        self.acked = 0
        self.failures = 0
        self._rx = 0

    def take_acked(self):
        n, self.acked = self.acked, 0
        return n

    def close(self):
        if self.client is not None:
            try:
                self.client.disconnect()
            except Exception:
                pass
            self.client = None

    @property
    def connected(self):
        return self.client is not None

    def _connect(self):
        cfg = self.cfg
        _TimedSocket.timeout = cfg["connect_timeout"]
        simple.socket = _TimedSocket
        params = {}
        if cfg["tls"]:
            _ussl()
            params = {"server_hostname": cfg["tls_server_name"] or cfg["broker_host"]}
            if cfg["tls_cert"]:
                params["cert"] = open(cfg["tls_cert"], "rb").read()
                params["key"] = open(cfg["tls_key"], "rb").read()
            if cfg["tls_ca"]:
                import ssl

                params["cadata"] = open(cfg["tls_ca"], "rb").read()
                params["cert_reqs"] = ssl.CERT_REQUIRED
        c = _Client(cfg["device_id"], cfg["broker_host"], cfg["broker_port"], keepalive=cfg["keepalive"],
                    ssl=cfg["tls"], ssl_params=params)
        c.read_timeout = cfg["socket_timeout"]
        c.set_callback(self._on_message)
        c.connect(clean_session=False)
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
            try:
                (self.client.raw or self.client.sock).close()
            except Exception:
                pass
            self.client = None
        self.say("LINK down" if was_up else "LINK failed")
        self.say("  " + why[:32])
        self.failures += 1
        # Exponential backoff with full jitter, capped.
        jitter = int.from_bytes(urandom(2), "big") / 65535
        delay = int(self.backoff * (0.5 + jitter / 2))
        self.next_try = time.ticks_add(time.ticks_ms(), delay)
        self.backoff = min(self.backoff * 2, self.cfg["backoff_max"] * 1000)

    def _on_message(self, topic, msg):
        self._rx += 1
        if topic == self.rejected_topic:
            self._on_rejected(msg)
            return
        if topic != self.acks_topic:
            return
        try:
            ack = cbor.loads(msg)
            eid = ack[0]
        except (ValueError, KeyError, TypeError):
            self.say("ACK ignored: malformed")
            return
        counter = self.outbox.remove(eid)
        if counter is not None:
            self.sent.pop(counter, None)
            self.acked += 1
            self.say("ACKED %s %s" % (eid.hex()[:16], ack.get(1, "")))

    def _on_rejected(self, msg):
        # The bridge refused a correctly signed event for good (revoked key, clock far
        # ahead, schema): stop sending it, keep it on flash (outbox/rejected/), tell the installer.
        import json
        from binascii import unhexlify

        try:
            body = json.loads(msg)
            eid = unhexlify(body["event_id"])
        except (ValueError, KeyError, TypeError):
            return  # no event id: not signed by us, nothing to act on
        counter = self.outbox.set_aside(eid)
        if counter is not None:
            self.sent.pop(counter, None)
            self.say("REJECTED %s %s" % (eid.hex()[:16], body.get("reason", "")))

    def service(self, budget=20):
        # Do a little delivery work; never blocks longer than the socket timeouts.
        now = time.ticks_ms()
        if self.client is None:
            if not len(self.outbox) or time.ticks_diff(now, self.next_try) < 0:
                return
            try:
                self._connect()
            except Exception as e:  # OSError, MQTTException, a broker's garbage: all mean "not now"
                self.client = None
                self._drop("connect failed %r" % (e,))
                return
        try:
            for _ in range(50):  # drain what has arrived (acks), one packet a call
                before = self._rx
                if self.client.check_msg() is None and self._rx == before:
                    break
                self.last_io = time.ticks_ms()
            resend = self.cfg["ack_timeout"] * 1000
            for counter in self.outbox.counters():
                if budget <= 0:
                    break
                t = self.sent.get(counter)
                if t is not None and time.ticks_diff(time.ticks_ms(), t) < resend:
                    continue
                eid, message = self.outbox.read(counter)
                self.client.publish(self.events_topic, message, qos=1)
                del message
                self.sent[counter] = self.last_io = time.ticks_ms()
                self.say("SENT %s" % eid.hex()[:16])
                budget -= 1
            if time.ticks_diff(time.ticks_ms(), self.last_io) > self.cfg["keepalive"] * 500:
                self.client.ping()
                self.last_io = time.ticks_ms()
        except Exception as e:  # the link failed; the outbox is untouched
            self._drop("%r" % (e,))
