# The handheld's side of the HAN link (docs/han-link.md): one request, one response,
# matched by sequence number; retries on loss or corruption, bounded by count and by
# silence; every failure is a LinkError with a message an installer can use.
from micropython import const
import time

from agent import cborlite
from agent import frame

CMD_IDENTIFY = const(0x01)
CMD_WAN = const(0x02)
CMD_LOG = const(0x03)
CMD_DEVICE = const(0x04)
RESPONSE = const(0x80)  # response type = command | RESPONSE
ERROR = const(0x7F)

E_UNKNOWN_COMMAND = const(1)
E_BAD_REQUEST = const(2)
E_UNKNOWN_DEVICE = const(3)
E_NOT_RESPONDING = const(4)
E_BUSY = const(5)

ATTEMPT_MS = const(300)  # wait for a response to one attempt
SILENCE_MS = const(2000)  # no byte at all for this long: the hub is gone
MAX_TRIES = const(30)  # attempts per request on a noisy line


class LinkError(Exception):
    # Every failure of the link or of the survey (agent.survey), with a message an installer
    # can use. `kind` says which (the bench's probe and the tests name it):
    #   "HubAbsent"    nothing at all came back to the first request: no hub, or no cable;
    #   "HubTimeout"   the hub answered earlier, then went silent (hung, or cable pulled);
    #   "LineError"    bytes arrive but no valid frame does: the line is too noisy to use;
    #   "HubError"     the hub answered with an error response (`code`);
    #   "SurveyError"  the hub's answers do not make a survey (agent.survey).
    # One class, not five: each class costs about 250 bytes of the heap while the survey
    # runs (docs/agent.md "Memory").
    def __init__(self, kind, text, code=None):
        super().__init__(text)
        self.kind = kind
        self.code = code


def _head(major, n):
    # A CBOR head (RFC 8949 §3) for n < 2**16: all a request needs, without agent.cbor.
    if n < 24:
        return bytes((major << 5 | n,))
    if n < 256:
        return bytes((major << 5 | 24, n))
    return bytes((major << 5 | 25, n >> 8, n & 0xFF))


def _arg(v):
    # {0: v}, encoded as agent.cbor would (the HAN vectors hold both to it).
    if isinstance(v, bytes):
        return b"\xa1\x00" + _head(2, len(v)) + v
    return b"\xa1\x00" + _head(0, v)


_NAMES = {CMD_IDENTIFY: "IDENTIFY", CMD_WAN: "WAN", CMD_LOG: "LOG", CMD_DEVICE: "DEVICE"}


class Link:
    def __init__(self, uart, attempt_ms=ATTEMPT_MS, silence_ms=SILENCE_MS, tries=MAX_TRIES):
        self._uart = uart
        self._deframer = frame.Deframer()
        self._seq = 0
        self.attempt_ms = attempt_ms
        self.silence_ms = silence_ms
        self.tries = tries
        self.heard = False  # has the hub ever answered on this link?
        self.attempts = 0
        self.requests = 0

    def stats(self):
        d = self._deframer
        return {"requests": self.requests, "attempts": self.attempts, "good": d.good,
                "bad_fcs": d.bad_fcs, "oversize": d.oversize, "runts": d.runts}

    def request(self, cmd, arg=None):
        # Returns the decoded response payload, or raises a LinkError. arg: the request's
        # one argument (key 0), an unsigned int or a byte string (docs/han-link.md).
        payload = b"" if arg is None else _arg(arg)
        self.requests += 1
        start = time.ticks_ms()
        last_rx = start
        rx_bytes = 0
        tries = 0
        while tries < self.tries:
            tries += 1
            self.attempts += 1
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
            self._uart.write(frame.encode(seq, cmd, payload))
            sent = time.ticks_ms()
            while True:
                now = time.ticks_ms()
                left = self.attempt_ms - time.ticks_diff(now, sent)
                if time.ticks_diff(now, last_rx) >= self.silence_ms:
                    self._silent(cmd, tries, time.ticks_diff(now, start), rx_bytes)
                if left <= 0:
                    break
                if not self._uart.wait(left):
                    continue
                data = self._uart.read()
                if not data:
                    continue
                last_rx = time.ticks_ms()
                rx_bytes += len(data)
                for rseq, rtype, rpayload in self._deframer.feed(data):
                    if rseq != seq:
                        continue  # a late answer to an earlier attempt
                    self.heard = True
                    try:
                        body = cborlite.loads(rpayload) if rpayload else None
                    except ValueError:
                        break  # good FCS, bad CBOR: treat as noise, retry
                    if rtype == cmd | RESPONSE:
                        return body
                    if rtype == ERROR:
                        code = body.get(0, 0) if isinstance(body, dict) else 0
                        if code == E_BUSY:
                            break
                        text = body.get(1, "") if isinstance(body, dict) else ""
                        raise LinkError("HubError", "hub error %d: %s" % (code, text), code)
                    # any other type: a protocol error on the hub's side; retry
        raise LinkError("LineError", "line unusable: no valid answer to %s in %d tries (%d bytes received,"
                        " %d bad frames)" % (_NAMES.get(cmd, cmd), tries, rx_bytes, self._deframer.bad_fcs))

    def _silent(self, cmd, tries, elapsed, rx_bytes):
        name = _NAMES.get(cmd, cmd)
        if not self.heard:
            if rx_bytes:
                raise LinkError("LineError", "line unusable: %d bytes of noise and no valid frame, then silence"
                                " (%s, %d tries)" % (rx_bytes, name, tries))
            raise LinkError("HubAbsent", "no hub answered %s: nothing on the line for %d ms (%d tries);"
                            " check the cable" % (name, elapsed, tries))
        raise LinkError("HubTimeout", "hub stopped answering: no byte for %d ms during %s (%d tries)"
                         % (self.silence_ms, name, tries))
