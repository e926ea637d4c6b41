"""A handheld's flash as provisioning leaves it (docs/agent.md, docs/security.md):

    config.json   broker, prefix, serial port, TLS files, the bridge keys that sign acks
    key.bin       the device's P-256 private key (32 bytes), made here or kept if present
    tls.key       the same key in DER (SEC1), for the TLS client certificate
    cert.der      the handheld's certificate, issued by the PKI for its own key (CN = device id)
    ca.der        the CA that signed the broker's certificate

The device key never leaves the flash folder; only its public key goes to the PKI and to
the bridge's key registry (`companion keys add`).
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from companion.errors import CompanionError
from companion.ids import eui64_bytes, eui64_text
from companion.service.pki import Pki
from companion.wire.signing import public_point


class ProvisionError(CompanionError):
    reason = "provision"


def parse_broker(value: str) -> tuple[str, int]:
    """HOST:PORT, or mqtts://HOST:PORT; a clear error for anything else."""
    text = value
    if "://" in value:
        scheme, _, text = value.partition("://")
        if scheme != "mqtts":
            raise ProvisionError(f"broker must be mqtts://HOST:PORT or HOST:PORT, got {value[:60]!r}")
    host, sep, port = text.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProvisionError(f"broker must be HOST:PORT (e.g. 127.0.0.1:8883), got {value[:60]!r}")
    return host, int(port)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def device_key(flash: Path) -> ec.EllipticCurvePrivateKey:
    key_path = flash / "key.bin"
    if key_path.exists():
        raw = key_path.read_bytes()
        if len(raw) != 32:
            raise ProvisionError(f"{key_path} is damaged ({len(raw)} bytes)")
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    _write(key_path, key.private_numbers().private_value.to_bytes(32, "big"), private=True)
    return key


def provision(flash: Path, device_id: str, broker: str, *, pki: Pki | None, uart: str | None = None,
              prefix: str = "flagwise", server_name: str | None = None, insecure: bool = False,
              extra: dict[str, Any] | None = None) -> str:
    """Write the handheld's flash; return its public key (hex, 65-byte SEC1)."""
    try:
        device_id = eui64_text(eui64_bytes(device_id))
    except ValueError:
        raise ProvisionError("device id must be an EUI-64 (XX-XX-XX-XX-XX-XX-XX-XX)") from None
    host, port = parse_broker(broker)
    flash.mkdir(parents=True, exist_ok=True)
    key = device_key(flash)
    point = public_point(key)
    cfg: dict[str, Any] = {"device_id": device_id, "broker_host": host, "broker_port": port, "prefix": prefix,
                           "uart": uart}
    if pki is None:
        raise ProvisionError("a handheld needs its identity and the bridge keys: give --pki")
    if insecure:  # plain TCP: the identity by password; the bridge keys still check the acks
        keys = [k["public_key"] for k in pki.bridge_public_keys()]
        if not keys:
            raise ProvisionError(f"no bridge signing key in {pki.root}: start the bridge once, or "
                                 "`companion pki issue bridge NAME`")
        pki.issue_handheld(device_id, point)
        cfg.update(tls=False, insecure=True, password=pki.secret(device_id), bridge_keys=keys)
    else:
        keys = [k["public_key"] for k in pki.bridge_public_keys()]
        if not keys:
            raise ProvisionError(f"no bridge signing key in {pki.root}: start the bridge once, or "
                                 "`companion pki issue bridge NAME`")
        cert_path = pki.issue_handheld(device_id, point)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca = x509.load_pem_x509_certificate(pki.ca_crt.read_bytes())
        _write(flash / "cert.der", cert.public_bytes(serialization.Encoding.DER))
        _write(flash / "ca.der", ca.public_bytes(serialization.Encoding.DER))
        _write(flash / "tls.key", key.private_bytes(serialization.Encoding.DER,
                                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                                    serialization.NoEncryption()), private=True)
        if server_name is None:
            try:  # the broker certificate names localhost for loopback addresses
                server_name = "localhost" if ipaddress.ip_address(host).is_loopback else host
            except ValueError:
                server_name = host
        cfg.update(tls=True, tls_ca="ca.der", tls_cert="cert.der", tls_key="tls.key", tls_server_name=server_name,
                   bridge_keys=keys)
    cfg.update(extra or {})
    _write(flash / "config.json", (json.dumps(cfg, indent=1) + "\n").encode())
    return point.hex()
