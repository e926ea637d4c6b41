# The field event payload (docs/wire.md): built from named fields, validated on
# the way in, encoded as a deterministic CBOR map with small integer keys.
#
# build(ev) -> payload bytes        ev: dict with the names of docs/wire.md
# eventread.parse(payload)          the inverse, for the tests (tests/mpy/eventread.py)
# new_id() -> 16 random bytes       an event id; kept with the event so re-sends reuse it
from micropython import const

# Private (underscored) constants are folded in by the compiler and leave no name behind
# to intern (docs/agent.md "Memory").
from os import urandom

from agent import ids

_VERSION = const(2)  # v2: evidence may carry the hub's clock (key 4)
MAX_PAYLOAD = const(3968)  # so that the signed message fits MAX_MESSAGE = 4096
_MAX_MPXNS = const(4)  # per kind (MPANs, MPRNs)
_MAX_DEVICES = const(16)
_MAX_TEXT = const(40)  # job reference, installer id
_MAX_SHORT = const(32)  # versions, serials, firmware, modes, check codes
_MAX_REASON = const(200)
_MAX_CHECKS = const(8)
_ID_LEN = const(16)

from agent.kinds import TYPES  # noqa: E402
DEVICE_TYPES = ("ESME", "GSME", "PPMID", "HCALCS", "IHD", "CAD")
STATUSES = (
    "Pending", "Whitelisted", "InstalledNotCommissioned", "Commissioned",
    "Decommissioned", "Withdrawn", "Suspended", "Recovery", "Recovered",
)
GENERATIONS = ("SMETS1", "SMETS2")

# Payload keys
_K_V = const(0)
_K_ID = const(1)
_K_TYPE = const(2)
_K_MPANS = const(3)
_K_MPRNS = const(4)
_K_JOB = const(5)
_K_INSTALLER = const(6)
_K_TIME = const(7)
_K_COUNTER = const(8)
_K_FW = const(9)
_K_EVIDENCE = const(10)
_K_OVERRIDE = const(11)

# Sub-map keys, in order; a name's key is its position. Optional entries are
# omitted when None. Kinds: "u" uint, "t" short text, "e" EUI-64, "b" bool,
# "i" int, "g" generation, "d" device type, "s" inventory status, "m" MPxN.
_HUB = (("chf", "e", 1), ("gpf", "e", 0), ("generation", "g", 1),
        ("version", "t", 0), ("firmware", "t", 0), ("dcc", "b", 0))
_WAN = (("connected", "b", 1), ("signal", "i", 0))
_DEVICE = (("eui", "e", 1), ("type", "d", 1), ("status", "s", 0), ("mpxn", "m", 0),
           ("serial", "t", 0), ("smets", "t", 0), ("mode", "t", 0), ("firmware", "t", 0),
           ("answered", "b", 0))


class EventError(ValueError):
    pass


def new_id():
    return urandom(_ID_LEN)


def _text(path, v, lo, hi):
    if not isinstance(v, str) or not lo <= len(v) <= hi:
        raise EventError("%s: text of %d to %d characters required" % (path, lo, hi))
    return v


def _uint(path, v, hi=(1 << 63) - 1):
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= hi:
        raise EventError("%s: integer 0..%d required" % (path, hi))
    return v


def _mpxn(path, v):
    # An MPAN core is 13 digits; an MPRN 6 to 10. Route by length.
    try:
        if isinstance(v, str) and len(v) == 13:
            return ids.check_mpan(v)
        return ids.check_mprn(v)
    except ValueError as e:
        raise EventError("%s: %s" % (path, e))


def _value(path, kind, v):
    if kind == "t":
        return _text(path, v, 1, _MAX_SHORT)
    if kind == "e":
        try:
            return ids.eui64_bytes(v)
        except ValueError as e:
            raise EventError("%s: %s" % (path, e))
    if kind == "b":
        if not isinstance(v, bool):
            raise EventError("%s: true or false required" % path)
        return v
    if kind == "i":
        if not isinstance(v, int) or isinstance(v, bool) or not -200 <= v <= 200:
            raise EventError("%s: integer -200..200 required" % path)
        return v
    if kind == "m":
        return _mpxn(path, v)
    allowed = GENERATIONS if kind == "g" else DEVICE_TYPES if kind == "d" else STATUSES
    if v not in allowed:
        raise EventError("%s: one of %s required, got %r" % (path, ", ".join(allowed), v))
    return v


def _submap(path, spec, src):
    if not isinstance(src, dict):
        raise EventError("%s: a map required" % path)
    out = {}
    names = []
    for key, (name, kind, required) in enumerate(spec):
        names.append(name)
        v = src.get(name)
        if v is None:
            if required:
                raise EventError("%s.%s: required" % (path, name))
            continue
        out[key] = _value(path + "." + name, kind, v)
    for name in src:
        if name not in names:
            raise EventError("%s.%s: unknown field" % (path, name))
    return out


def _evidence(ev):
    if not isinstance(ev, dict):
        raise EventError("evidence: a map required")
    out = {0: _uint("evidence.read_time", ev.get("read_time"))}
    hub = ev.get("hub")
    out[1] = None if hub is None else _submap("evidence.hub", _HUB, hub)
    wan = ev.get("wan")
    out[2] = None if wan is None else _submap("evidence.wan", _WAN, wan)
    devices = ev.get("devices", [])
    if not isinstance(devices, list) or len(devices) > _MAX_DEVICES:
        raise EventError("evidence.devices: a list of at most %d required" % _MAX_DEVICES)
    out[3] = [_submap("evidence.devices[%d]" % i, _DEVICE, d) for i, d in enumerate(devices)]
    if ev.get("hub_time") is not None:
        out[4] = _uint("evidence.hub_time", ev["hub_time"])
    for name in ev:
        if name not in ("read_time", "hub", "wan", "devices", "hub_time"):
            raise EventError("evidence.%s: unknown field" % name)
    return out


