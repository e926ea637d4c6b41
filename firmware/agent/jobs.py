# Installer jobs checked against what the survey read (docs/agent.md "Refusals").
# A claim the evidence contradicts is refused with a reason the installer can act on;
# an override is possible, and is recorded in the signed event.
from micropython import const

from agent import ids

from agent.kinds import TYPES
_MAX_TEXT = const(40)  # agent.event._MAX_TEXT


def validate(job):
    # -> normalised job, or ValueError with a message for the installer
    t = job.get("type")
    if t not in TYPES:
        raise ValueError("job type must be one of: " + ", ".join(TYPES))
    mpans = [m for m in job.get("mpans", []) if m]
    mprns = [m for m in job.get("mprns", []) if m]
    for m in mpans:
        ids.check_mpan(m)
    for m in mprns:
        ids.check_mprn(m)
    if not mpans and not mprns:
        raise ValueError("give an MPAN or an MPRN")
    for k in ("job", "installer"):
        v = job.get(k)
        if not isinstance(v, str) or not 1 <= len(v) <= _MAX_TEXT:
            raise ValueError("%s: 1 to %d characters" % (k, _MAX_TEXT))
    return {"type": t, "mpans": mpans, "mprns": mprns, "job": job["job"], "installer": job["installer"]}


GONE = ("Decommissioned", "Withdrawn")


def rank(d):
    # The meter of a meter point when the log lists several devices for it (a same-hub
    # exchange leaves the old one there): Commissioned and answering, Commissioned,
    # installed, gone -- the bridge's precedence (companion/policy.py, agent/predict.py).
    st = d.get("status")
    if st == "Commissioned":
        return 0 if d.get("answered") is not False else 1
    return 3 if st in GONE else 2


def _meter(evidence, mpxn):
    want = "ESME" if len(mpxn) == 13 else "GSME"
    best = None
    for d in evidence["devices"]:
        if d.get("mpxn") == mpxn and d.get("type") == want and (best is None or rank(d) < rank(best)):
            best = d
    return best


def check(job, evidence):
    # -> [(code, message)], empty when the evidence supports the claim
    t = job["type"]
    hub = evidence["hub"]
    wan = evidence["wan"]
    mpxns = job["mpans"] + job["mprns"]
    out = []
    if t != "removal":
        if hub is None:
            return [("no_hub", "No hub answered. A smart job needs the hub: check the cable.")]
        for m in mpxns:
            if _meter(evidence, m) is None:
                out.append(("mpxn_not_in_log", "%s is not in the hub's device log." % m))
    if t == "commission":
        # Each way the bridge would derive I instead of A (docs/flag-policy.md), with a next step.
        if hub.get("dcc") is not True:
            out.append(("hub_not_commissioned", "Hub not commissioned with the DCC: flag will be I. "
                                                "Call the DCC line, or record install_and_leave."))
        if not (wan and wan["connected"]):
            out.append(("wan_down", "WAN is down: commissioning can't be confirmed. "
                                    "Wait for WAN, or record install_and_leave."))
        for m in mpxns:
            d = _meter(evidence, m)
            if d is None:
                continue
            if d.get("status") != "Commissioned":
                out.append(("meter_not_commissioned", "%s: meter is %s, not Commissioned." % (m, d.get("status"))))
            if d.get("answered") is False:
                out.append(("meter_silent", "%s: meter does not answer on the HAN: flag will be I. "
                                            "Check it is powered and joined." % m))
            if len(m) != 13 and hub.get("generation") == "SMETS2" and not hub.get("gpf"):
                out.append(("no_gpf", "%s: no GPF on the hub, gas can't be commissioned: flag will be I." % m))
    elif t == "install_and_leave":
        if wan and wan["connected"]:
            out.append(("wan_up", "WAN is up: not install and leave. Record install or commission."))
    elif t == "removal":
        for m in mpxns:
            d = _meter(evidence, m)
            if d is not None and d.get("answered"):
                out.append(("meter_answers", "%s: the meter still answers on the HAN. Remove it first." % m))
    return out


# --- the prediction: the flag each meter point will get, by the bridge's rules ----------------
# (companion/policy.py `observe`, docs/flag-policy.md; tests/vectors/policy.json holds both
# runtimes to it). Also reachable as agent.predict.

def _kind(mpxn):
    return "ESME" if len(mpxn) == 13 else "GSME"


def observe(etype, evidence, mpxn):
    # -> (flag or None, reason code), as the bridge will read this job's evidence.
    hub = evidence["hub"]
    m = _meter(evidence, mpxn)
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
    m = m or _meter(evidence, mpxn)
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
