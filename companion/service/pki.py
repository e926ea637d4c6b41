"""Identities at the broker: a small certificate authority on disk (docs/security.md).

Every MQTT client has an identity, its certificate's common name, which the broker uses
as its user name and client id (mosquitto `use_identity_as_username`,
`use_username_as_clientid`), so no one can take another's client id. Roles:

| role     | common name                 | may publish                      | may read                     |
|----------|-----------------------------|----------------------------------|------------------------------|
| handheld | its device id (EUI-64)      | <prefix>/events/<own id>         | own acks/, rejected/; keys   |
| bridge   | bridge name                 | acks/+, rejected/+, flags/+, keys| events/+                     |
| consumer | consumer name               | -                                | flags/#, keys                |
| auditor  | auditor name (bench, ops)   | -                                | everything under the prefix  |
| dcc-adaptor | adaptor name (the supplier's DUIS gateway) | <prefix>/duis/in (signed DUIS XML) | -      |

Layout of the folder (`pki` config key; `companion pki init` makes it):

    ca.crt ca.key crl.pem          the CA, and its revocation list (the broker's `crlfile`)
    broker.crt broker.key          the broker's server certificate
    acl                            mosquitto ACL file, written from the inventory below
    issued.json                    every identity issued: role, serial, revoked
    clients/<name>.crt|.key        bridge, consumer and auditor identities
    handhelds/<device>.crt         handheld certificates (the key stays on the handheld)
    signing/<name>.key             each bridge's COSE signing key (acks, rejections, flags)
    secrets/<name>                 an identity's password, for a plain-TCP broker (--insecure)

A handheld's certificate is issued for the handheld's own P-256 key (the one that signs
its events), so its TLS identity and its COSE `kid` are the same device.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from companion.errors import CompanionError
from companion.wire.signing import key_id, public_point
from companion.ids import eui64_bytes, eui64_text

ROLES = ("handheld", "bridge", "consumer", "auditor", "dcc-adaptor")
_NAME = re.compile(r"^[a-z][a-z0-9._-]{0,47}$")
CA_DAYS = 3650
CERT_DAYS = 825
_PEM = serialization.Encoding.PEM
_DER = serialization.Encoding.DER
_NO_PASS = serialization.NoEncryption()


class PkiError(CompanionError):
    reason = "pki"


@dataclass(frozen=True)
class Identity:
    name: str
    role: str
    serial: int
    revoked: bool
    earlier: tuple[int, ...] = ()  # serials of its earlier certificates, each revoked on re-issue


ROLLOVER_DAYS = 30  # how long a rolled-over bridge signing key stays published, by default


def check_name(role: str, name: str) -> str:
    """A handheld is named by its EUI-64; other roles by a lower-case name that can never
    be mistaken for a device id (so ACL entries and topics never collide)."""
    if role not in ROLES:
        raise PkiError(f"role must be one of {', '.join(ROLES)}")
    if role == "handheld":
        try:
            return eui64_text(eui64_bytes(name))
        except ValueError:
            raise PkiError("a handheld is named by its device id, an EUI-64 (XX-XX-XX-XX-XX-XX-XX-XX)") from None
    if not _NAME.match(name):
        raise PkiError(f"a {role} name is 1-48 characters of a-z 0-9 . _ -, starting with a letter")
    return name


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


_THREAD_LOCK = threading.RLock()
_HELD = threading.local()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class Pki:
    def __init__(self, root: str | Path, prefix: str = "flagwise"):
        self.root = Path(root)
        self.prefix = prefix

    # --- paths ------------------------------------------------------------------------
    ca_crt = property(lambda self: self.root / "ca.crt")
    ca_key = property(lambda self: self.root / "ca.key")
    crl = property(lambda self: self.root / "crl.pem")
    broker_crt = property(lambda self: self.root / "broker.crt")
    broker_key = property(lambda self: self.root / "broker.key")
    acl = property(lambda self: self.root / "acl")
    inventory = property(lambda self: self.root / "issued.json")

    def client_files(self, name: str) -> tuple[Path, Path]:
        return self.root / "clients" / f"{name}.crt", self.root / "clients" / f"{name}.key"

    def handheld_crt(self, device_id: str) -> Path:
        return self.root / "handhelds" / f"{device_id}.crt"

    def secret(self, name: str) -> str:
        """The identity's password, for a plain-TCP broker where certificates cannot serve
        (`--insecure`): made on first use, kept in secrets/<name> (0600)."""
        import secrets

        path = self.root / "secrets" / name
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            with self._locked():
                if not path.exists():
                    _write(path, secrets.token_urlsafe(24).encode(), private=True)
            return path.read_text().strip()

    def signing_key_path(self, name: str) -> Path:
        return self.root / "signing" / f"{name}.key"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time, across threads and processes (the bench issues in parallel)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _THREAD_LOCK:
            if getattr(_HELD, "depth", 0):  # re-entered in this thread: already held
                yield
                return
            with open(self.root / ".lock", "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                _HELD.depth = 1
                try:
                    yield
                finally:
                    _HELD.depth = 0
                    fcntl.flock(f, fcntl.LOCK_UN)

    @property
    def exists(self) -> bool:
        return bool(self.ca_crt.exists() and self.ca_key.exists())

    # --- the CA -----------------------------------------------------------------------
    def init(self, broker_names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> None:
        """Make the CA, an empty CRL, the broker's certificate and the ACL (idempotent: an
        existing CA is kept)."""
        with self._locked():
            self._init_locked(broker_names)

    def _init_locked(self, broker_names: tuple[str, ...]) -> None:
        if not self.exists:
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flagwise CA"),
                              x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flagwise")])
            now = _now()
            cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now - datetime.timedelta(hours=1))
                    .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                   critical=True)
                    .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                    .sign(key, hashes.SHA256()))
            _write(self.ca_key, key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, _NO_PASS), private=True)
            _write(self.ca_crt, cert.public_bytes(_PEM))
            self._save_inventory({})
        if not self.broker_crt.exists():
            self.issue_broker(broker_names)
        self.write_crl()
        self.write_acl()

    def _ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if not self.exists:
            raise PkiError(f"no CA in {self.root}: run `companion pki init --pki {self.root}`")
        cert = x509.load_pem_x509_certificate(self.ca_crt.read_bytes())
        key = serialization.load_pem_private_key(self.ca_key.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key

    def _sign(self, subject: str, public: ec.EllipticCurvePublicKey, server_names: tuple[str, ...] = (),
              client: bool = True) -> x509.Certificate:
        ca, ca_key = self._ca()
        now = _now()
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(ca.subject).public_key(public).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(hours=1))
             .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(True, False, True, False, True, False, False, False, False),
                            critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH] if client
                                                  else [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                            critical=False))
        if server_names:
            alt: list[x509.GeneralName] = []
            for n in server_names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    alt.append(x509.DNSName(n))
            b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        return b.sign(ca_key, hashes.SHA256())

    def issue_broker(self, names: tuple[str, ...]) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._sign(names[0], key.public_key(), server_names=names, client=False)
        _write(self.broker_key, key.private_bytes(_PEM, serialization.PrivateFormat.TraditionalOpenSSL, _NO_PASS),
               private=True)
        _write(self.broker_crt, cert.public_bytes(_PEM))

    # --- identities -------------------------------------------------------------------
    def _load_inventory(self) -> dict[str, dict[str, Any]]:
        try:
            inv: dict[str, dict[str, Any]] = json.loads(self.inventory.read_text())
            return inv
        except FileNotFoundError:
            return {}
        except ValueError:
            raise PkiError(f"{self.inventory} is damaged (not JSON)") from None

    def _save_inventory(self, inv: dict[str, dict[str, Any]]) -> None:
        _write(self.inventory, (json.dumps(inv, indent=1, sort_keys=True) + "\n").encode())

    def identities(self) -> list[Identity]:
        return [Identity(n, v["role"], int(v["serial"]), bool(v.get("revoked")),
                         tuple(int(e["serial"]) for e in v.get("earlier", ())))
                for n, v in sorted(self._load_inventory().items())]

    def _record(self, name: str, role: str, cert: x509.Certificate) -> None:
        with self._locked():
            self._record_locked(name, role, cert)

    def _record_locked(self, name: str, role: str, cert: x509.Certificate) -> None:
        inv = self._load_inventory()
        old = inv.get(name)
        if old and old["role"] != role:
            raise PkiError(f"{name} is already a {old['role']}")
        if old and old.get("revoked"):
            raise PkiError(f"{name} was revoked; an identity is not reused, choose another name")
        # Re-issue (a lost handheld re-provisioned, a bridge's new certificate) revokes the
        # earlier certificate: it shares the name, so it would share the ACL too.
        earlier = list(old.get("earlier", ())) if old else []
        if old:
            earlier.append({"serial": old["serial"], "revoked_at": _now().isoformat()})
        inv[name] = {"role": role, "serial": str(cert.serial_number), "revoked": False,
                     "not_after": cert.not_valid_after_utc.isoformat()}
        if earlier:
            inv[name]["earlier"] = earlier
        self._save_inventory(inv)
        if old:
            self.write_crl()
        self.write_acl()

    def issue(self, role: str, name: str) -> tuple[Path, Path]:
        """A bridge, consumer or auditor identity: a key and a certificate in clients/.
        A bridge also gets its COSE signing key (signing/<name>.key) if it has none."""
        if role == "handheld":
            raise PkiError("a handheld's certificate is issued for its own key: use issue_handheld")
        name = check_name(role, name)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._sign(name, key.public_key())
        crt_path, key_path = self.client_files(name)
        _write(key_path, key.private_bytes(_PEM, serialization.PrivateFormat.TraditionalOpenSSL, _NO_PASS),
               private=True)
        _write(crt_path, cert.public_bytes(_PEM))
        if role == "bridge" and not self.signing_key_path(name).exists():
            with self._locked():
                if not self.signing_key_path(name).exists():
                    self.new_signing_key(name)
        self._record(name, role, cert)
        return crt_path, key_path

    def issue_handheld(self, device_id: str, public_key: bytes) -> Path:
        device_id = check_name("handheld", device_id)
        try:
            pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
        except ValueError:
            raise PkiError("the handheld's public key must be a 65-byte SEC1 P-256 point") from None
        cert = self._sign(device_id, pub)
        path = self.handheld_crt(device_id)
        _write(path, cert.public_bytes(_PEM))
        self._record(device_id, "handheld", cert)
        return path

    def revoke(self, name: str) -> Identity:
        """Revoke an identity: into the CRL (the broker refuses its certificate) and out of
        the ACL. A broker picks both up on SIGHUP (the bridge's own broker: at once)."""
        with self._locked():
            return self._revoke_locked(name)

    def _issued(self, inv: dict[str, dict[str, Any]], name: str) -> str:
        """The inventory's name for `name` (a device id in any spelling), or PkiError."""
        try:
            name = check_name("handheld", name)
        except PkiError:
            pass
        if name not in inv:
            raise PkiError(f"no identity {name} was issued from {self.root}")
        return name

    def _revoke_locked(self, name: str) -> Identity:
        inv = self._load_inventory()
        name = self._issued(inv, name)
        inv[name]["revoked"] = True
        inv[name]["revoked_at"] = _now().isoformat()
        self._save_inventory(inv)
        if inv[name]["role"] == "bridge":
            self._revoke_signing_keys(name)
        self.write_crl()
        self.write_acl()
        v = inv[name]
        return Identity(name, v["role"], int(v["serial"]), True)

    def schedule_revocation(self, name: str, at: float) -> None:
        """Revoke `name` at the broker when `at` (seconds since the epoch) comes: a running
        bridge with this PKI does it (Bridge._revocations_due); until then it connects."""
        with self._locked():
            inv = self._load_inventory()
            name = self._issued(inv, name)
            inv[name]["revoke_at"] = float(at)
            self._save_inventory(inv)

    def due_revocations(self, now: float) -> list[str]:
        """Identities whose scheduled revocation time has come, not yet revoked."""
        return sorted(n for n, v in self._load_inventory().items()
                      if not v.get("revoked") and v.get("revoke_at") is not None and float(v["revoke_at"]) <= now)

    def write_crl(self) -> None:
        ca, ca_key = self._ca()
        now = _now()
        b = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(now)
             .next_update(now + datetime.timedelta(days=CERT_DAYS)))
        revoked: dict[int, str] = {}  # every revoked serial: current ones revoked, earlier ones re-issued
        for name, v in sorted(self._load_inventory().items()):
            for e in v.get("earlier", ()):
                revoked[int(e["serial"])] = e["revoked_at"]
            if v.get("revoked"):
                revoked[int(v["serial"])] = v.get("revoked_at", now.isoformat())
        for serial, at in sorted(revoked.items()):
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(datetime.datetime.fromisoformat(at)).build())
        _write(self.crl, b.sign(ca_key, hashes.SHA256()).public_bytes(_PEM))

    def write_acl(self) -> None:
        _write(self.acl, acl_text(self.identities(), self.prefix).encode())

    # --- bridge signing keys ------------------------------------------------------------
    # signing/<name>.key is each bridge's current key; signing/keys.json is the registry of
    # every key ever used, with its bridge, status (current, rolled, revoked) and, for a
    # rolled-over key, the announced end of its publication. What is published comes from
    # the registry alone (never from file names, which contain dots).
    @property
    def signing_registry(self) -> Path:
        return self.root / "signing" / "keys.json"

    def _load_signing(self) -> list[dict[str, Any]]:
        try:
            keys: list[dict[str, Any]] = json.loads(self.signing_registry.read_text())["keys"]
            return keys
        except FileNotFoundError:
            return self._signing_from_files()
        except (ValueError, KeyError, TypeError):
            raise PkiError(f"{self.signing_registry} is damaged (not the registry's JSON)") from None

    def _signing_from_files(self) -> list[dict[str, Any]]:
        """The registry of a PKI from before it had one: each <name>.key is current, each
        <name>.<kid>.old rolled over, published for ROLLOVER_DAYS from its file's time."""
        out = []
        folder = self.root / "signing"
        revoked = {i.name for i in self.identities() if i.revoked and i.role == "bridge"}
        for p in sorted(folder.glob("*.key")) + sorted(folder.glob("*.old")) if folder.exists() else []:
            key = serialization.load_pem_private_key(p.read_bytes(), None)
            point = public_point(key)  # type: ignore[arg-type]
            bridge = p.name[:-len(".key")] if p.suffix == ".key" else p.name[:-len(".old")].rsplit(".", 1)[0]
            until = None
            if p.suffix == ".old":
                mtime = datetime.datetime.fromtimestamp(p.stat().st_mtime, datetime.timezone.utc)
                until = (mtime + datetime.timedelta(days=ROLLOVER_DAYS)).isoformat()
            status = "revoked" if bridge in revoked else ("current" if p.suffix == ".key" else "rolled")
            out.append({"bridge": bridge, "kid": key_id(point).hex(), "public_key": point.hex(),
                        "status": status, "until": until, "file": p.name})
        return out

    def _save_signing(self, keys: list[dict[str, Any]]) -> None:
        _write(self.signing_registry, (json.dumps({"keys": keys}, indent=1, sort_keys=True) + "\n").encode())

    def _revoke_signing_keys(self, name: str) -> None:
        keys = self._load_signing()
        for k in keys:
            if k["bridge"] == name:
                k["status"], k["until"] = "revoked", None
        self._save_signing(keys)

    def new_signing_key(self, name: str, overlap_days: float = ROLLOVER_DAYS) -> bytes:
        """A new COSE signing key for bridge NAME (key rollover: the old public key stays
        published for overlap_days, its announced end, so that handhelds and consumers can
        take the new one; the old private key is kept for the record)."""
        with self._locked():
            keys = self._load_signing()
            key = ec.generate_private_key(ec.SECP256R1())
            path = self.signing_key_path(name)
            until = (_now() + datetime.timedelta(days=overlap_days)).isoformat()
            if path.exists():
                old_kid = key_id(public_point(self.signing_key(name))).hex()
                old_name = f"{name}.{old_kid}.old"
                os.replace(path, path.with_name(old_name))
                for k in keys:
                    if k["bridge"] == name and k["status"] == "current":
                        k["status"], k["until"], k["file"] = "rolled", until, old_name
            _write(path, key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, _NO_PASS), private=True)
            point = public_point(key)
            keys.append({"bridge": name, "kid": key_id(point).hex(), "public_key": point.hex(),
                         "status": "current", "until": None, "file": path.name})
            self._save_signing(keys)
            return point

    def signing_key(self, name: str) -> ec.EllipticCurvePrivateKey:
        try:
            key = serialization.load_pem_private_key(self.signing_key_path(name).read_bytes(), None)
        except FileNotFoundError:
            raise PkiError(f"bridge {name} has no signing key in {self.root / 'signing'}: "
                           f"run `companion pki issue bridge {name}`") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{self.signing_key_path(name)} is not an EC key")
        return key

    def signing_keys(self) -> list[dict[str, Any]]:
        """The whole registry, for `companion pki keys --all`: every key with its status."""
        return [dict(k) for k in self._load_signing()]

    _published: tuple[Any, list[dict[str, Any]]] | None = None

    def bridge_public_keys(self, now: datetime.datetime | None = None) -> list[dict[str, Any]]:
        """Every bridge signing key a receiver should accept: each bridge's current key and
        keys rolled over whose announced end has not passed; never a revoked key (nor any key
        of a revoked bridge identity). Read from the registry, cached until it changes."""
        now = now or _now()
        try:
            st = self.signing_registry.stat()
            inv = self.inventory.stat()
            stamp: Any = (st.st_mtime_ns, st.st_size, inv.st_mtime_ns, inv.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp is not None and self._published is not None and self._published[0] == stamp:
            keys = self._published[1]
        else:
            revoked = {i.name for i in self.identities() if i.revoked and i.role == "bridge"}
            keys = [k for k in self._load_signing() if k["status"] != "revoked" and k["bridge"] not in revoked]
            if stamp is not None:
                self._published = (stamp, keys)
        out = []
        for k in keys:
            if k["status"] == "rolled" and (k.get("until") is None
                                            or datetime.datetime.fromisoformat(k["until"]) <= now):
                continue
            out.append({"bridge": k["bridge"], "kid": k["kid"], "public_key": k["public_key"],
                        "current": k["status"] == "current", "status": k["status"], "until": k.get("until")})
        return out


def acl_text(identities: list[Identity], prefix: str) -> str:
    """The mosquitto ACL (mosquitto.conf(5) `acl_file`): one `user` block per live identity,
    nothing for anyone else (revoked and unknown clients can do nothing)."""
    lines = ["# Written by `companion pki` from issued.json; do not edit by hand.",
             "# Reload the broker (SIGHUP) after a change; the bridge's own broker reloads by itself.", ""]
    for ident in identities:
        if ident.revoked:
            continue
        n, p = ident.name, prefix
        lines.append(f"user {n}")
        if ident.role == "handheld":
            lines += [f"topic write {p}/events/{n}", f"topic read {p}/acks/{n}", f"topic read {p}/rejected/{n}",
                      f"topic read {p}/keys"]
        elif ident.role == "bridge":
            lines += [f"topic read {p}/events/+", f"topic write {p}/acks/+", f"topic write {p}/rejected/+",
                      f"topic write {p}/flags/+", f"topic write {p}/keys", f"topic read {p}/duis/in"]
        elif ident.role == "consumer":
            lines += [f"topic read {p}/flags/#", f"topic read {p}/keys"]
        elif ident.role == "auditor":
            lines += [f"topic read {p}/#"]
        elif ident.role == "dcc-adaptor":
            # It only lets DUIS in: what it publishes is believed through the DCC's own signature.
            lines += [f"topic write {p}/duis/in"]
        lines.append("")
    return "\n".join(lines)


def mosquitto_conf(pki: Pki, listen_host: str, listen_port: int, *, persistence_dir: Path | None = None,
                   max_packet_size: int = 65536, files: Path | None = None) -> str:
    """The broker configuration the project ships (deploy/mosquitto/mosquitto.conf is the
    same text for an operator's broker): TLS only, client certificates required, the
    certificate's CN as user name and client id, the CRL, the ACL, a packet size limit, and
    per-client bounds on what the broker holds for a slow or absent client (in flight: 1,000
    messages or 16 MiB; queued: 20,000 messages or 64 MiB), so that a flood cannot grow it
    without end (handhelds send again what was never acked). mosquitto 2.0 has no per-client
    message rate: the bridge sheds a handheld past `device_rate` itself.
    files: a folder holding copies of the broker's files (ca.crt, broker.crt, broker.key,
    crl.pem, acl) that an unprivileged broker user can read; default the PKI's own."""
    root = (files or pki.root).resolve()
    persist = (f"persistence true\npersistence_location {persistence_dir.resolve()}/\n" if persistence_dir
               else "persistence false\n")
    return f"""# flagwise broker: every client is identified by its certificate (docs/security.md).
per_listener_settings false
allow_anonymous false
listener {listen_port} {listen_host}
protocol mqtt
cafile {root / 'ca.crt'}
certfile {root / 'broker.crt'}
keyfile {root / 'broker.key'}
crlfile {root / 'crl.pem'}
tls_version tlsv1.2
require_certificate true
use_identity_as_username true
use_username_as_clientid true
acl_file {root / 'acl'}
max_packet_size {max_packet_size}
set_tcp_nodelay true
max_inflight_messages 1000
max_inflight_bytes 16777216
max_queued_messages 20000
max_queued_bytes 67108864
{persist}"""
