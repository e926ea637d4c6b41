"""A handheld's flash as the provisioning step leaves it: config.json and the device key."""

from __future__ import annotations

import json
import os
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
