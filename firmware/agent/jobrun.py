# A job on site (docs/agent.md "Jobs"): the checks before and after the survey, refusal or
# override. Loaded for those steps only (agent.main unloads it for the survey, the signing
# and delivery), so that the survey and the TLS link have the heap it would otherwise hold.
from agent.stage import WIDTH, Stage

# Inventory statuses, short for the display
_SHORT = {"Commissioned": "COMM", "InstalledNotCommissioned": "INC", "Whitelisted": "WLIST",
          "Decommissioned": "DECOM", "Pending": "PEND", "Withdrawn": "WDRAWN"}


def clean(text, n=WIDTH):
    # Text read from the premises (hub and meter strings) before it reaches the display:
    # printable ASCII only (no terminal control sequences), at most n characters.
    text = str(text)[:n]
    for c in text:
        if not " " <= c <= "~":
            return "".join(c if " " <= c <= "~" else "?" for c in text)
    return text  # the usual case: nothing to replace, nothing allocated


def prepare(self, job):
    # -> the validated job, or None (the screen says why). Before the survey.
    with Stage():
        from agent import jobs

        try:
            job = jobs.validate(job)
        except ValueError as e:
            self.say("ERROR", str(e))
            return None
        finally:
            jobs = None
    if self.outbox.full():
        self.say("ERROR", "Outbox full: %d events wait for the back office. Connect to deliver." % len(self.outbox))
        return None
    return job


def decide(self, pending, override, overriding=None):
    # After the survey (pending = [job, evidence], emptied here so that this frame holds them
    # alone): show it, check the claim, refuse or hand the event on to be saved.
    # -> "refused", or (event, codes, override) for agent.saving.
    # overriding: the codes of the refusal an override answers; the job was surveyed again,
    # and a problem that refusal did not show is refused anew (no stale override).
    job, evidence = pending
    pending.clear()
    show(self, evidence)
    with Stage():
        from agent import jobs

        problems = jobs.check(job, evidence)
        # What the bridge will make of it (the same rules), shown if the job is saved.
        said = [(m,) + jobs.observe(job["type"], evidence, m) for m in job["mpans"] + job["mprns"]]
        jobs = None
    codes = []
    for code, _ in problems:
        if code not in codes:
            codes.append(code)
    if override and overriding is not None and [c for c in codes if c not in overriding]:
        override = None  # something new since the refusal: the installer must see it first
    ev = dict(job)
    ev["evidence"] = evidence
    evidence = None  # the event holds it now; it is freed once the payload is built
    if problems and not override:
        self.refused = (job, codes)  # the job, not its evidence: an override surveys again
        self.say("REFUSED", ", ".join(sorted(codes)))
        for _, msg in problems:
            self.say("WHY", msg)
        self.say("HINT", "Fix it and run the job again, or: override REASON")
        return "refused"
    problems = None
    # The flag each meter point will get, before the installer leaves; the ack's flag is
    # compared with it (agent.ackcheck: DIFFERS).
    with Stage():
        from agent.words import WORDS

        for m, flag, code in said:
            self.say("PREDICT", "%s %s %s" % (m, flag or "-", WORDS.get(code, code)))
        WORDS = None
    # agent.saving files it under the event's id once saved: one string (what a job leaves
    # in the heap is one small block, not a list of tuples), made with the words gone.
    self.said = "".join(" %s:%s" % (m, flag or "-") for m, flag, _ in said)
    said = None
    return ev, codes, override  # signed by agent.saving, without this module


def override_ok(self, reason):
    # -> (job, codes) of the refusal this override answers, or None (the screen says why).
    if self.refused is None:
        self.say("ERROR", "Nothing to override: an override must come right after a REFUSED job.")
        return None
    if len(reason.split()) < 3:
        self.say("ERROR", "Say why, in a few words: override REASON (3 words at least).")
        return None  # the refusal stands: the installer may try again
    refused, self.refused = self.refused, None
    self.out("OVERRIDE %s: surveying again" % refused[0]["job"][:20])
    return refused


def show(self, ev):
    if "hub_time" in ev and not -300 <= ev["read_time"] - ev["hub_time"] <= 300:
        with Stage():
            from agent import clock  # the handheld's clock is off: set it from the hub's

            clock.set(self, ev)
            clock = None
    hub = ev["hub"]
    if hub is None:
        self.out("HUB none")
    else:
        self.out("HUB %s %s" % (clean(hub["chf"], 23), clean(hub["generation"], 6)))
        wan = ev["wan"]
        self.out("WAN %s" % ("up %s dBm" % clean(wan.get("signal", "?"), 5) if wan["connected"] else "down"))
    from agent.jobs import rank

    for d in ev["devices"]:
        st = d.get("status", "-")
        m = d.get("mpxn")
        # An old meter still listed for the meter point beside its meter is shown as such.
        old = m and d.get("type") in ("ESME", "GSME") and any(
            o is not d and o.get("mpxn") == m and o.get("type") == d["type"] and rank(o) < rank(d)
            for o in ev["devices"])
        self.out("DEV %s %s %s%s" % (clean(d["type"], 6), _SHORT.get(st, clean(st, 6)), clean(m or "-", 13),
                                     " OLD" if old else ""))
