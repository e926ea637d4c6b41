# What every part of the agent shares, with no imports of its own (no cycles): the display's
# width, how a line is said, and Stage, which loads a step's modules for that step only.
import gc
import sys

WIDTH = 32  # characters on the handheld's display, after the line's tag

# Every module a stage may load, directly or through another (cbor's decoder, ids).
_STAGE = ("agent.survey", "agent.link", "agent.uart", "agent.frame", "agent.jobs", "agent.event",
          "agent.cose", "agent.ecdsa", "agent.cbor", "cbordec", "agent.ids", "agent.console",
          "agent.delivery", "agent.mqttc", "agent.ackcheck", "agent.cborlite", "agent.ecverify",
          "agent.ecpoint", "agent.predict", "agent.words", "agent.clock", "agent.kinds",
          "umqtt.simple", "umqtt", "ssl", "ussl")


def _unload(*names):
    # Modules are loaded for one stage of a job and dropped after it, so that the whole
    # agent runs in a 64 KiB heap as .mpy (docs/agent.md "Memory"). A board that freezes
    # the firmware into flash keeps them resident at no heap cost.
    import agent

    for n in names:
        sys.modules.pop(n, None)
        if n.startswith("agent.") and hasattr(agent, n[6:]):
            delattr(agent, n[6:])
    gc.collect()


class Stage:
    # One stage of a job: `with Stage(NAMES...):` drops the named modules and every module
    # a stage may load (_STAGE) when the block ends, however it ends. Inside, let go of a
    # module's name (x = None) before the block ends: a module still held is not freed.
    def __init__(self, *names):
        self.names = names

    def __enter__(self):
        gc.collect()
        return self

    def __exit__(self, *exc):
        _unload(*self.names, *_STAGE)


def wrap(text, width=WIDTH):
    out = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            if line and len(line) + 1 + len(word) > width:
                out.append(line)
                line = word
            else:
                line = word if not line else line + " " + word
        out.append(line)
    return out


def say(out, tag, text):
    # One message on the display: "TAG first line", then "  more" lines of WIDTH.
    lines = wrap(text)
    out("%s %s" % (tag, lines[0]))
    for more in lines[1:]:
        out("  " + more)
