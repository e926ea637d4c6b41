# Installer jobs checked against what the survey read (docs/agent.md "Refusals").
# A claim the evidence contradicts is refused with a reason the installer can act on;
# an override is possible, and is recorded in the signed event.


def _meter(evidence, mpxn):
    want = "ESME" if len(mpxn) == 13 else "GSME"
    for d in evidence["devices"]:
        if d.get("mpxn") == mpxn and d.get("type") == want:
            return d
    return None


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
        if not (wan and wan["connected"]):
            out.append(("wan_down", "WAN is down: commissioning can't be confirmed. Wait for WAN, or record install_and_leave."))
        for m in mpxns:
            d = _meter(evidence, m)
            if d is not None and d.get("status") != "Commissioned":
                out.append(("meter_not_commissioned", "%s: meter is %s, not Commissioned." % (m, d.get("status"))))
    elif t == "install_and_leave":
        if wan and wan["connected"]:
            out.append(("wan_up", "WAN is up: not install and leave. Record install or commission."))
    elif t == "removal":
        for m in mpxns:
            d = _meter(evidence, m)
            if d is not None and d.get("answered"):
                out.append(("meter_answers", "%s: the meter still answers on the HAN. Remove it first." % m))
    return out
