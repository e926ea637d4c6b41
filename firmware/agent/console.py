# The installer's console (docs/agent.md "Console"): one command a line, output lines
# that start with a stable tag, short enough for the handheld's display.
import sys

from agent.main import JOB_TYPES, _job

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
        return "job", new(agent)
    elif cmd == "survey":
        return "survey", None
    elif cmd == "status":
        status(agent)
    elif cmd in ("quit", "exit"):
        return False
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


def new(agent):
    t = ask(agent, "Job type? " + "/".join(JOB_TYPES))
    mpan = ask(agent, "MPAN? (blank: none)")
    mprn = ask(agent, "MPRN? (blank: none)")
    ref = ask(agent, "Job reference?")
    who = ask(agent, "Installer id?")
    return _job([t, mpan or "-", mprn or "-", ref, who])


def status(agent):
    agent.out("STATUS outbox=%d/%d link=%s" % (
        len(agent.outbox), agent.cfg["outbox_max"], "up" if agent.courier and agent.courier.connected else "down"))
    agent.out("  acked=%d next=#%d" % (agent.acked, agent.counter.next))
    if agent.ignored:
        agent.out("  ignored=%d not from bridge" % agent.ignored)
    for o in agent.outcomes:
        agent.out("  flag " + o)
