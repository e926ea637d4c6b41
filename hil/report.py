"""What a scenario run reports: its checks and result, the result table, the markdown report
with each premises' flag timeline, and JUnit XML (one testcase per scenario)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

if TYPE_CHECKING:
    from .bench import Bench


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
    started: str = ""  # ISO 8601, UTC
    seed: int = 0
    workdir: Path | None = None  # each board's console log is kept here

    def failure(self) -> str:
        """Why it failed, in one paragraph: the error, or each failed check."""
        return self.error or "; ".join(f"{c.what}: {c.detail}" for c in self.checks if not c.ok)


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def write_junit(results: list[Result], path: Path, wall: float | None = None) -> None:
    """JUnit XML: the suite's time is the run's wall time (scenarios run in parallel), with a
    timestamp; each scenario is a testcase with its own timestamp, and its steps as system-out."""
    failures = sum(not r.ok for r in results)
    wall = sum(r.seconds for r in results) if wall is None else wall
    out = [f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="hil" tests="{len(results)}" '
           f'failures="{failures}" time="{wall:.1f}" timestamp="{now_iso()}">']
    for r in results:
        out.append(f'  <testcase classname="hil.scenarios" name={quoteattr(r.name)} time="{r.seconds:.1f}"'
                   + (f' timestamp="{r.started}"' if r.started else "") + ">")
        if not r.ok:
            out.append(f"    <failure message={quoteattr(r.failure())}>{escape(chr(10).join(r.timeline))}</failure>")
        out.append(f"    <system-out>{escape(chr(10).join(r.timeline))}</system-out>")
        out.append("  </testcase>")
    out.append("</testsuite>\n")
    path.write_text("\n".join(out))


def result_table(results: list[Result]) -> str:
    rows = [("scenario", "result", "expected", "derived")]
    for r in results:
        flag_checks = [c for c in r.checks if c.what.startswith("flag ")]
        if not flag_checks:
            rows.append((r.name, "PASS" if r.ok else "FAIL", r.error or "", ""))
        for i, c in enumerate(flag_checks):
            want, _, got = c.detail.partition(", got ")
            rows.append((r.name if i == 0 else "", ("PASS" if r.ok else "FAIL") if i == 0 else "",
                         f"{c.what[5:]} {want[5:]}", got))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(results: list[Result], bench: Bench, wall: float) -> str:
    out = ["# HIL run report", "",
           f"{sum(r.ok for r in results)}/{len(results)} scenarios passed in {wall:.0f} s "
           f"({bench.kind} broker).", "", "```", result_table(results), "```", ""]
    for r in results:
        out += [f"## {r.name} — {'PASS' if r.ok else 'FAIL'} ({r.seconds:.1f} s, seed {r.seed})", ""]
        if r.error:
            out += [f"**Error:** {r.error}", ""]
        for c in r.checks:
            out.append(f"- {'✔' if c.ok else '✘'} {c.what}: {c.detail}")
        by_premises: dict[str, list[str]] = {}
        for u in bench.updates:
            if u.mpxn in r.premises_of:
                by_premises.setdefault(r.premises_of[u.mpxn], []).append(
                    f"  - {u.at:6.1f} s  {u.mpxn}: **{u.flag or 'none'}** since {u.since} (v{u.version}) — {u.reason}")
        for prem, lines in sorted(by_premises.items()):
            out += ["", f"Flag timeline at premises `{prem}`:", *lines]
        out += ["", "<details><summary>steps</summary>", "", "```", *r.timeline, "```", "</details>", ""]
    return "\n".join(out) + "\n"
