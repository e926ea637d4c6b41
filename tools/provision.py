"""Provision a handheld's flash: config.json and a fresh device key; prints the public key
and the command that registers it with the bridge.

Usage: python tools/provision.py FLASH_DIR --device-id EUI64 [--broker HOST:PORT] [--uart PATH]
                                  [--prefix P] [--set KEY=JSON ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def provision(flash: Path, device_id: str, broker: str = "127.0.0.1:1883", uart: str | None = None,
              prefix: str = "flagwise", extra: dict | None = None) -> str:
    """Write config and key; return the public key (hex, 65-byte SEC1)."""
    flash.mkdir(parents=True, exist_ok=True)
    host, _, port = broker.rpartition(":")
    cfg = {"device_id": device_id, "broker_host": host, "broker_port": int(port), "prefix": prefix,
           "uart": uart}
    cfg.update(extra or {})
    (flash / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
    key_path = flash / "key.bin"
    if key_path.exists():
        d = int.from_bytes(key_path.read_bytes(), "big")
        key = ec.derive_private_key(d, ec.SECP256R1())
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        tmp = key_path.with_suffix(".tmp")
        tmp.write_bytes(key.private_numbers().private_value.to_bytes(32, "big"))
        os.chmod(tmp, 0o600)
        tmp.replace(key_path)
    return key.public_key().public_bytes(serialization.Encoding.X962,
                                         serialization.PublicFormat.UncompressedPoint).hex()


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
