# The field event payload (docs/wire.md): built from named fields, validated on
# the way in, encoded as a deterministic CBOR map with small integer keys.
#
# build(ev) -> payload bytearray    ev: dict with the names of docs/wire.md
# eventread.parse(payload)          the inverse, for the tests (tests/mpy/eventread.py)
# new_id() -> 16 random bytes       an event id; kept with the event so re-sends reuse it
from micropython import const

from agent import ids
from agent.kinds import TYPES

# Private (underscored) constants are folded in by the compiler and leave no name behind
# to intern (docs/agent.md "Memory"). Every global is a slot in the module's dict, which is
# made while the module loads, as one block: this module keeps fewer than 23 (a 368-byte
# block; 29 needed 592 bytes in one piece, and the load failed in a split heap).

_VERSION = const(2)  # v2: evidence may carry the hub's clock (key 4)
MAX_PAYLOAD = const(3968)  # so that the signed message fits MAX_MESSAGE = 4096
_MAX_MPXNS = const(4)  # per kind (MPANs, MPRNs)
_MAX_DEVICES = const(16)
_MAX_TEXT = const(40)  # job reference, installer id
_MAX_SHORT = const(32)  # versions, serials, firmware, modes, check codes
_MAX_REASON = const(200)
_MAX_CHECKS = const(8)
_ID_LEN = const(16)

DEVICE_TYPES = ("ESME", "GSME", "PPMID", "HCALCS", "IHD", "CAD")
STATUSES = (
    "Pending", "Whitelisted", "InstalledNotCommissioned", "Commissioned",
    "Decommissioned", "Withdrawn", "Suspended", "Recovery", "Recovered",
)
GENERATIONS = ("SMETS1", "SMETS2")

# Sub-map keys, in order: a name's key is its position. Each spec is (names, kinds, the
# required ones as a bitmask of positions); optional entries are omitted when None. Kinds:
# "t" short text, "e" EUI-64, "b" bool, "i" int, "g" generation, "d" device type,
# "s" inventory status, "m" MPxN. (Strings, not a tuple a field: a tuple costs 48 bytes of
# the heap at the job's tightest moment.)
_SPECS = (
    (("chf", "gpf", "generation", "version", "firmware", "dcc"), "eegttb", 0b101),  # evidence.hub
    (("connected", "signal"), "bi", 0b1),  # evidence.wan
    (("eui", "type", "status", "mpxn", "serial", "smets", "mode", "firmware", "answered"), "edsmttttb", 0b11),
)  # an evidence.devices entry


del const  # used by the compiler only: not a global to keep


# A refused field is a ValueError whose message starts with the field's path. A sub-map's
# paths ("evidence.devices[2].serial") are only made for the error.
def new_id():
    from os import urandom

    return urandom(_ID_LEN)


# The payload is validated and written in one walk of the event, run twice: once counting
# (buf None), then into one buffer of exactly that size. Each writer takes (buf, i, ...) and
# returns the index after what it wrote. No converted copy of the event is made: the job's
# tightest moment holds the event and the payload's bytes, nothing between (docs/agent.md
# "Memory"). The encoding is RFC 8949 §4.2.1's deterministic CBOR: shortest heads, and map
# keys that are small unsigned ints written in ascending order, which is bytewise order.
def _head(buf, i, major, n):
    # A head, shortest form; the payload's numbers are below 2**64 (_uint).
    if n < 24:
        if buf is not None:
            buf[i] = major << 5 | n
        return i + 1
    size = 1 if n < 0x100 else 2 if n < 0x10000 else 4 if n < 0x100000000 else 8
    if buf is not None:
        buf[i] = major << 5 | {1: 24, 2: 25, 4: 26, 8: 27}[size]
        buf[i + 1:i + 1 + size] = n.to_bytes(size, "big")
    return i + 1 + size


def _string(buf, i, major, b):
    # b as a byte string (major 2) or a text string (major 3)
    i = _head(buf, i, major, len(b))
    if buf is not None:
        buf[i:i + len(b)] = b
    return i + len(b)


