"""`hil` command line: the bench. Sub-commands grow with the bench (docs/cli.md)."""

from __future__ import annotations

import argparse
import sys

from . import micropython, selfcheck


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hil", description="Hardware-in-the-loop bench on emulated boards.")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("selfcheck", help="firmware signs events under micropython; companion verifies")
    s.add_argument("-n", type=int, default=5, help="events to sign (default %(default)s)")
    s.add_argument("--heapsize", default="64k", help="micropython heap (default %(default)s)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "selfcheck":
        try:
            return 0 if selfcheck.run(args.n, args.heapsize) else 1
        except micropython.MicroPythonError as exc:
            print(f"selfcheck: the firmware failed under micropython: {exc}", file=sys.stderr)
            return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
