"""The scenario steps: one registry, each step with its schema and its action (docs/scenarios.md).

A step is registered with `@step(name, required=..., optional=...)`; its optional `check`
validates a step's values at load (raising `ScenarioError`), before anything runs, and the
decorated function plays it against a `Run` (hil/scenario.py). Adding a step is one function
here and one row in the docs' table; nothing else dispatches on step names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from companion.wire.event import EVENT_TYPES as JOB_TYPES

from .board import scaled

if TYPE_CHECKING:
    from .board import Board
    from .scenario import Run

T = TypeVar("T")

JOB_OUTCOMES = ("saved", "refused", "error", "lost")
FORGE_KINDS = ("bad_signature", "tampered", "unregistered", "other_topic", "replay")


class ScenarioError(ValueError):
    """A scenario that cannot run as written: the message names the file and line."""


def poll_until(probe: Callable[[], tuple[bool, T]], timeout: float, interval: float = 0.2) -> tuple[bool, T]:
    """Call probe() -> (done, value) until done or `timeout` seconds have passed; at least once.
    -> the last (done, value), so a check that never came true reports what it last saw."""
    deadline = time.monotonic() + timeout
    while True:
        done, value = probe()
        if done or time.monotonic() >= deadline:
            return done, value
        time.sleep(interval)


@dataclass(frozen=True)
class StepKind:
    name: str
    required: frozenset[str]
    optional: frozenset[str]
    play: Callable[[Run, dict[str, Any]], None]
    check: Callable[[str, dict[str, Any]], None] | None = None


REGISTRY: dict[str, StepKind] = {}


def step(name: str, required: tuple[str, ...] = (), optional: tuple[str, ...] = (),
         check: Callable[[str, dict[str, Any]], None] | None = None
         ) -> Callable[[Callable[[Run, dict[str, Any]], None]], Callable[[Run, dict[str, Any]], None]]:
    def register(play: Callable[[Run, dict[str, Any]], None]) -> Callable[[Run, dict[str, Any]], None]:
        if name in REGISTRY:
            raise RuntimeError(f"step {name!r} registered twice")
        REGISTRY[name] = StepKind(name, frozenset(required), frozenset(optional), play, check)
        return play
    return register


def check_mpxn(where: str, value: object) -> None:
    from companion.ids import check_mpan, check_mprn

    text = str(value)
    try:
        (check_mpan if len(text) == 13 else check_mprn)(text)
    except ValueError as exc:
        raise ScenarioError(f"{where}: {text[:20]!r} is not a valid MPAN or MPRN: {exc}") from None


def _one_of(where: str, key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ScenarioError(f"{where}: {key} must be one of {', '.join(allowed)}, got {str(value)[:30]!r}")


def _number(where: str, key: str, value: object, lo: float = 0, hi: float = 86400) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ScenarioError(f"{where}: {key} must be a number from {lo:g} to {hi:g}")


def revocation_time(at: object) -> float:
    """A step's `at`: seconds from now (negative: in the past) or an ISO 8601 time with a zone."""
    if isinstance(at, bool):
        raise ValueError("seconds from now, or an ISO 8601 time")
    if isinstance(at, (int, float)):
        return time.time() + at
    from companion.times import parse_time

    return parse_time(str(at))


# --- jobs and the console ----------------------------------------------------------------------
def _saved(run: Run, handheld: str, b: Board, line: str, start: int) -> None:
    """The installer was told SAVED: note the ids the console listed under it."""
    if line in b.lines[start:]:
        b.expect("  ", start=b.lines.index(line, start) + 1)
        run.saved[handheld] += b.saved_ids(start)


def _refusal_codes(b: Board, line: str, start: int) -> set[str]:
    i = b.lines.index(line, start)
    b.expect("HINT", start=i)  # printed after the codes' continuation lines and the reasons
    text = line[len("REFUSED "):]
    for more in b.lines[i + 1:]:  # the codes wrap onto continuation lines
        if not more.startswith("  "):
            break
        text += " " + more.strip()
    return {c.strip() for c in text.split(",") if c.strip()}


def _check_job(where: str, st: dict[str, Any]) -> None:
    _one_of(where, "type", st["type"], JOB_TYPES)
    _one_of(where, "expect", st.get("expect", "saved"), JOB_OUTCOMES)
    for key in ("mpan", "mprn"):
        if key in st and st[key] != "-":
            check_mpxn(f"{where}: {key}", st[key])
    if "codes" in st and (not isinstance(st["codes"], list) or not all(isinstance(c, str) for c in st["codes"])):
        raise ScenarioError(f"{where}: codes must be a list of refusal codes")


@step("job", ("handheld", "type"), ("mpan", "mprn", "ref", "installer", "expect", "override", "codes"),
      check=_check_job)
