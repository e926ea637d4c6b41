"""Provision a handheld's flash: a fresh device key, its certificate from the PKI, the CA,
the bridge keys that sign acks, and config.json; prints the public key and the command
that registers it with the bridge (docs/agent.md, docs/security.md).

Usage: python tools/provision.py FLASH_DIR --device-id EUI64 --pki PKI_DIR
           [--broker HOST:PORT] [--server-name NAME] [--uart PATH] [--prefix P] [--set KEY=JSON ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from companion.errors import CompanionError  # noqa: E402
from companion.service.pki import Pki  # noqa: E402
from companion.service.provision import provision  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("flash", type=Path)
    ap.add_argument("--device-id", required=True)
    ap.add_argument("--pki", type=Path, help="the bridge's PKI folder (companion pki init)")
    ap.add_argument("--broker", default="127.0.0.1:8883", help="HOST:PORT of the broker (default %(default)s)")
    ap.add_argument("--server-name",
                    help="name in the broker's certificate (default: the host; localhost for loopback)")
    ap.add_argument("--uart")
    ap.add_argument("--prefix", default="flagwise")
    ap.add_argument("--insecure", action="store_true",
                    help="INSECURE: plain TCP, the handheld's password instead of its certificate (trials only)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    args = ap.parse_args(argv)
    extra = {}
    for item in args.set:
        k, sep, v = item.partition("=")
        try:
            if not sep:
                raise ValueError
            extra[k] = json.loads(v)
        except ValueError:
            print(f"provision: --set wants KEY=JSON, got {item[:60]!r}", file=sys.stderr)
            return 2
    pki = None
    if args.pki is not None:
        pki = Pki(args.pki, args.prefix)
        if not pki.exists:
            print(f"provision: no CA in {args.pki}: run `companion pki init --pki {args.pki}` "
                  "(or start the bridge once)", file=sys.stderr)
            return 2
    try:
        pub = provision(args.flash, args.device_id, args.broker, pki=pki, uart=args.uart, prefix=args.prefix,
                        server_name=args.server_name, insecure=args.insecure, extra=extra)
    except CompanionError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 2
    print(f"public key: {pub}")
    print(f"register it: companion keys add {args.device_id} {pub}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