def _mpxns(name, v, check):
    if v is None:
        v = []
    if not isinstance(v, list) or len(v) > _MAX_MPXNS:
        raise EventError("%s: a list of at most %d required" % (name, _MAX_MPXNS))
    out = []
    for i, x in enumerate(v):
        try:
            check(x)
        except ValueError as e:
            raise EventError("%s[%d]: %s" % (name, i, e))
        if x in out:
            raise EventError("%s[%d]: repeated %s" % (name, i, x))
        out.append(x)
    return out


def _override(v):
    if not isinstance(v, dict) or set(v) - {"reason", "checks"}:
        raise EventError("override: a map of reason and checks required")
    checks = v.get("checks")
    if not isinstance(checks, list) or not 1 <= len(checks) <= _MAX_CHECKS:
        raise EventError("override.checks: a list of 1 to %d check codes required" % _MAX_CHECKS)
    return {
        0: _text("override.reason", v.get("reason"), 1, _MAX_REASON),
        1: [_text("override.checks[%d]" % i, c, 1, _MAX_SHORT) for i, c in enumerate(checks)],
    }


def build(ev):
    if not isinstance(ev, dict):
        raise EventError("event: a map required")
    eid = ev.get("id")
    if not isinstance(eid, (bytes, bytearray)) or len(eid) != _ID_LEN:
        raise EventError("id: %d bytes required" % _ID_LEN)
    etype = ev.get("type")
    if etype not in TYPES:
        raise EventError("type: one of %s required, got %r" % (", ".join(TYPES), etype))
    mpans = _mpxns("mpans", ev.get("mpans"), ids.check_mpan)
    mprns = _mpxns("mprns", ev.get("mprns"), ids.check_mprn)
    if not mpans and not mprns:
        raise EventError("mpans/mprns: at least one meter point required")
    payload = {
        _K_V: _VERSION,
        _K_ID: bytes(eid),
        _K_TYPE: etype,
        _K_MPANS: mpans,
        _K_MPRNS: mprns,
        _K_JOB: _text("job", ev.get("job"), 1, _MAX_TEXT),
        _K_INSTALLER: _text("installer", ev.get("installer"), 1, _MAX_TEXT),
        _K_TIME: _uint("time", ev.get("time")),
        _K_COUNTER: _uint("counter", ev.get("counter")),
        _K_FW: _text("firmware", ev.get("firmware"), 1, _MAX_SHORT),
        _K_EVIDENCE: _evidence(ev.get("evidence")),
    }
    if ev.get("override") is not None:
        payload[_K_OVERRIDE] = _override(ev["override"])
    for name in ev:
        if name not in _NAMES:
            raise EventError("%s: unknown field" % name)
    # Two passes: the size first, then one buffer of exactly that size, filled in place. A
    # growing buffer would need ever larger free blocks at the job's tightest moment.
    size = _put(None, payload, 0)
    if size > MAX_PAYLOAD:
        raise EventError("event: %d bytes, over the %d-byte limit" % (size, MAX_PAYLOAD))
    data = bytearray(size)
    _put(data, payload, 0)
    return data


def _head(buf, major, n, i):
    # RFC 8949 §4.2.1 shortest form; the payload's numbers are below 2**64 (_uint).
    # Written at buf[i:] (buf None: only counted); -> the index after it.
    if n < 24:
        if buf is not None:
            buf[i] = major << 5 | n
        return i + 1
    size = 1 if n < 0x100 else 2 if n < 0x10000 else 4 if n < 0x100000000 else 8
    if buf is not None:
        buf[i] = major << 5 | {1: 24, 2: 25, 4: 26, 8: 27}[size]
        buf[i + 1:i + 1 + size] = n.to_bytes(size, "big")
    return i + 1 + size


def _put(buf, v, i):
    # The payload's deterministic CBOR (RFC 8949 §4.2.1), without agent.cbor: its values
    # are None, bools, ints, bytes, text, lists and maps whose keys are small unsigned
    # ints, which sort bytewise as they sort as numbers. The vectors hold it to agent.cbor.
    # Written at buf[i:] (buf None: only counted); -> the index after it.
    if v is None or v is True or v is False:
        if buf is not None:
            buf[i] = 0xF6 if v is None else 0xF5 if v else 0xF4
        return i + 1
    if isinstance(v, int):
        return _head(buf, 1 if v < 0 else 0, -1 - v if v < 0 else v, i)
    if isinstance(v, str):
        v = v.encode()
        i = _head(buf, 3, len(v), i)
    elif isinstance(v, bytes):
        i = _head(buf, 2, len(v), i)
    elif isinstance(v, list):
        i = _head(buf, 4, len(v), i)
        for x in v:
            i = _put(buf, x, i)
        return i
    else:
        i = _head(buf, 5, len(v), i)
        for k in sorted(v):
            i = _put(buf, v[k], _head(buf, 0, k, i))
        return i
    if buf is not None:
        buf[i:i + len(v)] = v
    return i + len(v)


_NAMES = ("id", "type", "mpans", "mprns", "job", "installer", "time", "counter",
          "firmware", "evidence", "override")
