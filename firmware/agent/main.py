# The handheld application (docs/agent.md).
#
#   micropython -m agent.main --flash DIR                 console (installer interface)
#   micropython -m agent.main --flash DIR --job TYPE MPAN MPRN JOBREF INSTALLER [--override TEXT]
#                                         [--deliver SECONDS]   one job, non-interactive (bench)
#   micropython -m agent.main --flash DIR --deliver SECONDS     deliver the backlog, then exit
#   micropython -m agent.main --flash DIR --pubkey              print the device public key
#
# Console commands, one a line (output lines start with a stable tag):
#   job TYPE MPAN MPRN JOBREF INSTALLER   ("-" for no MPAN or MPRN)
#   override REASON...                    save the last refused job, recording the override
#   new                                   the same, asked for step by step
#   survey | status | help | quit         (agent/console.py)
import gc
import select
import sys
import time

from agent.stage import Stage, _unload, say

_OOM = "ERROR Out of memory: type it again."  # made at load: saying it allocates nothing


# The job's stages (docs/agent.md "Jobs"): prepare -> survey -> decide -> save, then deliver
# from the loop. Each takes and returns plain values; its module (agent.jobrun, or
# agent.saving for the signature) is loaded for it alone (Agent._step), so that the survey,
# the signature and the TLS link each have the heap.


