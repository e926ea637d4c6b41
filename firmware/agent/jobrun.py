# A job on site (docs/agent.md "Jobs"): survey, checks, refusal or override, sign, save.
# Loaded for the job only (agent.main unloads it after), so that the delivery stage,
# which keeps a TLS link open, has the heap this code would otherwise hold.
import gc

from agent.main import _STAGE, WIDTH, _unload

# Inventory statuses, short for the display
_SHORT = {"Commissioned": "COMM", "InstalledNotCommissioned": "INC", "Whitelisted": "WLIST",
          "Decommissioned": "DECOM", "Pending": "PEND", "Withdrawn": "WDRAWN"}


def clean(text, n=WIDTH):
    # Text read from the premises (hub and meter strings) before it reaches the display:
    # printable ASCII only (no terminal control sequences), at most n characters.
    text = str(text)
    return "".join(c if " " <= c <= "~" else "?" for c in text[:n])


def survey(self, expect_hub=True):
    from agent import link, survey, uart

    if not self.cfg["uart"]:
        raise ValueError("no serial port configured (config key uart)")
    u = uart.open_uart(self.cfg["uart"], self.cfg["baud"])
    try:
        return survey.survey(link.Link(u), self.now, expect_hub=expect_hub)
    finally:
        u.close()
        del link, survey, uart
        _unload(*_STAGE)


def job(self, job, override=None):
    # -> "saved", "refused" or "error"; the screens say why.
    from agent import jobs

    try:
        job = jobs.validate(job)
    except ValueError as e:
        self.say("ERROR", str(e))
        return "error"
    finally:
        del jobs
        _unload("agent.jobs")
    if self.outbox.full():
        self.say("ERROR", "Outbox full: %d events wait for the back office. Connect to deliver." % len(self.outbox))
        return "error"
    self.out("SURVEY reading the premises...")
    gc.collect()
    try:
        evidence = survey(self, expect_hub=job["type"] != "removal")
    except Exception as e:  # LinkError, SurveyError, OSError: all reported the same way
        self.say("ERROR", "Survey failed: %s" % e)
        return "error"
    show(self, evidence)
    gc.collect()
    from agent import jobs

    problems = jobs.check(job, evidence)
    del jobs
    _unload(*_STAGE)
    codes = []
    for code, _ in problems:
        if code not in codes:
            codes.append(code)
    ev = dict(job)
    ev["evidence"] = evidence
    evidence = None  # the event holds it now; it is freed once the payload is built
    if problems and not override:
        self.refused = (ev, codes)
        self.say("REFUSED", ",".join(sorted(codes)))
        for _, msg in problems:
            self.say("WHY", msg)
        self.say("HINT", "Fix it and run the job again, or: override REASON")
        return "refused"
    problems = None
    return "save", (ev, codes, override)  # signed by agent.saving, without this module


def override(self, reason):
    if self.refused is None:
        self.say("ERROR", "Nothing to override: no refused job.")
        return "error"
    ev, codes = self.refused
    return "save", (ev, codes, reason)


def show(self, ev):
    hub = ev["hub"]
    if hub is None:
        self.out("HUB none")
    else:
        self.out("HUB %s %s" % (clean(hub["chf"], 23), clean(hub["generation"], 6)))
        wan = ev["wan"]
        self.out("WAN %s" % ("up %s dBm" % clean(wan.get("signal", "?"), 5) if wan["connected"] else "down"))
    for d in ev["devices"]:
        st = d.get("status", "-")
        self.out("DEV %s %s %s" % (clean(d["type"], 6), _SHORT.get(st, clean(st, 6)), clean(d.get("mpxn", "-"), 13)))
