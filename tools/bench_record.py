"""`make bench`: every benchmark's figures, with the floors beside them, in one JSON file, so that
runs can be compared. Each benchmark runs in turn, on a quiet machine,
as a process of its own; a benchmark that fails is recorded with its error and the others go on.

Usage: python tools/bench_record.py [--out out/bench.json] [--quick]
  --quick: small sizes (a minute or two in all), for checking the record itself
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def git(*args: str) -> str:
    p = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return p.stdout.strip()


def run(name: str, argv: list[str], json_out: Path | None, timeout: float) -> dict[str, object]:
    """One benchmark: its figures (its --json file) or its printed lines, its wall time, its exit."""
    t0 = time.monotonic()
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    try:
        p = subprocess.run([PY, str(ROOT / "tools" / argv[0]), *argv[1:]], cwd=ROOT, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer in {timeout:.0f} s"}
    out: dict[str, object] = {"seconds": round(time.monotonic() - t0, 1)}
    if p.returncode != 0:
        out["error"] = (p.stderr or p.stdout)[-1500:]
    if json_out is not None and json_out.exists():
        out["figures"] = json.loads(json_out.read_text())
    out["printed"] = [ln for ln in p.stdout.splitlines() if ln.strip()][-40:]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "out" / "bench.json"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    quick = args.quick
    record: dict[str, object] = {
        "commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "quick": quick}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        plan: list[tuple[str, list[str], Path | None, float]] = [
            ("reconcile", ["bench_reconcile.py", "--sizes", "1000000" if quick else "10000000,30000000,57000000",
                           "--pandas-max", "1000000" if quick else "10000000", "--json", str(d / "reconcile.json")],
             d / "reconcile.json", 3600),
            ("sign", ["bench_sign.py", "-n", "20" if quick else "200", "--naive", "4" if quick else "20",
                      "--json", str(d / "sign.json")], d / "sign.json", 1800),
            ("agent", ["bench_agent.py", "-n", "1"], None, 1800),
            ("triage", ["bench_triage.py", "--alerts", "100000" if quick else "10000000",
                        "--sites", "10000" if quick else "1000000", "--json", str(d / "triage.json")],
             d / "triage.json", 7200),
            ("devices", ["bench_devices.py", "--sites", "10000" if quick else "1000000", "--seconds",
                         "5" if quick else "30", "--json", str(d / "devices.json")], d / "devices.json", 3600),
            ("ingest", ["bench_ingest.py", "-n", "1000" if quick else "4000", "--workers", "0,1,2",
                        "--json", str(d / "ingest.json")],
             d / "ingest.json", 1800),
            ("bridge", ["bench_scale.py", "-n", "500" if quick else "2000"], None, 3600),
        ]
        for name, cmd, json_out, timeout in plan:
            record[name] = run(name, cmd, json_out, timeout)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    failed = [k for k, v in record.items() if isinstance(v, dict) and "error" in v]
    print(f"bench: the record is {out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
