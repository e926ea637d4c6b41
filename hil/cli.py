"""`hil` command line: the bench. Sub-commands grow with the bench (docs/cli.md)."""

from __future__ import annotations

import argparse
import os
import sys

from . import micropython, selfcheck


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hil", description="Hardware-in-the-loop bench on emulated boards.")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("selfcheck", help="firmware signs events under micropython; companion verifies")
    s.add_argument("-n", type=int, default=5, help="events to sign (default %(default)s)")
    s.add_argument("--heapsize", default="64k", help="micropython heap (default %(default)s)")
    r = sub.add_parser("run", help="run scenarios (default: the whole library) on emulated boards")
    r.add_argument("scenarios", nargs="*", help="scenario files or library names")
    r.add_argument("--broker", choices=["embedded", "mosquitto"], default="embedded")
    r.add_argument("--out", default="out/hil", help="output folder (report, JUnit XML, DTC files)")
    r.add_argument("--jobs", type=int, default=8, help="scenarios at once (default %(default)s)")
    r.add_argument("--timeout-multiplier", type=float, metavar="X",
                   help="make every wait X times longer, for a loaded machine (HIL_TIMEOUT_MULTIPLIER)")
    r.add_argument("--list", action="store_true", help="list the scenario library")
    pr = sub.add_parser("premises", help="serve an emulated premises on a pseudo-terminal")
    pr.add_argument("--config", help="premises TOML file, or a library name (see --list)")
    pr.add_argument("--list", action="store_true", help="list the premises library")
    pr.add_argument("--seed", type=int, help="seed for the line-fault random generator")
    pr.add_argument("--baud", type=int, help="override the premises' baud rate")
    return ap


CONSOLE_HELP = """commands: wan up [SIGNAL] | wan down | dcc true|false | status EUI STATUS | remove EUI | forget EUI |
  unplug | plug | hang | unhang | fault NAME VALUE (corrupt_rate, drop_byte_rate,
  drop_frame_rate, delay_ms, hung, unplugged) | show | quit"""


def cmd_premises(args: argparse.Namespace) -> int:
    from . import hub, premises

    if args.list:
        for name in premises.library():
            print(f"{name:22} {premises.load(name).notes}")
        return 0
    if not args.config:
        print("hil premises: give --config FILE (or --list)", file=sys.stderr)
        return 2
    try:
        p = premises.load(args.config)
    except premises.PremisesError as exc:
        print(f"hil premises: {exc}", file=sys.stderr)
        return 2
    with hub.HubEmulator(p, seed=args.seed, baud=args.baud) as h:
        print(f"pty: {h.path}", flush=True)
        print(f"premises {p.name} at {args.baud or p.baud} baud; {CONSOLE_HELP}", flush=True)
        for line in sys.stdin:
            if line.strip() in ("quit", "exit"):
                return 0
            reply = h.command(line)
            if reply:
                print(reply, flush=True)
        # No console (stdin closed or not a terminal, e.g. in the background): keep serving
        # until told to stop.
        import signal
        import threading

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1):
                pass
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "run":
        from pathlib import Path

        from . import runner, scenario

        if args.list:
            names = scenario.library()
            width = max(len(n) for n in names) + 2
            for name in names:
                print(f"{name:{width}}{scenario.load(name).description}")
            return 0
        if args.timeout_multiplier is not None:
            if not 0 < args.timeout_multiplier <= 100:
                print("hil run: --timeout-multiplier must be more than 0 and at most 100", file=sys.stderr)
                return 2
            os.environ["HIL_TIMEOUT_MULTIPLIER"] = str(args.timeout_multiplier)
        from .board import check_timeout_multiplier

        try:
            check_timeout_multiplier()
        except ValueError as exc:
            print(f"hil run: {exc}", file=sys.stderr)
            return 2
        try:
            micropython.build_firmware()
            return runner.run(args.scenarios, Path(args.out), args.broker, args.jobs)
        except scenario.ScenarioError as exc:
            print(f"hil run: {exc}", file=sys.stderr)
            return 2
    if args.command == "premises":
        return cmd_premises(args)
    if args.command == "selfcheck":
        try:
            micropython.build_firmware()
            return 0 if selfcheck.run(args.n, args.heapsize) else 1
        except micropython.MicroPythonError as exc:
            print(f"selfcheck: the firmware failed under micropython: {exc}", file=sys.stderr)
            return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