def _path(parent, name):
    # A field's path, for its error: "parent.name", or either alone.
    return name if parent is None else parent if name is None else "%s.%s" % (parent, name)


def _text(buf, i, path, v, lo, hi, name=None):
    if not isinstance(v, str) or not lo <= len(v) <= hi:
        raise ValueError("%s: text of %d to %d characters required" % (_path(path, name), lo, hi))
    return _string(buf, i, 3, v.encode())


def _uint(buf, i, path, v, name=None):
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 63:
        raise ValueError("%s: integer %d..%d required" % (_path(path, name), 0, (1 << 63) - 1))
    return _head(buf, i, 0, v)


def _value(buf, i, parent, name, kind, v):
    # A sub-map's field (parent.name).
    if kind == "t":
        return _text(buf, i, parent, v, 1, _MAX_SHORT, name)
    try:
        if kind == "e":
            return _string(buf, i, 2, ids.eui64_bytes(v))
        if kind == "m":  # an MPAN core is 13 digits; an MPRN 6 to 10: routed by length
            v = ids.check_mpan(v) if isinstance(v, str) and len(v) == 13 else ids.check_mprn(v)
            return _string(buf, i, 3, v.encode())
    except ValueError as e:
        raise ValueError("%s: %s" % (_path(parent, name), e))
    if kind == "b":
        if not isinstance(v, bool):
            raise ValueError("%s: true or false required" % _path(parent, name))
        return _head(buf, i, 7, 21 if v else 20)  # true, false
    if kind == "i":
        if not isinstance(v, int) or isinstance(v, bool) or not -200 <= v <= 200:
            raise ValueError("%s: integer %d..%d required" % (_path(parent, name), -200, 200))
        return _head(buf, i, 1, -1 - v) if v < 0 else _head(buf, i, 0, v)
    allowed = GENERATIONS if kind == "g" else DEVICE_TYPES if kind == "d" else STATUSES
    if v not in allowed:
        raise ValueError("%s: one of %s required, got %r" % (_path(parent, name), ", ".join(allowed), v))
    return _string(buf, i, 3, v.encode())


def _fields(src, names, path):
    # Every field of src is one of names, or the first that is not is refused.
    for name in src:
        if name not in names:
            raise ValueError("%s: unknown field" % _path(path, name))


def _submap(buf, i, path, spec, src):
    # src (names) as the map {position in spec: value}; None values are left out.
    if not isinstance(src, dict):
        raise ValueError("%s: a map required" % path)
    names, kinds, required = spec
    i = _head(buf, i, 5, sum(1 for name in names if src.get(name) is not None))
    for key, name in enumerate(names):
        v = src.get(name)
        if v is None:
            if required >> key & 1:
                raise ValueError("%s: required" % _path(path, name))
            continue
        i = _value(buf, _head(buf, i, 0, key), path, name, kinds[key], v)
    _fields(src, names, path)
    return i


def _evidence(buf, i, ev):
    if not isinstance(ev, dict):  # _submap's template, one string in the heap for both
        raise ValueError("%s: a map required" % "evidence")
    i = _head(buf, i, 5, 4 if ev.get("hub_time") is None else 5)
    i = _uint(buf, _head(buf, i, 0, 0), "evidence", ev.get("read_time"), "read_time")
    for key, name in ((1, "hub"), (2, "wan")):
        i = _head(buf, i, 0, key)
        v = ev.get(name)
        i = _head(buf, i, 7, 22) if v is None else _submap(buf, i, _path("evidence", name), _SPECS[key - 1], v)
    devices = ev.get("devices", [])
    if not isinstance(devices, list) or len(devices) > _MAX_DEVICES:
        raise ValueError("%s: a list of at most %d required" % (_path("evidence", "devices"), _MAX_DEVICES))
    i = _head(buf, _head(buf, i, 0, 3), 4, len(devices))
    for n, d in enumerate(devices):
        i = _submap(buf, i, "evidence.devices[%d]" % n, _SPECS[2], d)
    if ev.get("hub_time") is not None:
        i = _uint(buf, _head(buf, i, 0, 4), "evidence", ev["hub_time"], "hub_time")
    _fields(ev, ("read_time", "hub", "wan", "devices", "hub_time"), "evidence")
    return i


