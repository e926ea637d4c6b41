"""`companion` command line. Sub-commands grow with the bridge (docs/cli.md)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from . import __version__
from .errors import WireError
from .wire import MAX_MESSAGE, verify_event


def _json_default(o: object) -> object:
    if isinstance(o, bytes):
        return o.hex()
    raise TypeError(type(o).__name__)


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        key = bytes.fromhex(args.key)
    except ValueError:
        print("companion verify: --key must be hex (65-byte SEC1 public key)", file=sys.stderr)
        return 2
    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    if args.hex:
        try:
            data = bytes.fromhex(data.decode("ascii").strip())
        except ValueError:
            print("companion verify: input is not hex", file=sys.stderr)
            return 2
    try:
        verified = verify_event(data, key, max_size=args.max_size)
    except WireError as exc:
        print(json.dumps({"ok": False, "reason": exc.reason, "error": str(exc)}))
        return 1
    except ValueError as exc:  # a malformed key
        print(f"companion verify: {exc}", file=sys.stderr)
        return 2
    out = {"ok": True, "kid": verified.sign1.kid.hex(), "event": asdict(verified.event)}
    print(json.dumps(out, default=_json_default, indent=2 if args.pretty else None))
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="companion", description="Back-office bridge for handheld events.")
    ap.add_argument("--version", action="version", version=f"companion {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="decode and verify one event message (COSE_Sign1)")
    v.add_argument("file", help="message file, or - for standard input")
    v.add_argument("--key", required=True, help="device public key, hex (65-byte SEC1)")
    v.add_argument("--hex", action="store_true", help="the input is hex text, not raw bytes")
    v.add_argument("--max-size", type=int, default=MAX_MESSAGE, help="bytes (default %(default)s)")
    v.add_argument("--pretty", action="store_true", help="indent the JSON output")
    v.set_defaults(func=cmd_verify)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
