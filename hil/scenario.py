"""Scenarios: premises, handhelds, a timeline of steps, and expectations (docs/scenarios.md).

A scenario runs against a `Bench` (the broker and the bridge, shared by the scenarios of a
run). It starts its own emulated premises and boards, plays its steps, then checks its
expectations against what the bridge derived and sent.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import checks
from . import premises as premises_mod
from .board import Board, BoardSpec
from .hub import HubEmulator
from .report import Check, Result, now_iso, write_junit
from .steps import REGISTRY, ScenarioError, poll_until

__all__ = ["Check", "Result", "Run", "Scenario", "ScenarioError", "library", "load", "poll_until", "write_junit"]

LIBRARY = Path(__file__).resolve().parent / "scenarios"
TOP_KEYS = {"name", "description", "premises", "handhelds", "steps", "expect", "seed"}
HANDHELD_KEYS = {"device_id", "premises", "clock_offset", "flash", "heapsize", "flash_limit", "config"}


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


def _validate(path: Path, data: dict, handhelds: dict, premises: dict) -> None:
    """Every key known, every step complete, every MPxN valid: a typo fails here, with the
    file and line, before anything runs (a typo that passed would check nothing)."""
    text = path.read_text().splitlines()
    step_lines = [n + 1 for n, ln in enumerate(text) if ln.strip() == "[[steps]]"]

    def line_of(prefix: str) -> int:
        return next((n + 1 for n, ln in enumerate(text) if ln.strip().startswith(prefix)), 1)

    checks.unknown(f"{path}:1", data, TOP_KEYS)
    if "seed" in data and (not isinstance(data["seed"], int) or isinstance(data["seed"], bool)):
        raise ScenarioError(f"{path}:{line_of('seed')}: seed must be a whole number")
    for name, hdef in data.get("handhelds", {}).items():
        checks.unknown(f"{path}:{line_of(f'[handhelds.{name}]')}: handheld {name}", hdef, HANDHELD_KEYS)
    if not isinstance(data.get("steps", []), list):
        raise ScenarioError(f"{path}:{line_of('steps')}: steps must be [[steps]] tables")
    for i, st in enumerate(data.get("steps", [])):
        where = f"{path}:{step_lines[i] if i < len(step_lines) else 1}: step {i + 1}"
        kind = st.get("do") if isinstance(st, dict) else None
        if kind not in REGISTRY:
            raise ScenarioError(f"{where}: 'do' must be one of {', '.join(REGISTRY)}, got {str(kind)[:30]!r}")
        sk = REGISTRY[kind]
        checks.unknown(f"{where} ({kind})", st, set(sk.required | sk.optional | {"do"}))
        missing = sorted(sk.required - set(st))
        if missing:
            raise ScenarioError(f"{where} ({kind}): {missing[0]!r} required")
        if "handheld" in st and st["handheld"] not in handhelds:
            raise ScenarioError(f"{where}: unknown handheld {str(st['handheld'])[:30]!r} "
                                f"(have: {', '.join(handhelds)})")
        if "premises" in st and st["premises"] not in premises:
            raise ScenarioError(f"{where}: unknown premises {str(st['premises'])[:30]!r} "
                                f"(have: {', '.join(premises)})")
        if sk.check:
            sk.check(where, st)
    checks.validate(f"{path}:{line_of('[expect]')}: expect", data.get("expect", {}), handhelds)


def library() -> list[str]:
    return sorted(p.stem for p in LIBRARY.glob("*.toml"))


class Run:
    """One scenario against a bench (see hil/bench.py for what a bench provides)."""

    def __init__(self, scenario: Scenario, bench: Any, workdir: Path, say: Callable[[str], None] = print):
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
        result = Result(self.sc.name, False, 0.0, premises_of=self.sc.mpxn_premises(), started=now_iso(),
                        seed=self.sc.seed, workdir=self.dir)
        try:
            self._setup()
            for i, step in enumerate(self.sc.steps):
                self.log(f"step {i + 1}: {_describe(step)}")
                self._mark_step()
                self._step(step)
            checks.settle(self)
            result.checks = checks.verify(self)
            result.ok = all(c.ok for c in result.checks)
        except Exception as exc:  # a scenario that breaks is a failed scenario, not a crashed run
            result.error = f"{type(exc).__name__}: {exc}"
            self.log("ERROR " + result.error)
        finally:
            self._teardown()
            result.seconds = time.monotonic() - started
            result.timeline = self.timeline
        return result

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
        # The DCC's view before anyone visits: each premises' inventory, from the DCC adaptor.
        from hil.dcc import duis_now

        for name, p in self.sc.premises.items():
            if p.smi_devices():
                got = self.bench.duis(self.bench.dcc.inventory(p.smi_devices(), at=duis_now()))
                self.log(f"DCC inventory for {name}: {got}")

    def _teardown(self) -> None:
        for name, b in self.boards.items():
            b.shutdown()
            # Each board's console, whole, beside the report (what the installer saw).
            (self.dir / f"{name}.console.log").write_text("\n".join(b.lines) + "\n")
        for h in self.hubs.values():
            h.stop()

    def board(self, step: dict[str, Any]) -> Board:
        """The step's handheld, booted if its power was off."""
        b = self.boards[step["handheld"]]
        if not b.running:
            b.boot()
        return b

    def _mark_step(self) -> None:
        # Where this step's console lines begin on each board: `power_cut after=TAG` looks
        # from the step before it on, never at older lines of the same boot.
        for b in self.boards.values():
            b.step_marks = (getattr(b, "step_marks", (0, 0))[1], len(b.lines))

    def _step(self, st: dict[str, Any]) -> None:
        REGISTRY[st["do"]].play(self, st)



def _describe(step: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in step.items())
