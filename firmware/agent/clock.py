# The handheld's clock, set from the hub's (docs/agent.md "Clock"). The hub keeps UTC from
# the DCC; a handheld clock off by more than 300 s (agent.jobrun.show checks, as the
# bridge's clock_tolerance) is set from it, kept on flash as an offset to the device clock,
# so that the events it makes from then on carry the right time. The survey keeps both
# times as evidence. Loaded only when the clock is off; its strings are over 10 characters,
# so that they are not interned for good (docs/agent.md "Memory").
from agent import flash


def set(self, ev):
    skew = ev["read_time"] - ev["hub_time"]
    self.clock_fix -= skew
    flash.write_atomic(self.root + "/clock_offset", b"%d" % self.clock_fix)
    s = abs(skew)
    way = "fast" if skew > 0 else "slow"
    if s >= 86400:
        self.say("CLOCK", "Set from the hub: it was %dd %dh %s." % (s // 86400, s % 86400 // 3600, way))
    else:
        self.say("CLOCK", "Set from the hub: it was %dh %dm %s." % (s // 3600, s % 3600 // 60, way))