def _mpxns(buf, i, name, v, check):
    v = [] if v is None else v
    if not isinstance(v, list) or len(v) > _MAX_MPXNS:
        raise ValueError("%s: a list of at most %d required" % (name, _MAX_MPXNS))
    i = _head(buf, i, 4, len(v))
    for n, x in enumerate(v):
        try:
            check(x)
        except ValueError as e:
            raise ValueError("%s[%d]: %s" % (name, n, e))
        if v.index(x) < n:
            raise ValueError("%s[%d]: repeated %s" % (name, n, x))
        i = _string(buf, i, 3, x.encode())
    return i


def _override(buf, i, v):
    if not isinstance(v, dict) or [k for k in v if k not in ("reason", "checks")]:
        raise ValueError("override: a map of reason and checks required")
    checks = v.get("checks")
    if not isinstance(checks, list) or not 1 <= len(checks) <= _MAX_CHECKS:
        raise ValueError("override.checks: a list of 1 to %d check codes required" % _MAX_CHECKS)
    i = _text(buf, _head(buf, _head(buf, i, 5, 2), 0, 0), "override", v.get("reason"), 1, _MAX_REASON, "reason")
    i = _head(buf, _head(buf, i, 0, 1), 4, len(checks))
    for n, c in enumerate(checks):
        i = _text(buf, i, "override", c, 1, _MAX_SHORT, "checks[%d]" % n)
    return i


def _event(buf, ev):
    # The payload map, keys 0 to 11 (docs/wire.md), in order. -> its size
    override = ev.get("override")
    i = _head(buf, 0, 5, 11 if override is None else 12)
    i = _head(buf, _head(buf, i, 0, 0), 0, _VERSION)
    eid = ev.get("id")
    if not isinstance(eid, (bytes, bytearray)) or len(eid) != _ID_LEN:
        raise ValueError("id: %d bytes required" % _ID_LEN)
    i = _string(buf, _head(buf, i, 0, 1), 2, eid)
    if ev.get("type") not in TYPES:
        raise ValueError("%s: one of %s required, got %r" % ("type", ", ".join(TYPES), ev.get("type")))
    i = _string(buf, _head(buf, i, 0, 2), 3, ev["type"].encode())
    i = _mpxns(buf, _head(buf, i, 0, 3), "mpans", ev.get("mpans"), ids.check_mpan)
    i = _mpxns(buf, _head(buf, i, 0, 4), "mprns", ev.get("mprns"), ids.check_mprn)
    if not ev.get("mpans") and not ev.get("mprns"):
        raise ValueError("mpans/mprns: at least one meter point required")
    i = _text(buf, _head(buf, i, 0, 5), "job", ev.get("job"), 1, _MAX_TEXT)
    i = _text(buf, _head(buf, i, 0, 6), "installer", ev.get("installer"), 1, _MAX_TEXT)
    i = _uint(buf, _head(buf, i, 0, 7), "time", ev.get("time"))
    i = _uint(buf, _head(buf, i, 0, 8), "counter", ev.get("counter"))
    i = _text(buf, _head(buf, i, 0, 9), "firmware", ev.get("firmware"), 1, _MAX_SHORT)
    i = _evidence(buf, _head(buf, i, 0, 10), ev.get("evidence"))
    if override is not None:
        i = _override(buf, _head(buf, i, 0, 11), override)
    _fields(ev, ("id", "type", "mpans", "mprns", "job", "installer", "time", "counter", "firmware", "evidence",
                 "override"), None)
    return i


def build(ev):
    if not isinstance(ev, dict):
        raise ValueError("%s: a map required" % "event")
    size = _event(None, ev)  # validates it all; nothing is allocated for the payload yet
    if size > MAX_PAYLOAD:
        raise ValueError("event: %d bytes, over the %d-byte limit" % (size, MAX_PAYLOAD))
    data = bytearray(size)
    _event(data, ev)
    return data

