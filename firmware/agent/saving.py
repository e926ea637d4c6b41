# Sign and save an event (docs/agent.md "Memory"): loaded on its own, after agent.jobrun has
# been dropped, because building and signing are the job's largest moments.
from agent.stage import Stage


def save(self, ev, codes, override):
    self.refused = None  # a failed save is run again as a new job (a fresh survey)
    if codes:
        ev["override"] = {"reason": override, "checks": codes}
    if self.now() < self.time_floor:
        self.say("ERROR", "Clock not set (before 2025): event not saved. Set the date, then run the job again.")
        return "error"
    try:
        counter = self.counter.reserve()
        msg = _sign(self, ev, counter)
        self.outbox.save(counter, ev["id"], msg)
    except (ValueError, OSError, MemoryError) as e:
        self.say("ERROR", "Event not saved: %s" % e)
        return "error"
    self.predicted.append(ev["id"].hex() + self.said)  # "EVENTID MPXN:FLAG ..." ("-": none)
    self.said = ""
    del self.predicted[:-4]  # the last jobs' predictions, for their acks
    self.out("SAVED #%d%s" % (counter, " OVERRIDE" if codes else ""))
    self.out("  " + ev["id"].hex())

    return "saved"


def _sign(self, ev, counter):
    # Build, then sign, loading one big module at a time (docs/agent.md "Memory"). A
    # MemoryError in a fragmented heap is retried once after a collection.
    payload = None
    for attempt in (1, 2):
        try:
            if payload is None:
                with Stage():
                    from agent import event

                    try:  # let go of it however this ends: a retry must not load it twice
                        if "id" not in ev:
                            ev.update({"id": event.new_id(), "time": self.now(), "counter": counter,
                                       "firmware": self.firmware})
                        payload = event.build(ev)
                    finally:
                        event = None
            ev["evidence"] = None
            with Stage():
                from agent import cose

                try:
                    return cose.sign1_parts(payload, self.key, self.kid)
                finally:
                    cose = None
        except MemoryError:
            if attempt == 2:
                raise
            # What is only for the screen goes before the evidence does: the flags for
            # `status` and the predictions for the acks (a DIFFERS may then go unsaid).
            self.outcomes = []
            self.predicted = []
