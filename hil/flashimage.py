"""A bench handheld's flash: provisioned as production provisions one (companion.provision)."""

from __future__ import annotations

from pathlib import Path

from companion.service.pki import Pki
from companion.service.provision import provision as _provision


def provision(flash: Path, device_id: str, broker: str, uart: str | None = None, prefix: str = "flagwise",
              extra: dict | None = None, pki: Pki | None = None) -> str:
    """Write config, key and TLS files; return the public key (hex, 65-byte SEC1)."""
    return _provision(flash, device_id, broker, pki=pki, uart=uart, prefix=prefix, extra=extra)
