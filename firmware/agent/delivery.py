# Delivery of the outbox over MQTT (docs/agent.md "Delivery"): the courier's policy, in the
# spirit of umqtt.robust: when to connect, keepalive pings, exponential backoff with jitter and
# a cap, QoS 1 to <prefix>/events/<device-id>. The protocol itself is agent.mqttc.
# An event leaves the outbox only on the bridge's signed ack on <prefix>/acks/<device-id>
# (agent.ackcheck); until then it is sent again after ack_timeout, as the same signed bytes.
# Acks are checked and applied after the send loop, never from inside a publish, so a
# record is never pulled from under the loop that is reading it.
import gc
import time
from os import urandom

from agent import mqttc


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
    arg = e.args[0] if isinstance(e, OSError) and e.args else None
    if isinstance(arg, str):
        return arg  # agent.mqttc's own words: a CONNACK or SUBACK refusal
    text = _WHY.get(arg)
    if text is None:
        text = ("connect failed %r" if connecting else "%r") % (e,)
    return text


_MAX_INBOX = 6  # acks queued before the link is closed to check them


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
        c = mqttc.connect(cfg, self._on_message)
        try:
            c.subscribe(self.acks_topic, qos=1)
            c.subscribe(self.rejected_topic, qos=1)
        except Exception:
            c._drop()  # never leak the sockets of a link that failed half way up
            raise
        self.client = c
        self.sent = {}  # after a reconnect, everything pending goes again
        self.backoff = cfg["backoff_min"] * 1000
        self.last_io = time.ticks_ms()
        self.say("LINK up %s:%d" % (cfg["broker_host"], cfg["broker_port"]))

    def _drop(self, why):
        was_up = self.client is not None
        if was_up:
            self.client._drop()
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
        # Called from inside the client's reads (check_msg, publish); only queue here.
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
            c._drop()
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
                self.client = None  # mqttc.connect closed the failed attempt's sockets
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