def _job(run: Run, st: dict[str, Any]) -> None:
    b = run.board(st)
    ref = st.get("ref", "WO-" + run.sc.name[:20])
    start = b.send(f"job {st['type']} {st.get('mpan', '-')} {st.get('mprn', '-')} {ref} "
                   f"{st.get('installer', 'INST-1')}")
    try:
        line = b.expect("SAVED", "REFUSED", "ERROR", start=start, timeout=60)
        outcome = line.split()[0].lower()
    except TimeoutError:
        if b.running:
            raise
        line, outcome = "the power went during the job", "lost"  # a cut armed by power_cut
    if outcome == "refused" and st.get("override"):
        start = b.send(f"override {st['override']}")
        line = b.expect("SAVED", "ERROR", start=start)
        outcome = line.split()[0].lower()
        run.log(f"  override: {st['override']}")
    if outcome == "saved":
        _saved(run, st["handheld"], b, line, start)
    run.log(f"  {st['handheld']}: {line}")
    want = st.get("expect", "saved")
    if outcome != want:
        raise AssertionError(f"job {st['type']}: expected {want}, got {line}")
    if "codes" in st and outcome == "refused":
        got = _refusal_codes(b, line, start)
        if got != set(st["codes"]):
            raise AssertionError(f"refusal codes {sorted(got)}, expected {sorted(st['codes'])}")


@step("override", ("handheld", "reason"), ("expect",),
      check=lambda where, st: _one_of(where, "expect", st.get("expect", "saved"), ("saved", "refused", "error")))
def _override(run: Run, st: dict[str, Any]) -> None:
    """The console's override on its own: it answers the refusal just before it, if any."""
    b = run.board(st)
    start = b.send(f"override {st['reason']}")
    line = b.expect("SAVED", "REFUSED", "ERROR", start=start, timeout=60)
    if line.startswith("SAVED"):
        _saved(run, st["handheld"], b, line, start)
    run.log(f"  {st['handheld']}: {line}")
    if line.split()[0].lower() != st.get("expect", "saved"):
        raise AssertionError(f"override: expected {st.get('expect', 'saved')}, got {line}")


@step("survey", ("handheld",), ("expect",),
      check=lambda where, st: _one_of(where, "expect", st.get("expect", "ok"), ("ok", "error")))
def _survey(run: Run, st: dict[str, Any]) -> None:
    """A visit that only reads the premises: nothing is saved."""
    b = run.board(st)
    start = b.send("survey")
    line = b.expect("HUB", "ERROR", start=start, timeout=60)
    run.log(f"  {st['handheld']}: {line}")
    got = "error" if line.startswith("ERROR") else "ok"
    if got != st.get("expect", "ok"):
        raise AssertionError(f"survey: expected {st.get('expect', 'ok')}, got {line}")


def _check_clock(where: str, st: dict[str, Any]) -> None:
    for key in ("days", "seconds"):
        if key in st:
            _number(where, key, st[key], -36500 * 86400, 36500 * 86400)


@step("clock", ("handheld",), ("days", "seconds"), check=_check_clock)
def _clock(run: Run, st: dict[str, Any]) -> None:
    b = run.board(st)
    offset = int(st.get("days", 0)) * 86400 + int(st.get("seconds", 0))
    b.spec.clock_offset = offset
    b.expect("CLOCK", start=b.send(f"clock {offset}"))


@step("visit", ("handheld", "premises"))
def _visit(run: Run, st: dict[str, Any]) -> None:
    b = run.board(st)
    b.expect("PLUGGED", start=b.send(f"plug {run.hubs[st['premises']].path}"))


@step("deliver", ("handheld",), ("timeout",), check=lambda where, st: _number(where, "timeout", st.get("timeout", 60)))
def _deliver(run: Run, st: dict[str, Any]) -> None:
    b = run.board(st)
    _, left = poll_until(lambda: (not (n := b.pending()), n), scaled(float(st.get("timeout", 60))))
    if left:
        raise AssertionError(f"{st['handheld']}: {left} events still in the outbox")


@step("boot", ("handheld",))
def _boot(run: Run, st: dict[str, Any]) -> None:
    run.board(st)


# --- the premises, the line and the power -------------------------------------------------------
@step("hub", ("premises", "command"))
def _hub(run: Run, st: dict[str, Any]) -> None:
    reply = run.hubs[st["premises"]].command(st["command"])
    if reply.startswith("error"):
        raise ScenarioError(f"hub command {st['command']!r}: {reply}")


@step("network", ("handheld", "action"))
def _network(run: Run, st: dict[str, Any]) -> None:
    run.boards[st["handheld"]].proxy.command(st["action"])


def _check_power_cut(where: str, st: dict[str, Any]) -> None:
    if "inside_write" in st and ("after" in st or "delay" in st):
        raise ScenarioError(f"{where}: inside_write arms a cut at a flash write; after/delay do not apply")
    if "delay" in st:
        _number(where, "delay", st["delay"], 0, 600)
    if "inside_write" in st:
        _number(where, "inside_write", st["inside_write"], 1, 100000)


