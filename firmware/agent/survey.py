# Survey a premises over the HAN link: one evidence snapshot (docs/wire.md "Evidence")
# that is complete and consistent, or an error -- never a partial survey.
#
# Consistency: the hub's state revision (IDENTIFY key 6, LOG key 2) must be the same
# at the start, on every device-log page, and at the end; if the hub's state changed
# while it was being read (a device joined, the WAN came up), the survey starts again,
# at most _MAX_PASSES times.
from micropython import const

from agent import link as L

_MAX_PASSES = const(3)
_MAX_DEVICES = const(16)  # as the event schema (agent.event._MAX_DEVICES)

_GENERATIONS = ("SMETS1", "SMETS2")
# Values the hub sends that the firmware knows by name (agent.event's lists): the evidence
# keeps the firmware's own string, not the decoded copy, as it stays in the heap until the
# event is signed. The most common only: each costs this module's heap too.
_KNOWN = _GENERATIONS + ("ESME", "GSME", "PPMID", "IHD", "CAD", "Commissioned", "InstalledNotCommissioned")
# LOG entry keys 2 and 3, DEVICE keys 4 to 7 (docs/han-link.md), by position.
_LOG = ("status", "mpxn")
_DETAILS = ("serial", "smets", "mode", "firmware")


def _bad(what):
    # The hub's answers do not make a survey: a LinkError of kind "SurveyError" (agent.link).
    # what: the whole message ("hub ..."), or what was malformed.
    return L.LinkError("SurveyError", what if what.startswith("hub ") else "hub sent a malformed %s" % what)


def _known(v):
    for k in _KNOWN:
        if k == v:
            return k
    return v


def _copy(d, r, names, first):
    # r's keys first, first + 1, ... into d under names, those the hub sent.
    for n, name in enumerate(names):
        if r.get(first + n) is not None:
            d[name] = _known(r[first + n])


def _eui(v, what):
    # 8 bytes -> "XX-XX-XX-XX-XX-XX-XX-XX" (as agent.ids.eui64_text, which the survey does
    # not load: its stage is the job's largest after the signature, docs/agent.md "Memory").
    if not isinstance(v, bytes) or len(v) != 8:
        raise _bad("%s device id" % what)
    return "%02X-%02X-%02X-%02X-%02X-%02X-%02X-%02X" % tuple(v)


def _hub(r):
    if not isinstance(r, dict) or 0 not in r or r.get(2) not in _GENERATIONS:
        raise _bad("IDENTIFY response")
    hub = {"chf": _eui(r[0], "CHF"), "generation": _known(r[2])}
    if r.get(1) is not None:
        hub["gpf"] = _eui(r[1], "GPF")
    _copy(hub, r, ("version", "firmware", "dcc"), 3)
    return hub, r.get(6, 0), r.get(7)


def _wan(r):
    if not isinstance(r, dict) or not isinstance(r.get(0), bool):
        raise _bad("WAN response")
    wan = {"connected": r[0]}
    if r.get(1) is not None:
        wan["signal"] = r[1]
    return wan


def _log(lk, rev):
    entries = []
    total = None
    while total is None or len(entries) < total:
        r = lk.request(L.CMD_LOG, len(entries))
        if not isinstance(r, dict) or not isinstance(r.get(1), list) or not isinstance(r.get(0), int):
            raise _bad("LOG response")
        if r.get(2, 0) != rev:
            return None  # state changed under us
        if total is None:
            total = r[0]
            if total > _MAX_DEVICES:
                raise _bad("hub lists %d devices; at most %d are supported" % (total, _MAX_DEVICES))
        elif r[0] != total:
            return None
        if not r[1] and len(entries) < total:
            raise _bad("hub sent an empty LOG page before the end")
        for e in r[1]:
            if not isinstance(e, dict) or 0 not in e or not isinstance(e.get(1), str):
                raise _bad("LOG entry")
            d = {"eui": _eui(e[0], "device"), "type": _known(e[1]), 0: e[0]}  # 0: the id as sent, for DEVICE
            _copy(d, e, _LOG, 2)
            entries.append(d)
    return entries[:total]


def _details(lk, d):
    try:
        r = lk.request(L.CMD_DEVICE, d.pop(0))
    except L.LinkError as e:
        if e.kind != "HubError":
            raise
        if e.code == L.E_NOT_RESPONDING:
            d["answered"] = False
            return
        raise _bad("hub refused DEVICE %s: %s" % (d["eui"], e))
    if not isinstance(r, dict):
        raise _bad("DEVICE response")
    d["answered"] = True
    _copy(d, r, _DETAILS, 4)


def survey(lk, now, expect_hub=True):
    # lk: an agent.link.Link; now(): seconds since the epoch (the device clock).
    # With expect_hub=False, a silent line is evidence of "no hub" (a legacy meter);
    # otherwise it is an error (HubAbsent) the installer must look at.
    for _ in range(_MAX_PASSES):
        read_time = int(now())
        try:
            hub, rev, hub_time = _hub(lk.request(L.CMD_IDENTIFY))
        except L.LinkError as e:
            if expect_hub or e.kind != "HubAbsent":
                raise
            return {"read_time": read_time, "hub": None, "wan": None, "devices": []}
        wan = _wan(lk.request(L.CMD_WAN))
        devices = _log(lk, rev)
        if devices is None:
            continue
        for d in devices:
            _details(lk, d)
        if _hub(lk.request(L.CMD_IDENTIFY))[1] != rev:
            continue
        ev = {"read_time": read_time, "hub": hub, "wan": wan, "devices": devices}
        if isinstance(hub_time, int) and not isinstance(hub_time, bool) and hub_time > 0:
            ev["hub_time"] = hub_time  # the hub's UTC (kept from the DCC) as the survey began
        return ev
    raise _bad("hub state kept changing during the survey (%d passes); try again" % _MAX_PASSES)
