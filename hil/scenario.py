"""Scenarios: premises, handhelds, a timeline of steps, and expectations (docs/scenarios.md).

A scenario runs against a `Bench` (the broker and the bridge, shared by the scenarios of a
run). It starts its own emulated premises and boards, plays its steps, then checks its
expectations against what the bridge derived and sent.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from . import premises as premises_mod
from .board import Board, BoardSpec
from .hub import HubEmulator

LIBRARY = Path(__file__).resolve().parent / "scenarios"
# Each step's keys: (required, optional). Anything else is refused at load, before a run.
STEPS: dict[str, tuple[set[str], set[str]]] = {
    "job": ({"handheld", "type"}, {"mpan", "mprn", "ref", "installer", "expect", "override", "codes"}),
    "override": ({"handheld", "reason"}, {"expect"}),
    "hub": ({"premises", "command"}, set()),
    "network": ({"handheld", "action"}, set()),
    "power_cut": ({"handheld"}, {"after", "delay", "reboot", "inside_write"}),
    "boot": ({"handheld"}, set()),
    "broker_restart": (set(), {"down"}),
    "wait": ({"seconds"}, set()),
    "clock": ({"handheld"}, {"days", "seconds"}),
    "deliver": ({"handheld"}, {"timeout"}),
    "visit": ({"handheld", "premises"}, set()),
    "forge": ({"handheld"}, {"kind", "mpan", "count"}),
    "revoke": ({"handheld"}, {"hard", "at"}),
    "survey": ({"handheld"}, {"expect"}),
}
FORGE_KINDS = ("bad_signature", "tampered", "unregistered", "other_topic", "replay")
STEP_KINDS = tuple(STEPS)
TOP_KEYS = {"name", "description", "premises", "handhelds", "steps", "expect", "seed"}
HANDHELD_KEYS = {"device_id", "premises", "clock_offset", "flash", "heapsize", "flash_limit", "config"}
EXPECT_KEYS = {"flags", "rejected", "dtc", "no_event_lost", "converge", "settle", "undelivered_ok"}
FLAG_KEYS = {"flag", "since", "override", "history", "reason", "devices", "dtc"}
JOB_TYPES = ("install", "commission", "install_and_leave", "removal")
JOB_OUTCOMES = ("saved", "refused", "error", "lost")


class ScenarioError(ValueError):
    pass


@dataclass
class Scenario:
    name: str
    description: str
    premises: dict[str, premises_mod.Premises]
    handhelds: dict[str, BoardSpec]
    plugged: dict[str, str]  # handheld -> premises its cable starts in
    steps: list[dict]
    expect: dict
    path: Path | None = None
    exclusive: bool = False  # restarts the shared broker: run it alone
    seed: int = 0  # the line-fault random generator's seed (a stable hash of the name by default)

    def mpxn_premises(self) -> dict[str, str]:
        out = {}
        for name, p in self.premises.items():
            for d in p.devices:
                if d.mpxn:
                    out[d.mpxn] = name
            for lm in p.legacy_meters:
                out[lm["mpxn"]] = name
        for m in self.expect.get("flags", {}):
            out.setdefault(m, next(iter(self.premises), "?"))
        return out


def load(path: str | Path) -> Scenario:
    p, data = premises_mod.read_toml(path, LIBRARY, "scenario", ScenarioError)
    name = data.get("name", p.stem)
    prem = {}
    for pname, pdef in data.get("premises", {}).items():
        if "library" in pdef:
            base = premises_mod.load(pdef["library"])
        else:
            base = premises_mod.from_dict(pdef, pname)
        prem[pname] = base
    hh, plugged = {}, {}
    for hname, hdef in data.get("handhelds", {}).items():
        if "device_id" not in hdef:
            raise ScenarioError(f"{name}: handheld {hname} needs a device_id")
        flash = hdef.get("flash", "folder")
        if flash not in ("folder", "littlefs"):
            raise ScenarioError(f"{name}: handheld {hname}: flash must be folder or littlefs")
        hh[hname] = BoardSpec(hname, hdef["device_id"], hdef.get("heapsize", "64k"),
                              int(hdef.get("clock_offset", 0)), flash=flash,
                              flash_limit=int(hdef.get("flash_limit", 512 * 1024)), config=hdef.get("config", {}))
        plugged[hname] = hdef.get("premises", next(iter(prem), ""))
        if plugged[hname] and plugged[hname] not in prem:
            raise ScenarioError(f"{name}: handheld {hname} plugged into unknown premises {plugged[hname]}")
    steps = data.get("steps", [])
    _validate(p, data, hh, prem)
    # The same seed in every process and run (Python's hash() of a str is salted per process,
    # so a noisy failure could not be replayed); `seed = N` in the file picks another.
    seed = int(data.get("seed", zlib.crc32(name.encode()) & 0xFFFF))
    return Scenario(name, data.get("description", ""), prem, hh, plugged, steps, data.get("expect", {}), p,
                    any(s["do"] == "broker_restart" for s in steps), seed)


def _unknown(where: str, got: object, allowed: set[str]) -> None:
    if not isinstance(got, dict):
        raise ScenarioError(f"{where}: a table required")
    extra = sorted(set(got) - allowed)
    if extra:
        raise ScenarioError(f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _check_mpxn(where: str, value: object) -> None:
    from companion.ids import check_mpan, check_mprn

    text = str(value)
    try:
        (check_mpan if len(text) == 13 else check_mprn)(text)
    except ValueError as exc:
        raise ScenarioError(f"{where}: {text[:20]!r} is not a valid MPAN or MPRN: {exc}") from None


def _validate(path: Path, data: dict, handhelds: dict, premises: dict) -> None:
    """Every key known, every step complete, every MPxN valid: a typo fails here, with the
    file and line, before anything runs (a typo that passed would check nothing)."""
    text = path.read_text().splitlines()
    step_lines = [n + 1 for n, ln in enumerate(text) if ln.strip() == "[[steps]]"]

    def line_of(prefix: str) -> int:
        return next((n + 1 for n, ln in enumerate(text) if ln.strip().startswith(prefix)), 1)

    _unknown(f"{path}:1", data, TOP_KEYS)
    if "seed" in data and (not isinstance(data["seed"], int) or isinstance(data["seed"], bool)):
        raise ScenarioError(f"{path}:{line_of('seed')}: seed must be a whole number")
    for name, hdef in data.get("handhelds", {}).items():
        _unknown(f"{path}:{line_of(f'[handhelds.{name}]')}: handheld {name}", hdef, HANDHELD_KEYS)
    for i, st in enumerate(data.get("steps", [])):
        where = f"{path}:{step_lines[i] if i < len(step_lines) else 1}: step {i + 1}"
        kind = st.get("do")
        if kind not in STEPS:
            raise ScenarioError(f"{where}: 'do' must be one of {', '.join(STEP_KINDS)}, got {str(kind)[:30]!r}")
        required, optional = STEPS[kind]
        _unknown(f"{where} ({kind})", st, required | optional | {"do"})
        missing = sorted(required - set(st))
        if missing:
            raise ScenarioError(f"{where} ({kind}): {missing[0]!r} required")
        if "handheld" in st and st["handheld"] not in handhelds:
            raise ScenarioError(f"{where}: unknown handheld {st['handheld']!r} (have: {', '.join(handhelds)})")
        if "premises" in st and st["premises"] not in premises:
            raise ScenarioError(f"{where}: unknown premises {st['premises']!r} (have: {', '.join(premises)})")
        if kind == "override" and st.get("expect", "saved") not in ("saved", "refused", "error"):
            raise ScenarioError(f"{where}: expect must be saved, refused or error")
        if kind == "job":
            if st["type"] not in JOB_TYPES:
                raise ScenarioError(f"{where}: type must be one of {', '.join(JOB_TYPES)}")
            if st.get("expect", "saved") not in JOB_OUTCOMES:
                raise ScenarioError(f"{where}: expect must be one of {', '.join(JOB_OUTCOMES)}")
            for key in ("mpan", "mprn"):
                if key in st and st[key] != "-":
                    _check_mpxn(f"{where}: {key}", st[key])
            if "codes" in st and not isinstance(st["codes"], list):
                raise ScenarioError(f"{where}: codes must be a list of refusal codes")
        if kind == "forge":
            if st.get("kind", "bad_signature") not in FORGE_KINDS:
                raise ScenarioError(f"{where}: kind must be one of {', '.join(FORGE_KINDS)}")
            if "count" in st and (not isinstance(st["count"], int) or not 1 <= st["count"] <= 1000):
                raise ScenarioError(f"{where}: count must be 1 to 1000")
            if "mpan" in st:
                _check_mpxn(f"{where}: mpan", st["mpan"])
        if kind == "revoke" and "at" in st:
            try:
                _revocation_time(st["at"])
            except ValueError as exc:
                raise ScenarioError(f"{where}: at: {exc}") from None
        if kind == "survey" and st.get("expect", "ok") not in ("ok", "error"):
            raise ScenarioError(f"{where}: expect must be ok or error")
    exp = data.get("expect", {})
    where = f"{path}:{line_of('[expect]')}: expect"
    _unknown(where, exp, EXPECT_KEYS)
    for mpxn, want in exp.get("flags", {}).items():
        _check_mpxn(f"{where}.flags", mpxn)
        _unknown(f"{where}.flags.{mpxn}", want, FLAG_KEYS)
        if want.get("flag", "none") not in ("A", "I", "N", "none"):
            raise ScenarioError(f"{where}.flags.{mpxn}: flag must be A, I, N or none")
        if "history" in want and (not isinstance(want["history"], list)
                                  or any(h not in ("A", "I", "N") for h in want["history"])):
            raise ScenarioError(f"{where}.flags.{mpxn}: history must be a list of A, I and N, oldest first")
        if "devices" in want and not all(isinstance(d, str) and d.count(":") == 1 for d in want["devices"]):
            raise ScenarioError(f"{where}.flags.{mpxn}: devices must be a list of TYPE:STATUS")
        if "dtc" in want and (not isinstance(want["dtc"], int) or isinstance(want["dtc"], bool)):
            raise ScenarioError(f"{where}.flags.{mpxn}: dtc must be a whole number of DTC lines")
    for handheld in exp.get("rejected", {}):
        if handheld not in handhelds:
            raise ScenarioError(f"{where}.rejected: unknown handheld {handheld!r}")
    for spec in exp.get("dtc", []):
        parts = str(spec).split(":")
        if len(parts) != 3 or parts[2] not in ("A", "I", "N"):
            raise ScenarioError(f"{where}.dtc: {str(spec)[:40]!r} must be FLOW:MPXN:FLAG")
        _check_mpxn(f"{where}.dtc", parts[1])


def library() -> list[str]:
    return sorted(p.stem for p in LIBRARY.glob("*.toml"))


@dataclass
class Check:
    what: str
    ok: bool
    detail: str


@dataclass
class Result:
    name: str
    ok: bool
    seconds: float
    checks: list[Check] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)
    error: str | None = None
    premises_of: dict[str, str] = field(default_factory=dict)


def day(spec: str, now: datetime | None = None) -> str:
    """'day+N' (or 'day-N') -> the UTC date N days from today, YYYY-MM-DD."""
    now = now or datetime.now(timezone.utc)
    if not spec.startswith("day"):
        return spec
    n = int(spec[3:] or 0)
    return (now + timedelta(days=n)).strftime("%Y-%m-%d")


class Run:
    """One scenario against a bench (see hil/bench.py for what a bench provides)."""

    def __init__(self, scenario: Scenario, bench, workdir: Path, say=print):
        self.sc = scenario
        self.bench = bench
        self.dir = workdir
        self.say = say
        self.hubs: dict[str, HubEmulator] = {}
        self.boards: dict[str, Board] = {}
        self.saved: dict[str, list[str]] = {}  # handheld -> ids the installer was told saved
        self.timeline: list[str] = []
        self.t0 = time.monotonic()

    def log(self, text: str) -> None:
        line = f"{time.monotonic() - self.t0:6.1f}s {text}"
        self.timeline.append(line)

    def execute(self) -> Result:
        started = time.monotonic()
        result = Result(self.sc.name, False, 0.0, premises_of=self.sc.mpxn_premises())
        try:
            self._setup()
            for i, step in enumerate(self.sc.steps):
                self.log(f"step {i + 1}: {_describe(step)}")
                self._mark_step()
                self._step(step)
            self._settle()
            result.checks = self._verify()
            result.ok = all(c.ok for c in result.checks)
        except Exception as exc:  # a scenario that breaks is a failed scenario, not a crashed run
            result.error = f"{type(exc).__name__}: {exc}"
            self.log("ERROR " + result.error)
        finally:
            self._teardown()
            result.seconds = time.monotonic() - started
            result.timeline = self.timeline
        return result

    # --- setup -------------------------------------------------------------------------------
    def _setup(self) -> None:
        self.log(f"seed {self.sc.seed} (line faults; set seed = N in the scenario to change it)")
        for name, p in self.sc.premises.items():
            self.hubs[name] = HubEmulator(p, seed=self.sc.seed).start()
        for name, spec in self.sc.handhelds.items():
            uart = self.hubs[self.sc.plugged[name]].path if self.sc.plugged[name] else None
            b = Board(spec, self.dir / name, self.bench.broker_address, uart, pki=self.bench.pki)
            self.bench.register(spec.device_id, b.public_key)
            self.boards[name] = b
            self.saved[name] = []
            b.boot()

    def _teardown(self) -> None:
        for name, b in self.boards.items():
            b.shutdown()
            # Each board's console, whole, beside the report (what the installer saw).
            (self.dir / f"{name}.console.log").write_text("\n".join(b.lines) + "\n")
        for h in self.hubs.values():
            h.stop()

    # --- steps -------------------------------------------------------------------------------
    def _board(self, step: dict) -> Board:
        b = self.boards[step["handheld"]]
        if not b.running:
            b.boot()
        return b

    def _mark_step(self) -> None:
        # Where this step's console lines begin on each board: `power_cut after=TAG` looks
        # from the step before it on, never at older lines of the same boot.
        for b in self.boards.values():
            b.step_marks = (getattr(b, "step_marks", (0, 0))[1], len(b.lines))

    def _step(self, st: dict) -> None:
        kind = st["do"]
        if kind == "job":
            b = self._board(st)
            ref = st.get("ref", "WO-" + self.sc.name[:20])
            cmd = f"job {st['type']} {st.get('mpan', '-')} {st.get('mprn', '-')} {ref} " \
                  f"{st.get('installer', 'INST-1')}"
            start = b.send(cmd)
            try:
                line = b.expect("SAVED", "REFUSED", "ERROR", start=start, timeout=60)
                outcome = line.split()[0].lower()
            except TimeoutError:
                if b.running:
                    raise
                line, outcome = "the power went during the job", "lost"  # a cut armed by power_cut

            want = st.get("expect", "saved")
            if outcome == "refused" and st.get("override"):
                start = b.send(f"override {st['override']}")
                line = b.expect("SAVED", "ERROR", start=start)
                outcome = "saved"
                self.log(f"  override: {st['override']}")
            if outcome == "saved" and line in b.lines[start:]:
                b.expect("  ", start=b.lines.index(line, start) + 1)
                self.saved[st["handheld"]] += b.saved_ids(start)
            self.log(f"  {st['handheld']}: {line}")
            if outcome != want:
                raise AssertionError(f"job {st['type']}: expected {want}, got {line}")
            if "codes" in st and outcome == "refused":
                i = b.lines.index(line, start)
                text = line[len("REFUSED "):]
                for more in b.lines[i + 1:]:  # the codes wrap onto continuation lines
                    if not more.startswith("  "):
                        break
                    text += " " + more.strip()
                got = {c.strip() for c in text.split(",") if c.strip()}
                if got != set(st["codes"]):
                    raise AssertionError(f"refusal codes {sorted(got)}, expected {sorted(st['codes'])}")
        elif kind == "override":
            # The console's override, on its own: it answers the refusal just before it, if any.
            b = self._board(st)
            start = b.send(f"override {st['reason']}")
            line = b.expect("SAVED", "REFUSED", "ERROR", start=start, timeout=60)
            if line.startswith("SAVED"):
                b.expect("  ", start=b.lines.index(line, start) + 1)
                self.saved[st["handheld"]] += b.saved_ids(start)
            self.log(f"  {st['handheld']}: {line}")
            if line.split()[0].lower() != st.get("expect", "saved"):
                raise AssertionError(f"override: expected {st.get('expect', 'saved')}, got {line}")
        elif kind == "hub":
            reply = self.hubs[st["premises"]].command(st["command"])
            if reply.startswith("error"):
                raise ScenarioError(f"hub command {st['command']!r}: {reply}")
        elif kind == "network":
            proxy = self.boards[st["handheld"]].proxy
            proxy.command(st["action"])
        elif kind == "power_cut" and "inside_write" in st:
            # Arm a cut inside the Nth flash block write from now (LittleFS boards): reboot armed.
            b = self.boards[st["handheld"]]
            b.power_cut()
            b.boot(cut_after_writes=int(st["inside_write"]))
        elif kind == "power_cut":
            b = self.boards[st["handheld"]]
            if "after" in st:  # pull the power once this console tag appears
                since = max(getattr(b, "mark", 0), getattr(b, "step_marks", (0, 0))[0])
                b.expect(st["after"], start=since, timeout=60)
                time.sleep(float(st.get("delay", 0)))
            b.power_cut()
            self.saved[st["handheld"]] = sorted(set(self.saved[st["handheld"]]) | set(b.saved_ids()))
            if st.get("reboot", True):
                b.boot()
        elif kind == "boot":
            self._board(st)
        elif kind == "broker_restart":
            self.bench.restart_broker(float(st.get("down", 1.0)))
        elif kind == "wait":
            time.sleep(float(st["seconds"]))
        elif kind == "clock":
            b = self._board(st)
            offset = int(st.get("days", 0)) * 86400 + int(st.get("seconds", 0))
            b.spec.clock_offset = offset
            start = b.send(f"clock {offset}")
            b.expect("CLOCK", start=start)
        elif kind == "deliver":
            b = self._board(st)
            end = time.monotonic() + float(st.get("timeout", 60))
            while (left := b.pending()) and time.monotonic() < end:
                time.sleep(0.2)
            if left:
                raise AssertionError(f"{st['handheld']}: {left} events still in the outbox")
        elif kind == "visit":
            b = self._board(st)
            start = b.send(f"plug {self.hubs[st['premises']].path}")
            b.expect("PLUGGED", start=start)
        elif kind == "forge":
            device = self.sc.handhelds[st["handheld"]].device_id
            got = self.bench.forge(device, st.get("kind", "bad_signature"), st.get("mpan", "1312345678907"),
                                   int(st.get("count", 1)))
            self.log(f"  forged: {got}")
        elif kind == "revoke":
            at = _revocation_time(st["at"]) if "at" in st else None
            self.bench.revoke(self.sc.handhelds[st["handheld"]].device_id, bool(st.get("hard", False)), at)
        elif kind == "survey":  # a visit that only reads the premises: nothing is saved
            b = self._board(st)
            start = b.send("survey")
            line = b.expect("HUB", "ERROR", start=start, timeout=60)
            got = "error" if line.startswith("ERROR") else "ok"
            self.log(f"  {st['handheld']}: {line}")
            if got != st.get("expect", "ok"):
                raise AssertionError(f"survey: expected {st.get('expect', 'ok')}, got {line}")

    # --- expectations ------------------------------------------------------------------------
    def _flag_extras(self, mpxn: str, want: dict, site: dict | None) -> list[str]:
        """What differs in a flag's history (the values published, oldest first), reason,
        devices (TYPE:STATUS of the latest survey) and DTC lines; [] when all agree."""
        wrong = []
        if "history" in want:
            got = self.bench.history(mpxn)
            if got != want["history"]:
                wrong.append(f"history {got}, want {want['history']}")
        if "reason" in want and want["reason"] not in ((site or {}).get("reason") or ""):
            wrong.append(f"reason {((site or {}).get('reason') or '')[:80]!r} lacks {want['reason']!r}")
        if "devices" in want:
            got_d = sorted(f"{d['type']}:{d.get('status') or '-'}" for d in (site or {}).get("devices", []))
            if got_d != sorted(want["devices"]):
                wrong.append(f"devices {got_d}, want {sorted(want['devices'])}")
        if "dtc" in want:
            flow = "D0350" if len(mpxn) == 13 else "GAS"
            n = sum(1 for g in self.bench.dtc_groups(flow) if g[1] == mpxn)
            if n != want["dtc"]:
                wrong.append(f"{n} DTC lines, want {want['dtc']}")
        return wrong

    def _settle(self) -> None:
        """Let every board deliver its backlog before checking."""
        end = time.monotonic() + float(self.sc.expect.get("settle", 60))
        while time.monotonic() < end:
            if self.sc.expect.get("undelivered_ok") or all(not b.pending() for b in self.boards.values()):
                break
            time.sleep(0.2)

    def _verify(self) -> list[Check]:
        checks = []
        exp = self.sc.expect
        deadline = time.monotonic() + float(exp.get("converge", 20))
        for mpxn, want in exp.get("flags", {}).items():
            want_flag = None if want.get("flag") in (None, "none") else want["flag"]
            want_since = day(want["since"]) if "since" in want else None
            while True:
                site = self.bench.site(mpxn)
                got_flag = site.get("flag") if site else None
                got_since = site.get("since") if site else None
                got_override = bool(site.get("override")) if site else False
                ok = got_flag == want_flag and (want_since is None or got_since == want_since) \
                    and ("override" not in want or got_override == bool(want["override"]))
                extra = self._flag_extras(mpxn, want, site)
                ok = ok and not extra
                if ok or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            checks.append(Check(f"flag {mpxn}", ok, f"want {want_flag or 'none'}"
                                + (f" since {want_since}" if want_since else "")
                                + (f", override {bool(want['override'])}" if "override" in want else "")
                                + f", got {got_flag or 'none'}" + (f" since {got_since}" if got_since else "")
                                + (f", override {got_override}" if "override" in want else "")
                                + ("; " + "; ".join(extra) if extra else "")))
        for handheld, reasons in exp.get("rejected", {}).items():
            device = self.sc.handhelds[handheld].device_id
            while True:  # the set of reasons: a handheld re-sends what is not acknowledged
                got = sorted(set(self.bench.rejections(device)))
                ok = got == sorted(set(reasons))
                if ok or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            checks.append(Check(f"rejected {handheld}", ok, f"want {sorted(reasons)}, got {got}"))
        for spec in exp.get("dtc", []):
            flow, mpxn, flag = spec.split(":")
            while True:
                groups = self.bench.dtc_groups(flow)
                ok = any(g[1] == mpxn and g[2] == flag for g in groups)
                if ok or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            checks.append(Check(f"dtc {spec}", ok, "in a DTC file" if ok else "not found in any DTC file"))
        if exp.get("no_event_lost", True):
            told = {i for ids in self.saved.values() for i in ids}
            while True:
                stored = self.bench.stored_ids(told)
                missing = told - stored
                if not missing or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            checks.append(Check("no event lost", not missing,
                                f"{len(told)} saved, {len(told) - len(missing)} stored"
                                + (f"; missing {sorted(missing)[:3]}" if missing else "")))
        return checks


def _revocation_time(at) -> float:
    """A step's `at`: seconds from now (negative: in the past) or an ISO 8601 time with a zone."""
    if isinstance(at, bool):
        raise ValueError("seconds from now, or an ISO 8601 time")
    if isinstance(at, (int, float)):
        return time.time() + at
    from companion.times import parse_time

    return parse_time(str(at))


def _describe(step: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in step.items())


def http_json(url: str, token: str | None = None) -> dict | None:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def write_junit(results: list[Result], path: Path, wall: float | None = None) -> None:
    """JUnit XML: the suite's time is the run's wall time (scenarios run in parallel), with
    a timestamp; each scenario keeps its steps as system-out."""
    import datetime
    from xml.sax.saxutils import escape, quoteattr

    failures = sum(not r.ok for r in results)
    wall = sum(r.seconds for r in results) if wall is None else wall
    stamp = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    out = [f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="hil" tests="{len(results)}" '
           f'failures="{failures}" time="{wall:.1f}" timestamp="{stamp}">']
    for r in results:
        out.append(f'  <testcase classname="hil.scenarios" name={quoteattr(r.name)} time="{r.seconds:.1f}">')
        if not r.ok:
            msg = r.error or "; ".join(f"{c.what}: {c.detail}" for c in r.checks if not c.ok)
            out.append(f"    <failure message={quoteattr(msg)}>{escape(chr(10).join(r.timeline))}</failure>")
        out.append(f"    <system-out>{escape(chr(10).join(r.timeline))}</system-out>")
        out.append("  </testcase>")
    out.append("</testsuite>\n")
    path.write_text("\n".join(out))


