# The installer's console (docs/agent.md "Console"): one command a line, output lines
# that start with a stable tag, short enough for the handheld's display.
import sys

from agent.kinds import TYPES as JOB_TYPES
from agent.kinds import job as _job

_HELP = ("job TYPE MPAN MPRN JOB INSTALLER", "override REASON", "new", "survey", "status", "quit")


def command(agent, line):
    # -> False to quit; ("job", job), ("override", reason) or ("survey", None) for the
    # main loop to run once this module is unloaded (a job needs the memory); else None.
    words = line.split()
    if not words:
        return None
    cmd = words[0]
    if cmd != "override":
        agent.refused = None  # an override answers the refusal just before it, nothing older
    if cmd == "job" and len(words) != 6:
        agent.out("ERROR job needs 5 words:")
        agent.out("  job TYPE MPAN MPRN JOB INSTALLER")
        return None
    if cmd == "job":
        return "job", _job(words[1:])
    elif cmd == "override":
        return "override", line.split(None, 1)[1].strip() if len(words) > 1 else ""
    elif cmd == "new":
        # A job is coming: the link goes down now, as for any job, so that the questions (and the
        # job after them) have the heap the link holds (docs/agent.md "Memory").
        agent.pause_delivery()
        job = new(agent)
        return ("job", job) if job else None
    elif cmd == "survey":
        return "survey", None
    elif cmd == "status":
        status(agent)
    elif cmd in ("quit", "exit"):
        return False
    elif cmd == "help":
        for s in _HELP:
            agent.out("HELP " + s)
    elif agent.bench_command is not None and agent.bench_command(agent, words):
        pass  # a bench-only command (hil/board/hilboot.py)
    else:
        agent.out("ERROR unknown command: %s" % cmd[:16])
        for s in _HELP:
            agent.out("HELP " + s)
    return None


def ask(agent, prompt):
    agent.say("ASK", prompt)
    line = sys.stdin.readline()
    return line.strip() if line else ""


def _checked(agent, prompt, check, tries=3):
    # Ask until the answer passes check (-> an error text, or None), 3 tries; None gives up.
    for _ in range(tries):
        a = ask(agent, prompt)
        why = check(a)
        if why is None:
            return a
        agent.say("ERROR", why)
    agent.say("ERROR", "Job not started. Type new to start again.")
    return None


def _id_check(kind):
    def check(a):
        if not a:
            return None  # blank: none
        from agent import ids

        try:
            (ids.check_mpan if kind == "MPAN" else ids.check_mprn)(a)
        except ValueError as e:
            return str(e)
        return None
    return check


def new(agent):
    # Each answer is checked as it is typed, so a mistake is fixed where it was made.
    t = _checked(agent, "Job type? " + ", ".join(JOB_TYPES),
                 lambda a: None if a in JOB_TYPES else "Type one of: " + ", ".join(JOB_TYPES))
    if t is None:
        return None
    mpan = _checked(agent, "MPAN? (blank: none)", _id_check("MPAN"))
    if mpan is None:
        return None
    mprn = _checked(agent, "MPRN? (blank: none)",
                    lambda a: "Give an MPAN or an MPRN." if not a and not mpan else _id_check("MPRN")(a))
    if mprn is None:
        return None
    text = lambda a: None if 1 <= len(a) <= 40 and " " not in a else "1 to 40 characters, no spaces."  # noqa: E731
    ref = _checked(agent, "Job reference?", text)
    who = ref and _checked(agent, "Installer id?", text)
    if not who:
        return None
    return _job([t, mpan or "-", mprn or "-", ref, who])


def status(agent):
    agent.out("STATUS outbox=%d/%d link=%s" % (
        len(agent.outbox), agent.cfg["outbox_max"], "up" if agent.courier and agent.courier.connected else "down"))
    agent.out("  acked=%d next=#%d" % (agent.acked, agent.counter.next))
    if agent.ignored:
        agent.out("  ignored=%d not from bridge" % agent.ignored)
    for o in agent.outcomes:
        agent.out("  flag " + o)
