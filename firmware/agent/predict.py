# The flag a job will give, predicted on site with the bridge's rules (companion/policy.py
# `observe`, docs/flag-policy.md): the same precedence for the meter of a meter point, the
# same flags and reason codes. tests/vectors/policy.json, made from the CPython policy,
# holds both runtimes to it.
from agent.jobs import GONE, _meter as meter  # one precedence for the meter of a meter point
from agent.words import WORDS  # noqa: F401  (the display words of each reason code, for callers)


def _kind(mpxn):
    return "ESME" if len(mpxn) == 13 else "GSME"


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
