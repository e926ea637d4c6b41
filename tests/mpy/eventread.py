# The inverse of agent.event.build(), for the tests (tests/mpy: never shipped to a handheld,
# firmware/manifest.py).
from agent import cbor
from agent import ids
from micropython import const

from agent.event import _SPECS

# The payload keys (docs/wire.md), as agent.event's private ones.
K_ID, K_TYPE, K_MPANS, K_MPRNS, K_JOB, K_INSTALLER = const(1), const(2), const(3), const(4), const(5), const(6)
K_TIME, K_COUNTER, K_FW, K_EVIDENCE, K_OVERRIDE = const(7), const(8), const(9), const(10), const(11)


def _named(spec, m):
    out = {}
    names, kinds, _ = spec
    for key, name in enumerate(names):
        if key in m:
            v = m[key]
            out[name] = ids.eui64_text(v) if kinds[key] == "e" else v
    return out


def parse(payload):
    # The inverse of build() for payloads this firmware built (no re-validation).
    m = cbor.loads(payload)
    e = m[K_EVIDENCE]
    ev = {
        "id": m[K_ID], "type": m[K_TYPE], "mpans": m[K_MPANS], "mprns": m[K_MPRNS],
        "job": m[K_JOB], "installer": m[K_INSTALLER], "time": m[K_TIME],
        "counter": m[K_COUNTER], "firmware": m[K_FW],
        "evidence": {
            "read_time": e[0],
            "hub": None if e[1] is None else _named(_SPECS[0], e[1]),
            "wan": None if e[2] is None else _named(_SPECS[1], e[2]),
            "devices": [_named(_SPECS[2], d) for d in e[3]],
        },
    }
    if 4 in e:
        ev["evidence"]["hub_time"] = e[4]
    if K_OVERRIDE in m:
        ev["override"] = {"reason": m[K_OVERRIDE][0], "checks": m[K_OVERRIDE][1]}
    return ev
