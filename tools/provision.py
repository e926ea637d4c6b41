"""Provision a handheld's flash: config.json and a fresh device key; prints the public key
and the command that registers it with the bridge.

Usage: python tools/provision.py FLASH_DIR --device-id EUI64 [--broker HOST:PORT] [--uart PATH]
                                  [--prefix P] [--set KEY=JSON ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hil.flashimage import provision  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("flash", type=Path)
    ap.add_argument("--device-id", required=True)
    ap.add_argument("--broker", default="127.0.0.1:1883")
    ap.add_argument("--uart")
    ap.add_argument("--prefix", default="flagwise")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    args = ap.parse_args(argv)
    extra = {}
    for item in args.set:
        k, _, v = item.partition("=")
        extra[k] = json.loads(v)
    pub = provision(args.flash, args.device_id, args.broker, args.uart, args.prefix, extra)
    print(f"public key: {pub}")
    print(f"register it: companion keys add {args.device_id} {pub}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
