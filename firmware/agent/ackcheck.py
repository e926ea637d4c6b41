# The bridge's acks and rejections, checked before the handheld acts on them
# (docs/security.md): a COSE_Sign1 (RFC 9052 §4.2, ES256) by one of the bridge keys in the
# config (`bridge_keys`; several during a rollover, picked by kid = SHA-256(key)[:8]),
# whose payload is bound to this device:
#   {0: 1, 1: device id (8 bytes), 2: event id (16 bytes), 3: outcome, 4: reason, 5: detail}
# Anything else raises ValueError; the caller ignores and counts it.
#
# It runs while the TLS link is up, in what the heap has left, so it carries its own small
# strict CBOR reader (definite lengths; integers, strings, arrays, maps, true/false/null;
# no tags but the outer 18, no floats) instead of loading agent.cbor and agent.cbordec.
import hashlib

from micropython import const

MAX_ACK = const(600)  # bytes; a real ack is about 160
_DEPTH = const(4)


def _head(d, p):
    ib = d[p]
    ai = ib & 31
    p += 1
    if ai < 24:
        return ib >> 5, ai, p
    if ai > 27:
        raise ValueError("ack: cbor")
    n = 1 << (ai - 24)
    if p + n > len(d):
        raise ValueError("ack: truncated")
    return ib >> 5, int.from_bytes(d[p:p + n], "big"), p + n


def _item(d, p, depth):
    if depth > _DEPTH or p >= len(d):
        raise ValueError("ack: cbor")
    if d[p] in (0xF4, 0xF5, 0xF6):
        return (False, True, None)[d[p] - 0xF4], p + 1
    major, n, p = _head(d, p)
    if major == 0:
        return n, p
    if major == 1:
        return -1 - n, p
    if major == 2 or major == 3:
        if p + n > len(d):
            raise ValueError("ack: truncated")
        v = d[p:p + n]
        return (str(v, "utf-8") if major == 3 else v), p + n
    if major == 4:
        out = []
        for _ in range(n):
            v, p = _item(d, p, depth + 1)
            out.append(v)
        return out, p
    if major == 5:
        out = {}
        for _ in range(n):
            k, p = _item(d, p, depth + 1)
            if isinstance(k, (list, dict)) or k in out:
                raise ValueError("ack: map key")
            out[k], p = _item(d, p, depth + 1)
        return out, p
    raise ValueError("ack: cbor")  # tags, floats, indefinite lengths: not in an ack


def loads(d):
    v, p = _item(d, 0, 0)
    if p != len(d):
        raise ValueError("ack: trailing bytes")
    return v


def _bstr_head(n):
    # shortest form (RFC 8949 §4.2.1), as the signer encoded it
    if n < 24:
        return bytes((0x40 | n,))
    return bytes((0x58, n)) if n < 256 else bytes((0x59, n >> 8, n & 255))


def check(msg, keys, device):
    # -> (event id or None, outcome, reason); keys: list of 65-byte SEC1 points.
    if len(msg) > MAX_ACK or len(msg) < 2 or msg[0] != 0xD2:  # tag 18
        raise ValueError("ack is not a COSE_Sign1")
    parts = loads(msg[1:])
    if not isinstance(parts, list) or len(parts) != 4:
        raise ValueError("ack is not a COSE_Sign1")
    prot, unprot, payload, sig = parts
    parts = None
    if not isinstance(prot, bytes) or not isinstance(payload, bytes) or unprot != {}:
        raise ValueError("ack is not a COSE_Sign1")
    hdr = loads(prot)
    if not isinstance(hdr, dict) or hdr.get(1) != -7:
        raise ValueError("ack alg is not ES256")
    kid = hdr.get(4)
    key = None
    for k in keys:
        if hashlib.sha256(k).digest()[:8] == kid:
            key = k
            break
    if key is None:
        raise ValueError("ack signed by an unknown key")
    # Sig_structure = ["Signature1", protected, h'', payload] (RFC 9052 §4.4)
    tbs = b"\x84\x6aSignature1" + _bstr_head(len(prot)) + prot + b"\x40" + _bstr_head(len(payload)) + payload
    from agent import ecverify

    ok = ecverify.verify(ecverify.point(key), tbs, sig)
    del ecverify
    if not ok:
        raise ValueError("ack signature does not verify")
    m = loads(payload)
    if not isinstance(m, dict) or m.get(0) != 1 or m.get(1) != device:
        raise ValueError("ack is for another device")
    eid = m.get(2)
    if not isinstance(eid, bytes) or len(eid) != 16:
        eid = None
    return eid, m.get(3), m.get(4)


def apply(courier):
    # The courier's queued acks and rejections: act on those that verify against a bridge
    # key and name this device; ignore and count the rest (docs/security.md).
    inbox = courier._inbox
    while inbox:
        rejected, msg = inbox.pop(0)
        try:
            eid, outcome, reason = check(msg, courier.keys, courier.device)
        except (ValueError, KeyError, TypeError, IndexError):
            courier.ignored += 1
            courier.say("ACK ignored: not from the bridge")
            continue
        finally:
            msg = None
        if eid is None:
            continue  # a rejection that names no event: nothing of ours to act on
        if not rejected and outcome in ("stored", "duplicate"):
            counter = courier.outbox.remove(eid)
            if counter is not None:
                courier.sent.pop(counter, None)
                courier.acked += 1
                courier.say("ACKED %s %s" % (eid.hex()[:16], outcome))
        elif rejected and outcome == "rejected":
            # Refused for good (revoked key, clock far ahead, schema): stop sending it, keep
            # it on flash (outbox/rejected/), tell the installer.
            counter = courier.outbox.set_aside(eid)
            if counter is not None:
                courier.sent.pop(counter, None)
                courier.say("REJECTED %s %s" % (eid.hex()[:16], reason or ""))
        else:
            courier.ignored += 1
