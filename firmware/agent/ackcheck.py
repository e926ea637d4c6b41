# The bridge's acks and rejections, checked before the handheld acts on them
# (docs/security.md): a COSE_Sign1 (RFC 9052 §4.2, ES256) by one of the bridge keys in the
# config (`bridge_keys`; several during a rollover, picked by kid = SHA-256(key)[:8]),
# whose payload is bound to this device:
#   {0: 1, 1: device id (8 bytes), 2: event id (16 bytes), 3: outcome, 4: reason, 5: detail}
# Anything else raises ValueError; the caller ignores and counts it.
#
# It runs in a tight heap, so it reads CBOR with agent.cborlite (definite lengths; integers,
# strings, arrays, maps, true/false/null; no tags but the outer 18, no floats) instead of
# loading agent.cbor and the decoder (tests/mpy/cbordec.py).
import hashlib

from micropython import const

from agent.cborlite import loads

MAX_ACK = const(600)  # bytes; a real ack is about 160
def _bstr_head(n):
    # shortest form (RFC 8949 §4.2.1), as the signer encoded it
    if n < 24:
        return bytes((0x40 | n,))
    return bytes((0x58, n)) if n < 256 else bytes((0x59, n >> 8, n & 255))


def check(msg, keys, device):
    # -> (event id or None, outcome, reason, flags); keys: list of 65-byte SEC1 points;
    # flags: [[mpxn, flag, since, code], ...] as the bridge now has them (acks).
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
    # Sig_structure = ["Signature1", protected, h'', payload] (RFC 9052 §4.4), hashed in parts
    tbs = (b"\x84\x6aSignature1", _bstr_head(len(prot)), prot, b"\x40", _bstr_head(len(payload)), payload)
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
    flags = m.get(6)
    if not isinstance(flags, list):
        flags = []
    return eid, m.get(3), m.get(4), [f for f in flags if isinstance(f, list) and len(f) == 4]


def apply(agent, inbox):
    # Acks and rejections queued while the link was up, checked now that it is down (the
    # TLS link and this check never share the heap): act on those that verify against a
    # bridge key and name this device; ignore and count the rest (docs/security.md).
    from binascii import unhexlify

    cfg = agent.cfg
    keys = [unhexlify(k) for k in cfg["bridge_keys"]]
    device = unhexlify(cfg["device_id"].replace("-", ""))
    while inbox:
        rejected, msg = inbox[0]  # taken off only once handled: a MemoryError leaves it for later
        try:
            eid, outcome, reason, flags = check(msg, keys, device)
        except (ValueError, KeyError, TypeError, IndexError):
            inbox.pop(0)
            agent.ignored += 1
            agent.out("ACK ignored: not from the bridge")
            continue
        inbox.pop(0)
        msg = None
        if eid is None:
            # A rejection that names no event (the bridge could not trust it): nothing of ours
            # is set aside, but sending again at once would be refused again, so delivery is
            # held off (bounded exponential backoff with jitter) and the installer is told once.
            if rejected:
                import time
                from os import urandom

                told = agent.hold[2] if agent.hold else None
                ms = min(max(agent.hold[1] * 2 if agent.hold else 0, cfg["backoff_min"] * 1000),
                         cfg["backoff_max"] * 1000)
                wait = ms // 2 + ms * int.from_bytes(urandom(2), "big") // 131070  # full jitter
                agent.hold = (time.ticks_add(time.ticks_ms(), wait), ms, reason)
                if reason in _HINTS and reason != told:
                    agent.say("REJECTED", "%s: %s" % (reason, _HINTS[reason]))
            continue
        if not rejected and outcome in ("stored", "duplicate"):
            agent.hold = None  # the bridge takes our events again
            if agent.outbox.remove(eid) is not None:
                agent.acked += 1
                agent.out("ACKED %s %s" % (eid.hex()[:16], outcome))
                try:
                    _outcome(agent, eid, flags)
                except MemoryError:  # the evidence is safe; only the display of the flag is lost
                    agent.out("FLAG see status later")
        elif rejected and outcome == "rejected":
            # Refused for good (revoked key, clock far ahead, schema): stop sending it, keep
            # it on flash (outbox/rejected/), tell the installer.
            if agent.outbox.set_aside(eid) is not None:
                agent.out("REJECTED %s %s" % (eid.hex()[:16], reason or ""))
                if reason in _HINTS:
                    agent.say("HINT", _HINTS[reason])
        else:
            agent.ignored += 1


# Next steps for the rejections an installer can act on.
_HINTS = {"unknown_key": "this handheld is not registered. Call the office to register it.",
          "revoked_key": "this handheld is revoked. Stop; call the office.",
          "time_in_future": "clock ahead. Set the date and time.",
          "time_before_floor": "clock not set. Set the date and time.",
          "bad_signature": "key mismatch. Call the office."}


def _outcome(agent, eid, flags):
    # The bridge's flag for each meter point of the event: shown before the installer
    # leaves, and kept for `status`.
    from agent.words import WORDS

    said = ""
    key = eid.hex()
    for s in agent.predicted:
        if s.startswith(key):
            said = s
    for f in flags:
        mpxn, flag, since, code = (str(x)[:24] for x in f)
        agent.say("FLAG", "%s %s %s %s" % (mpxn, flag or "-", since, WORDS.get(code, code)))
        agent.outcomes.append("%s %s %s" % (mpxn, flag or "-", since))
        p = said.find(" %s:" % mpxn)
        if p >= 0:
            p = said[p + len(mpxn) + 2:].split(" ", 1)[0]
            if p != (flag or "-"):
                # The back office has something else than the handheld said on site: another
                # event decides, or the rules differ. The installer must not leave believing it.
                agent.say("DIFFERS", "%s: said %s, office has %s" % (mpxn, p, flag or "-"))
    del agent.outcomes[:-5]
