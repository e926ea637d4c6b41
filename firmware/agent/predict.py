# The flag a job will give, predicted on site with the bridge's rules (companion/policy.py
# `observe`, docs/flag-policy.md): the same precedence for the meter of a meter point, the
# same flags and reason codes. tests/vectors/policy.json, made from the CPython policy,
# holds both runtimes to it.
GONE = ("Decommissioned", "Withdrawn")

from agent.words import WORDS  # noqa: F401  (the display words of each reason code)


def _rank(d):
    # Commissioned and answering, Commissioned, installed, gone (lower is the meter).
    st = d.get("status")
    if st == "Commissioned":
        return 0 if d.get("answered") is not False else 1
    if st in GONE:
        return 3
    return 2


def _kind(mpxn):
    return "ESME" if len(mpxn) == 13 else "GSME"


def meter(evidence, mpxn):
    # The meter of the meter point in the hub's log, by precedence; None when none is listed.
    kind = _kind(mpxn)
    best = None
    for d in evidence["devices"]:
        if d.get("mpxn") == mpxn and d.get("type") == kind and (best is None or _rank(d) < _rank(best)):
            best = d
    return best


def stale(evidence, mpxn):
    # The other devices listed for the meter point: an old meter left in the log.
    m = meter(evidence, mpxn)
    kind = _kind(mpxn)
    return [d for d in evidence["devices"] if d.get("mpxn") == mpxn and d.get("type") == kind and d is not m]


def observe(etype, evidence, mpxn):
    # -> (flag or None, reason code), as the bridge will read this job's evidence.
    hub = evidence["hub"]
    m = meter(evidence, mpxn)
    if etype == "removal":
        if hub is None:
            return "N", "removed_no_hub"
        if m is None:
            return "N", "removed_not_in_log"
        if m.get("status") in GONE:
            return "N", "removed_gone"
        if m.get("answered") is False:
            return "N", "removed_silent"
    if hub is None:
        return None, "no_hub"
    if m is None:
        return None, "not_in_log"
    if m.get("status") in GONE:
        return "N", "gone"
    if hub.get("generation") == "SMETS1" and hub.get("dcc") is False:
        return "N", "smets1_not_enrolled"
    gaps = missing(evidence, mpxn, m)
    return ("I", gaps[0]) if gaps else ("A", "commissioned")


def missing(evidence, mpxn, m=None):
    # Every reason the meter point is short of A (the first is the observation's code).
    hub = evidence["hub"]
    wan = evidence["wan"]
    m = m or meter(evidence, mpxn)
    out = []
    if hub.get("dcc") is not True:
        out.append("hub_not_dcc")
    if not (wan and wan.get("connected")):
        out.append("no_wan")
    if _kind(mpxn) == "GSME" and hub.get("generation") == "SMETS2" and hub.get("gpf") is None:
        out.append("no_gpf")
    if m.get("status") != "Commissioned":
        out.append("meter_not_commissioned")
    if m.get("answered") is False:
        out.append("meter_silent")
    return out
