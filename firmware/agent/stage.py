# What every part of the agent shares, with no imports of its own (no cycles): the display's
# width, how a line is said, and Stage, which keeps a step's modules for that step only.
import gc
import sys

WIDTH = 32  # characters on the handheld's display, after the line's tag

# The modules that stay loaded: the agent's core (with the package itself). Every other
# module of the agent is a stage's, and so are these others a stage may load (the tests'
# CBOR decoder, TLS).
_CORE = ("agent.main", "agent.stage", "agent.outbox", "agent.identity", "agent.flash")
_OTHERS = ("cbordec", "ssl")


def _unload():
    # Modules are loaded for one stage of a job and dropped after it, so that the whole
    # agent runs in a small heap as .mpy (docs/agent.md "Memory"). A board that freezes
    # the firmware into flash keeps them resident at no heap cost.
    import agent

    for n in [n for n in sys.modules if n in _OTHERS or n.startswith("agent.") and n not in _CORE]:
        sys.modules.pop(n)
        if n.startswith("agent.") and hasattr(agent, n[6:]):
            delattr(agent, n[6:])
    gc.collect()


class Stage:
    # One stage of a job: `with Stage():` drops every module outside the core (_CORE) when
    # the block ends, however it ends: what the stage loaded, directly or through another
    # module. Inside, let go of a module's name (x = None) before the block ends: a module
    # still held is not freed. A module whose code is still running (a stage within a
    # stage) is only taken out of sys.modules; it is freed when its caller returns.
    def __enter__(self):
        gc.collect()
        return self

    def __exit__(self, *exc):
        _unload()


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