class Agent:
    # Bench hooks (hil/board/hilboot.py sets them; a handheld's firmware has none): extra
    # console commands, and a clock offset.
    bench_command = None
    clock_offset = 0
    clock_fix = 0  # set from the hub's clock (agent.clock), kept on flash

    def __init__(self, root, out=None):
        self.root = root
        self.out = out or (lambda s: print(s))
        # Boot steps run once: their code (agent.start) is dropped after them.
        with Stage():
            from agent import start

            start.boot(self, root)
            start = None
        # MicroPython interns a module's names for good, in pools that double in size. Load
        # the survey's modules once now and drop them: the pool their names need (the fifth,
        # 3.5 KiB) is then made at the bottom of an empty heap, not in the middle of a job,
        # where it can come during the signature and not fit (docs/agent.md "Memory").
        with Stage():
            __import__("agent.survey")

    def public_key(self):
        from agent import ecdsa

        return ecdsa.public_key(self.key).hex()

    def deliver(self):
        if self.courier is None:
            if not len(self.outbox):
                return
            # Held off after a rejection that names no event (not registered, key mismatch):
            # resending at once would only be refused again (agent.ackcheck sets the hold).
            if self.hold and time.ticks_diff(self.hold[0], time.ticks_ms()) > 0:
                return
            gc.collect()
            from agent.delivery import Courier

            self.courier = Courier(self.cfg, self.outbox, self.out)
        self.courier.service()
        self.ignored += self.courier.ignored
        self.courier.ignored = 0
        if self.courier._inbox and not self.courier.connected:
            self.pause_delivery()  # the link is down: check its acks without it in the heap

    def pause_delivery(self):
        inbox = []
        if self.courier is not None:
            self.courier.close()
            inbox = self.courier.take_inbox()
            self.ignored += self.courier.ignored
            self.courier = None
        _unload()  # the link's modules: the courier held them, and is gone
        if inbox:
            self._settle(inbox)

    def _settle(self, inbox):
        # The link's acks and rejections, checked with nothing of the link loaded (agent.ackcheck).
        try:
            with Stage():
                from agent import ackcheck

                try:
                    ackcheck.apply(self, inbox)
                finally:
                    ackcheck = None
        except MemoryError:
            self.out("ACK check later: memory")  # nothing is removed unchecked; the event goes again
        finally:
            # Made again now that the ack check's modules are gone: strings made while they
            # were loaded would stay between their holes and split the heap a job needs.
            self.outcomes = ["%s" % o for o in self.outcomes]

    def now(self):
        return int(time.time()) + self.clock_offset + self.clock_fix

    # --- a job: its stages, in order -------------------------------------------------------
    def job(self, job, override=None, overriding=None):
        # -> "saved", "refused" or "error"; the screens say why.
        self.pause_delivery()
        self.refused = None
        job = self._step("prepare", job)
        if job is None or job == "error":
            return "error"
        self.out("SURVEY reading the premises...")
        try:
            pending = [job, self.survey(expect_hub=job["type"] != "removal")]
        except Exception as e:  # LinkError (of any kind), OSError: all reported the same way
            self.say("ERROR", "Survey failed: %s" % e)
            return "error"
        job = None  # decide() takes job and evidence out of `pending`, then frees them as it goes
        decided = self._step("decide", pending, override, overriding)
        if not isinstance(decided, tuple):
            return decided  # "refused" or "error"
        ev, codes, override = decided
        decided = None
        return self._step("save", ev, codes, override)

    def _step(self, name, *args):
        # One stage: agent.jobrun's function `name` (agent.saving's for "save"), with its module
        # loaded for it alone; a MemoryError is never a crash: the job is not saved, and the
        # installer runs it again.
        try:
            with Stage():
                m = __import__("agent.saving" if name == "save" else "agent.jobrun", None, None, (name,))
                try:
                    return getattr(m, name)(self, *args)
                finally:
                    m = None
        except MemoryError:
            self.say("ERROR", "Out of memory: nothing saved. Run the job again.")
            return "error"

    def survey(self, expect_hub=True):
        if not self.cfg["uart"]:
            raise ValueError("no serial port configured (config key uart)")
        with Stage():
            from agent import link, survey, uart

            u = uart.UART(self.cfg["uart"], self.cfg["baud"])
            try:
                return survey.survey(link.Link(u), self.now, expect_hub=expect_hub)
            finally:
                u.close()
                link = survey = uart = None

    def say(self, tag, text):
        say(self.out, tag, text)

    def loop(self, deliver_for=None, interactive=False):
        # Deliver; when interactive, also take console lines (agent.console).
        poll = select.poll()
        if interactive:
            poll.register(sys.stdin, select.POLLIN)
        end = None if deliver_for is None else time.ticks_add(time.ticks_ms(), int(deliver_for * 1000))
        while True:
            self.deliver()
            if end is not None and (not len(self.outbox) or time.ticks_diff(time.ticks_ms(), end) >= 0):
                return
            for _ in poll.poll(50) if interactive else ():
                line = sys.stdin.readline()
                try:
                    if not line or not self.console(line):
                        return
                except MemoryError:  # the last guard: the console goes on, the outbox is on flash
                    line = None
                    _unload()
                    self.out(_OOM)
            if not interactive:
                time.sleep_ms(20)

    def console(self, line):
        # One console line; False to quit. The console module is loaded for the line only.
        try:
            with Stage():
                from agent import console

                try:
                    action = console.command(self, line)
                finally:
                    console = None
        except MemoryError:  # never a crash: nothing was started, the installer types it again
            action = None
            self.out(_OOM)
        if action is False:
            return False
        if action:
            kind, arg = action
            if kind == "job":
                self.job(arg)
            elif kind == "override":
                # Right after a refusal, for that job: survey again, then save with the
                # override if nothing new came up (docs/agent.md "Jobs and refusals").
                refused = self._step("override_ok", arg)  # (job, codes), or the screen says why
                if isinstance(refused, tuple):
                    self.job(refused[0], arg, refused[1])
            else:
                self.pause_delivery()
                try:
                    self._step("show", self.survey())
                except Exception as e:
                    self.say("ERROR", "Survey failed: %s" % e)
        return True


def main(argv):
    # The command line is read by agent.start (loaded for it, then dropped): -> exit code.
    with Stage():
        from agent import start

        args = start.arguments(argv)
        start = None
    if not isinstance(args, dict):
        return args  # the error is on the screen
    try:
        agent = Agent(args.get("flash", "flash"))
    except (ValueError, OSError) as e:  # ConfigError is a ValueError
        print("ERROR %s" % e)
        return 2
    except MemoryError:
        print("ERROR Out of memory at start: the heap is too small for the agent.")
        return 2
    if args.get("pubkey"):
        print("PUBKEY " + agent.public_key())
        return 0
    rc = 0
    if "job" in args:
        from agent.kinds import job

        result = agent.job(job(args["job"]), args.get("override"))
        job = None
        rc = {"saved": 0, "refused": 3}.get(result, 1)
    if "deliver" in args:
        agent.loop(args["deliver"])
        with Stage():
            from agent import console

            console.status(agent)
            console = None
    elif "job" not in args:
        agent.loop(interactive=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
