"""A scenario's `[expect]`: its schema, checked at load, and its checks, run after the steps
against what the bridge derived and sent. Each check polls (`poll_until`) until it holds or
the scenario's `converge` seconds have passed, then reports what it last saw."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .board import scaled
from .report import Check
from .steps import ScenarioError, check_mpxn, poll_until

if TYPE_CHECKING:
    from .scenario import Run

EXPECT_KEYS = {"flags", "rejected", "dtc", "no_event_lost", "converge", "settle", "undelivered_ok", "conflicts",
               "requests"}
FLAG_KEYS = {"flag", "since", "override", "history", "reason", "devices", "dtc"}
FLAGS = ("A", "I", "N")


def unknown(where: str, got: object, allowed: set[str]) -> None:
    if not isinstance(got, dict):
        raise ScenarioError(f"{where}: a table required")
    extra = sorted(set(got) - allowed)
    if extra:
        raise ScenarioError(f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(where: str, exp: object, handhelds: dict[str, Any]) -> None:
    unknown(where, exp, EXPECT_KEYS)
    assert isinstance(exp, dict)
    for key in ("converge", "settle"):
        if key in exp and (isinstance(exp[key], bool) or not isinstance(exp[key], (int, float))
                           or not 0 <= exp[key] <= 3600):
            raise ScenarioError(f"{where}: {key} must be 0 to 3600 seconds")
    for key in ("no_event_lost", "undelivered_ok"):
        if key in exp and not isinstance(exp[key], bool):
            raise ScenarioError(f"{where}: {key} must be true or false")
    flags = exp.get("flags", {})
    unknown(f"{where}.flags", flags, set(flags) if isinstance(flags, dict) else set())
    for mpxn, want in flags.items():
        here = f"{where}.flags.{mpxn}"
        check_mpxn(f"{where}.flags", mpxn)
        unknown(here, want, FLAG_KEYS)
        if want.get("flag", "none") not in (*FLAGS, "none"):
            raise ScenarioError(f"{here}: flag must be A, I, N or none")
        if "since" in want:
            try:
                day(str(want["since"]))
            except ValueError:
                raise ScenarioError(f"{here}: since must be YYYY-MM-DD or day+N / day-N") from None
        if "override" in want and not isinstance(want["override"], bool):
            raise ScenarioError(f"{here}: override must be true or false")
        if "history" in want and (not isinstance(want["history"], list)
                                  or any(h not in FLAGS for h in want["history"])):
            raise ScenarioError(f"{here}: history must be a list of A, I and N, oldest first")
        if "reason" in want and not isinstance(want["reason"], str):
            raise ScenarioError(f"{here}: reason must be text (found in the flag's reason)")
        if "devices" in want and not (isinstance(want["devices"], list) and all(
                isinstance(d, str) and d.count(":") == 1 for d in want["devices"])):
            raise ScenarioError(f"{here}: devices must be a list of TYPE:STATUS")
        if "dtc" in want and not _whole(want["dtc"]):
            raise ScenarioError(f"{here}: dtc must be a whole number of DTC lines")
    rejected = exp.get("rejected", {})
    unknown(f"{where}.rejected", rejected, set(handhelds))
    for handheld, reasons in rejected.items():
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise ScenarioError(f"{where}.rejected.{handheld}: a list of rejection reasons")
    for key, what in (("conflicts", "CLASS:DEVICE"), ("requests", "SERVICE:DEVICE")):
        specs = exp.get(key, [])
        if not isinstance(specs, list) or not all(isinstance(x, str) and x.count(":") == 1 for x in specs):
            raise ScenarioError(f"{where}.{key}: a list of {what}")
    for spec in exp.get("dtc", []):
        parts = str(spec).split(":")
        if len(parts) != 3 or parts[2] not in FLAGS:
            raise ScenarioError(f"{where}.dtc: {str(spec)[:40]!r} must be FLOW:MPXN:FLAG")
        check_mpxn(f"{where}.dtc", parts[1])


def day(spec: str, now: datetime | None = None) -> str:
    """'day+N' (or 'day-N') -> the UTC date N days from today, YYYY-MM-DD; a date as it is."""
    now = now or datetime.now(timezone.utc)
    if not spec.startswith("day"):
        datetime.strptime(spec, "%Y-%m-%d")
        return spec
    n = int(spec[3:] or 0)
    return (now + timedelta(days=n)).strftime("%Y-%m-%d")


def settle(run: Run) -> None:
    """Let every board deliver its backlog before checking."""
    exp = run.sc.expect
    if exp.get("undelivered_ok"):
        return
    poll_until(lambda: (all(not b.pending() for b in run.boards.values()), None), scaled(float(exp.get("settle", 60))))


def _flag_extras(run: Run, mpxn: str, want: dict[str, Any], site: dict[str, Any] | None) -> list[str]:
    """What differs in a flag's history (the values published, oldest first), reason, devices
    (TYPE:STATUS of the latest survey) and DTC lines; [] when all agree."""
    wrong = []
    site = site or {}
    if "history" in want:
        got = run.bench.history(mpxn)
        if got != want["history"]:
            wrong.append(f"history {got}, want {want['history']}")
    if "reason" in want and want["reason"] not in (site.get("reason") or ""):
        wrong.append(f"reason {(site.get('reason') or '')[:80]!r} lacks {want['reason']!r}")
    if "devices" in want:
        got_d = sorted(f"{d['type']}:{d.get('status') or '-'}" for d in site.get("devices", []))
        if got_d != sorted(want["devices"]):
            wrong.append(f"devices {got_d}, want {sorted(want['devices'])}")
    if "dtc" in want:
        flow = "D0350" if len(mpxn) == 13 else "GAS"
        n = sum(1 for g in run.bench.dtc_groups(flow) if g[1] == mpxn)
        if n != want["dtc"]:
            wrong.append(f"{n} DTC lines, want {want['dtc']}")
    return wrong


def _flag(run: Run, mpxn: str, want: dict[str, Any], deadline: float) -> Check:
    want_flag = None if want.get("flag") in (None, "none") else want["flag"]
    want_since = day(want["since"]) if "since" in want else None

    def probe() -> tuple[bool, tuple[Any, ...]]:
        site = run.bench.site(mpxn)
        got_flag = site.get("flag") if site else None
        got_since = site.get("since") if site else None
        got_override = bool(site.get("override")) if site else False
        extra = _flag_extras(run, mpxn, want, site)
        ok = (got_flag == want_flag and (want_since is None or got_since == want_since)
              and ("override" not in want or got_override == bool(want["override"])) and not extra)
        return ok, (got_flag, got_since, got_override, extra)

    ok, (got_flag, got_since, got_override, extra) = poll_until(probe, deadline - time.monotonic())
    return Check(f"flag {mpxn}", ok, f"want {want_flag or 'none'}"
                 + (f" since {want_since}" if want_since else "")
                 + (f", override {bool(want['override'])}" if "override" in want else "")
                 + f", got {got_flag or 'none'}" + (f" since {got_since}" if got_since else "")
                 + (f", override {got_override}" if "override" in want else "")
                 + ("; " + "; ".join(extra) if extra else ""))


def verify(run: Run) -> list[Check]:
    exp = run.sc.expect
    deadline = time.monotonic() + scaled(float(exp.get("converge", 20)))
    checks = [_flag(run, mpxn, want, deadline) for mpxn, want in exp.get("flags", {}).items()]
    for handheld, reasons in exp.get("rejected", {}).items():
        device = run.sc.handhelds[handheld].device_id
        # The set of reasons: a handheld re-sends what is not acknowledged.
        def reasons_seen(d: str = device, r: list[str] = reasons) -> tuple[bool, list[str]]:
            got = sorted(set(run.bench.rejections(d)))
            return got == sorted(set(r)), got

        ok, got = poll_until(reasons_seen, deadline - time.monotonic())
        checks.append(Check(f"rejected {handheld}", ok, f"want {sorted(reasons)}, got {got}"))
    for spec in exp.get("dtc", []):
        flow, mpxn, flag = spec.split(":")
        def in_dtc(f: str = flow, m: str = mpxn, v: str = flag) -> tuple[bool, None]:
            return any(g[1] == m and g[2] == v for g in run.bench.dtc_groups(f)), None

        ok, _ = poll_until(in_dtc, deadline - time.monotonic(), 0.3)
        checks.append(Check(f"dtc {spec}", ok, "in a DTC file" if ok else "not found in any DTC file"))
    checks += _dcc_checks(run, exp, deadline)
    if exp.get("no_event_lost", True):
        told = {i for ids in run.saved.values() for i in ids}
        _, missing = poll_until(lambda: (not (m := told - run.bench.stored_ids(told)), m),
                                deadline - time.monotonic(), 0.3)
        checks.append(Check("no event lost", not missing, f"{len(told)} saved, {len(told) - len(missing)} stored"
                            + (f"; missing {sorted(missing)[:3]}" if missing else "")))
    return checks


def _dcc_checks(run: Run, exp: dict[str, Any], deadline: float) -> list[Check]:
    """The conflicts at this scenario's meter points (CLASS:DEVICE, the exact set), and the
    requests `companion conflicts --requests` drafts for them (SERVICE:DEVICE)."""
    out: list[Check] = []
    mine = set(run.sc.mpxn_premises())
    if "conflicts" in exp:
        want = sorted(set(exp["conflicts"]))

        def seen() -> tuple[bool, list[str]]:
            got = sorted({f"{c['class']}:{c['device_id']}" for c in run.bench.conflicts() if c["mpxn"] in mine})
            return got == want, got

        ok, got = poll_until(seen, deadline - time.monotonic(), 0.5)
        out.append(Check("conflicts", ok, f"want {want}, got {got}"))
    if "requests" in exp:
        want = sorted(set(exp["requests"]))
        index = run.bench.draft_requests(run.dir / "requests")
        got = sorted({f"{r['service']}:{r['device_id']}" for r in index if r["mpxn"] in mine})
        out.append(Check("requests", got == want, f"want {want}, got {got} (in {run.dir / 'requests'})"))
    return out
