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

from agent import identity
from agent.outbox import Outbox, OutboxFull

WIDTH = 32  # characters on the handheld's display, after the line's tag
# Inventory statuses, short for the display
_SHORT = {"Commissioned": "COMM", "InstalledNotCommissioned": "INC", "Whitelisted": "WLIST",
          "Decommissioned": "DECOM", "Pending": "PEND", "Withdrawn": "WDRAWN"}
JOB_TYPES = ("install", "commission", "install_and_leave", "removal")


# Every module a stage may load, directly or through another (cbor's decoder, ids).
_STAGE = ("agent.survey", "agent.link", "agent.uart", "agent.frame", "agent.jobs", "agent.event",
          "agent.cose", "agent.ecdsa", "agent.cbor", "agent.cbordec", "agent.ids", "agent.console",
          "agent.delivery", "agent.ackcheck", "agent.ecverify", "agent.ecpoint", "umqtt.simple", "umqtt", "ssl", "ussl")


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


def clean(text, n=WIDTH):
    # Text read from the premises (hub and meter strings) before it reaches the display:
    # printable ASCII only (no terminal control sequences), at most n characters.
    text = str(text)
    out = "".join(c if " " <= c <= "~" else "?" for c in text[:n])
    return out


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


class Agent:
    # Bench hooks (hil/board/hilboot.py sets them; a handheld's firmware has none): extra
    # console commands, and a clock offset.
    bench_command = None
    clock_offset = 0

    def __init__(self, root, out=None):
        # Collect early rather than late: a fragmented 64 KiB heap fails big allocations.
        gc.threshold(gc.mem_free() // 4 + gc.mem_alloc())
        self.root = root
        self.out = out or (lambda s: print(s))
        from agent import config

        self.cfg = config.load(root)
        self.firmware = config.FIRMWARE
        self.time_floor = config.TIME_FLOOR
        del config
        _unload("agent.config")
        self.key, created = identity.load_key(root)
        from agent import ids

        self.kid = ids.eui64_bytes(self.cfg["device_id"])
        del ids
        _unload("agent.ids")
        self.outbox = Outbox(root, self.cfg["outbox_max"])
        self.counter = identity.Counter(root, self.outbox.highest_counter() + 1)
        self.refused = None  # (event fields, refusal codes) awaiting an override
        self.courier = None  # made when there is something to deliver
        self.acked = 0
        if created:
            self.out("KEY new device key; public key:")
            self.out("PUBKEY " + self.public_key())
        for name in self.outbox.damaged:
            self.say("BAD", "outbox record %s failed its CRC: kept in outbox/bad" % name)
        self.out("READY %s" % self.cfg["device_id"])
        self.out("OUTBOX %d/%d" % (len(self.outbox), self.cfg["outbox_max"]))

    def public_key(self):
        from agent import ecdsa

        return ecdsa.public_key(self.key).hex()

    def deliver(self):
        if self.courier is None:
            if not len(self.outbox):
                return
            gc.collect()
            from agent.delivery import Courier

            self.courier = Courier(self.cfg, self.outbox, self.out)
        self.courier.service()
        self.acked += self.courier.take_acked()

    def pause_delivery(self):
        if self.courier is not None:
            self.courier.close()
            self.courier = None
        _unload(*_STAGE)

    def now(self):
        return int(time.time()) + self.clock_offset

    def say(self, tag, text):
        lines = wrap(text)
        self.out("%s %s" % (tag, lines[0]))
        for more in lines[1:]:
            self.out("  " + more)

    # --- jobs -------------------------------------------------------------------------
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
        self.pause_delivery()
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
            evidence = self.survey(expect_hub=job["type"] != "removal")
        except Exception as e:  # LinkError, SurveyError, OSError: all reported the same way
            self.say("ERROR", "Survey failed: %s" % e)
            return "error"
        self.show(evidence)
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
        return self._save(ev, codes, override)

    def _sign(self, ev, counter):
        # Build, then sign, loading one big module at a time (docs/agent.md "Memory"). A
        # MemoryError in a fragmented heap is retried once after a collection.
        payload = None
        for attempt in (1, 2):
            try:
                if payload is None:
                    gc.collect()
                    from agent import event

                    if "id" not in ev:
                        ev.update({"id": event.new_id(), "time": self.now(), "counter": counter,
                                   "firmware": self.firmware})
                    payload = event.build(ev)
                    del event
                    _unload(*_STAGE)
                ev["evidence"] = None
                gc.collect()
                from agent import cose

                msg = cose.sign1(payload, self.key, self.kid)
                del cose
                return msg
            except MemoryError:
                if attempt == 2:
                    raise
            finally:
                _unload(*_STAGE)

    def override(self, reason):
        if self.refused is None:
            self.say("ERROR", "Nothing to override: no refused job.")
            return "error"
        ev, codes = self.refused
        return self._save(ev, codes, reason)

    def _save(self, ev, codes, override):
        self.refused = None  # a failed save is run again as a new job (a fresh survey)
        if codes:
            ev["override"] = {"reason": override, "checks": codes}
        if self.now() < self.time_floor:
            self.say("ERROR", "Clock not set (before 2025): event not saved. Set the date, then run the job again.")
            return "error"
        try:
            counter = self.counter.reserve()
            msg = self._sign(ev, counter)
            self.outbox.save(counter, ev["id"], msg)
        except OutboxFull as e:
            self.say("ERROR", str(e))
            return "error"
        except (ValueError, OSError, MemoryError) as e:
            self.say("ERROR", "Event not saved: %s" % e)
            return "error"
        self.out("SAVED #%d%s" % (counter, " OVERRIDE" if codes else ""))
        self.out("  " + ev["id"].hex())
        return "saved"

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

    def status(self):
        self.out("STATUS outbox=%d/%d link=%s" % (
            len(self.outbox), self.cfg["outbox_max"], "up" if self.courier and self.courier.connected else "down"))
        self.out("  acked=%d next=#%d" % (self.acked, self.counter.next))

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
                if not line or not self.console(line):
                    return
            if not interactive:
                time.sleep_ms(20)

    def console(self, line):
        # One console line; False to quit. The console module is loaded for the line only.
        from agent import console

        action = console.command(self, line)
        del console
        _unload("agent.console")
        if action is False:
            return False
        if action:
            kind, arg = action
            if kind == "job":
                self.job(arg)
            elif kind == "override":
                self.override(arg)
            else:
                self.pause_delivery()
                try:
                    self.show(self.survey())
                except Exception as e:
                    self.say("ERROR", "Survey failed: %s" % e)
        return True


def _job(w):
    return {"type": w[0], "mpans": [] if w[1] == "-" else [w[1]], "mprns": [] if w[2] == "-" else [w[2]],
            "job": w[3], "installer": w[4]}


def main(argv):
    args = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--job":
            args["job"] = argv[i + 1:i + 6]
            i += 6
        elif a in ("--flash", "--override", "--deliver"):
            args[a[2:]] = argv[i + 1]
            i += 2
        elif a == "--pubkey":
            args["pubkey"] = True
            i += 1
        else:
            print("ERROR unknown argument %s" % a)
            return 2
    root = args.get("flash", "flash")
    try:
        agent = Agent(root)
    except (ValueError, OSError) as e:  # ConfigError is a ValueError
        print("ERROR %s" % e)
        return 2
    if args.get("pubkey"):
        print("PUBKEY " + agent.public_key())
        return 0
    rc = 0
    if "job" in args:
        result = agent.job(_job(args["job"]), args.get("override"))
        rc = {"saved": 0, "refused": 3}.get(result, 1)
    if "deliver" in args:
        agent.loop(float(args["deliver"]))
        agent.status()
    elif "job" not in args:
        agent.loop(interactive=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