@step("power_cut", ("handheld",), ("after", "delay", "reboot", "inside_write"), check=_check_power_cut)
def _power_cut(run: Run, st: dict[str, Any]) -> None:
    b = run.boards[st["handheld"]]
    if "inside_write" in st:
        # Arm a cut inside the Nth flash block write from now (LittleFS boards): reboot armed.
        b.power_cut()
        b.boot(cut_after_writes=int(st["inside_write"]))
        return
    if "after" in st:  # pull the power once this console tag appears, from the step before on
        since = max(getattr(b, "mark", 0), getattr(b, "step_marks", (0, 0))[0])
        b.expect(st["after"], start=since, timeout=60)
        time.sleep(float(st.get("delay", 0)))
    b.power_cut()
    run.saved[st["handheld"]] = sorted(set(run.saved[st["handheld"]]) | set(b.saved_ids()))
    if st.get("reboot", True):
        b.boot()


@step("broker_restart", (), ("down",), check=lambda where, st: _number(where, "down", st.get("down", 1.0), 0, 600))
def _broker_restart(run: Run, st: dict[str, Any]) -> None:
    run.bench.restart_broker(float(st.get("down", 1.0)))


@step("wait", ("seconds",), check=lambda where, st: _number(where, "seconds", st["seconds"], 0, 3600))
def _wait(run: Run, st: dict[str, Any]) -> None:
    time.sleep(float(st["seconds"]))


# --- the back office's side ----------------------------------------------------------------------
def _check_forge(where: str, st: dict[str, Any]) -> None:
    _one_of(where, "kind", st.get("kind", "bad_signature"), FORGE_KINDS)
    if "count" in st and (isinstance(st["count"], bool) or not isinstance(st["count"], int)
                          or not 1 <= st["count"] <= 1000):
        raise ScenarioError(f"{where}: count must be 1 to 1000")
    if "mpan" in st:
        check_mpxn(f"{where}: mpan", st["mpan"])


@step("forge", ("handheld",), ("kind", "mpan", "count"), check=_check_forge)
def _forge(run: Run, st: dict[str, Any]) -> None:
    device = run.sc.handhelds[st["handheld"]].device_id
    got = run.bench.forge(device, st.get("kind", "bad_signature"), st.get("mpan", "1312345678907"),
                          int(st.get("count", 1)))
    run.log(f"  forged: {got}")


def _check_revoke(where: str, st: dict[str, Any]) -> None:
    if "at" in st:
        try:
            revocation_time(st["at"])
        except ValueError as exc:
            raise ScenarioError(f"{where}: at: {exc}") from None


@step("revoke", ("handheld",), ("hard", "at"), check=_check_revoke)
def _revoke(run: Run, st: dict[str, Any]) -> None:
    at = revocation_time(st["at"]) if "at" in st else None
    run.bench.revoke(run.sc.handhelds[st["handheld"]].device_id, bool(st.get("hard", False)), at)


# --- the DCC's side (docs/scenarios.md "The bench's DCC") ------------------------------------------
def _smi_premises(run: Run, st: dict[str, Any]) -> Any:
    eui = str(st["device"]).upper()
    if "premises" in st:
        return run.sc.premises[st["premises"]]
    for p in run.sc.premises.values():
        if eui in p.smi:
            return p
    for p in run.sc.premises.values():
        try:
            p.smi_type(eui)
            return p
        except ValueError:
            continue
    raise ScenarioError(f"smi: no premises has the device {eui}")


def _check_smi(where: str, st: dict[str, Any]) -> None:
    from hil.premises import SMI_STATUSES

    _one_of(where, "status", st.get("status"), (*SMI_STATUSES, "unknown"))


@step("smi", ("device", "status"), ("premises",), check=_check_smi)
def _smi(run: Run, st: dict[str, Any]) -> None:
    """The DCC's inventory changes; the DCC adaptor publishes the premises' 8.2 response."""
    from hil.dcc import duis_now

    p = _smi_premises(run, st)
    p.smi_type(str(st["device"]))  # a device of the premises
    p.smi[str(st["device"]).upper()] = st["status"]
    devices = p.smi_devices()
    if not devices:
        run.log("  DCC inventory: every device unknown; nothing to send")
        return
    run.log(f"  DCC inventory for {p.name}: {run.bench.duis(run.bench.dcc.inventory(devices, at=duis_now()))}")


def _check_smi_alert(where: str, st: dict[str, Any]) -> None:
    from hil.dcc import ALERTS

    _one_of(where, "kind", st.get("kind"), tuple(ALERTS))


@step("smi_alert", ("device", "kind"), ("premises",), check=_check_smi_alert)
def _smi_alert(run: Run, st: dict[str, Any]) -> None:
    """A DCC alert (DeviceStatusChangeEvent) about the device, published by the DCC adaptor."""
    from hil.dcc import ALERTS, duis_now

    p = _smi_premises(run, st)
    eui = str(st["device"]).upper()
    _, mpxn = p.smi_type(eui)
    change, status = ALERTS[st["kind"]]
    msg = run.bench.dcc.alert(eui, change, mpxn, at=duis_now())
    if status is not None:
        p.smi[eui] = status
    run.log(f"  DCC alert {change} for {eui}: {run.bench.duis(msg)}")
