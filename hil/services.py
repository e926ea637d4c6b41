"""Real services for the bench and the tests: mosquitto on a free loopback port, a
PostgreSQL cluster of their own, and the bridge as a process (`companion bridge`), as
deployed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.enums import CallbackAPIVersion

from companion.service.broker import ManagedBroker
from companion.service.pki import Pki
from companion.wire.signing import public_point

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


class Mosquitto:
    """mosquitto with the shipped configuration (companion.service.pki.mosquitto_conf): TLS, client
    certificates, CRL, ACL and packet limit, on a PKI in `workdir/pki` (made if missing).
    Reloads itself when the PKI's CRL or ACL change, like the bridge's own broker."""

    def __init__(self, workdir: Path, port: int | None = None, pki: Pki | None = None):
        self.port = port or free_port()
        self.workdir = workdir
        self.pki = pki or Pki(workdir / "pki")
        if not self.pki.exists:
            self.pki.init()
        self._broker = ManagedBroker(f"127.0.0.1:{self.port}", workdir / f"mosquitto-{self.port}", self.pki,
                                     max_packet_size=65536)

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    def start(self) -> "Mosquitto":
        self._broker.start()
        return self

    def reload(self) -> None:
        self._broker.reload()

    def stop(self) -> None:
        self._broker.stop()
        self._broker = ManagedBroker(f"127.0.0.1:{self.port}", self.workdir / f"mosquitto-{self.port}", self.pki,
                                     max_packet_size=65536)


def pg_bindir() -> Path | None:
    """Where PostgreSQL's server programs are: on PATH, or Debian's /usr/lib/postgresql/N/bin."""
    import glob
    import shutil

    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name))
    return Path(dirs[-1]) if dirs else None


class Postgres:
    """A PostgreSQL cluster of its own (initdb, pg_ctl) in a temporary folder, listening on a
    free loopback port with password authentication (scram-sha-256), as the tests start
    mosquitto. Run as root, the server runs as the `postgres` user (it refuses root)."""

    USER = "flagwise"

    def __init__(self) -> None:
        import secrets
        import tempfile

        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL's server is not installed (Debian: apt-get install postgresql; "
                               "tools/setup.sh does it)")
        self.bin = bindir
        self.root = Path(tempfile.mkdtemp(prefix="flagwise-pg-"))
        self.port = free_port()
        self.password = secrets.token_urlsafe(18)
        self._n = 0
        self._as: list[str] = []
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str) -> None:
        p = subprocess.run(self._as + list(argv), capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed: {(p.stderr or p.stdout)[-1500:]}")

    def start(self) -> "Postgres":
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        pwfile.chmod(0o600)
        self._run(str(self.bin / "initdb"), "-D", str(self.root / "data"), "-U", self.USER, f"--pwfile={pwfile}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
        pwfile.unlink()
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-l", str(self.root / "log"), "-w",
                  "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=200",
                  "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """A new, empty database; its URL."""
        import psycopg

        self._n += 1
        name = f"{prefix}_{os.getpid()}_{self._n}"
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        import shutil

        if (self.root / "data" / "postmaster.pid").exists():
            subprocess.run(self._as + [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate",
                                       "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def identity_files(pki: Pki, name: str, role: str) -> tuple[str, str]:
    """(certificate, key) of an identity, issued now if missing. A handheld's key is made
    here (the bench's stand-in for a handheld's own key) and kept beside its certificate."""
    if role == "handheld":
        key_path = pki.root / "handhelds" / f"{name}.key"
        if not key_path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            pki.issue_handheld(name, public_point(key))
            key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.TraditionalOpenSSL,
                                                   serialization.NoEncryption()))
        return str(pki.handheld_crt(name)), str(key_path)
    crt, key = pki.client_files(name)
    if not crt.exists():
        pki.issue(role, name)
    return str(crt), str(key)


def mqtt_client(pki: Pki, name: str, role: str = "auditor", protocol: int = mqtt.MQTTv5,
                insecure: bool = False) -> mqtt.Client:
    """A paho client with this identity's certificate (not yet connected); `insecure`: plain
    TCP, the identity by its password (a broker run with --insecure)."""
    kw = {} if protocol == mqtt.MQTTv5 else {"clean_session": True}
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=protocol, **kw)
    cert, key = identity_files(pki, name, role)
    if insecure:  # a plain-TCP broker: the same identity, by password
        c.username_pw_set(name, pki.secret(name))
    else:
        c.tls_set(ca_certs=str(pki.ca_crt), certfile=cert, keyfile=key)
    c.on_socket_open = _nodelay
    return c


def _nodelay(client, userdata, sock) -> None:
    # QoS 1 round trips crawl with Nagle + delayed ACK (shared/pitfalls.md).
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


def broker_host_port(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


class BridgeProcess:
    """`companion bridge` in its own process, as deployed."""

    def __init__(self, workdir: Path, broker_url: str | None, *extra: str, http: str = "127.0.0.1:0",
                 pki: Path | None = None, listen: str = "127.0.0.1:0", db: str | None = None):
        self.workdir = workdir = workdir.resolve()
        self.db: Path | str = db or workdir / "bridge.db"  # a SQLite file, or a PostgreSQL URL
        self.out = workdir / "out"
        self.pki = Pki(pki or workdir / "pki")
        self.args = [str(BIN / "companion"), "bridge", "--db", str(self.db), "--out", str(self.out),
                     "--http", http, "--pki", str(self.pki.root), *extra]
        if "--admin" not in extra:
            self.args += ["--admin", "127.0.0.1:0" if http != "off" else "off"]
        if not broker_url and "--listen" not in extra:
            self.args += ["--listen", listen]
        self.token: str | None = None
        if broker_url:
            self.args += ["--broker", broker_url]
        self.proc: subprocess.Popen | None = None
        self.http = ""
        self.admin = ""
        self.broker = ""
        self.log = workdir / "bridge.log"
        self._store_made = False

    def start(self) -> "BridgeProcess":
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=logf, text=True, cwd=self.workdir)
        lines = {}
        for _ in range(4):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"bridge did not start: {self.log.read_text()[-2000:]}")
            key, _, value = line.partition(": ")
            lines[key] = value.strip()
        self.http = lines["http"]
        self.admin = lines["admin"]
        self.broker = lines["broker"].split()[0]
        if self.token is None:
            self.token = self.companion("tokens", "add", f"bench-{os.getpid()}-{free_port()}").stdout.strip()
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def get(self, path: str) -> tuple[int, dict | str]:
        req = urllib.request.Request(self.http + path, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                body = r.read().decode()
                return r.status, json.loads(body) if r.headers["Content-Type"] == "application/json" else body
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode())

    def companion(self, *args: str) -> subprocess.CompletedProcess:
        # From the bridge's folder, so that relative defaults (the pki folder) are the bridge's.
        # Registering before the first start needs the store made, as an operator makes it
        # (`companion db upgrade`): nothing else creates one.
        if tuple(args[:2]) in (("keys", "add"), ("tokens", "add")) and not self._store_made:
            made = subprocess.run([str(BIN / "companion"), "db", "upgrade", "--db", str(self.db)],
                                  capture_output=True, text=True, timeout=60, cwd=self.workdir)
            if made.returncode != 0:
                return made
            self._store_made = True
        return subprocess.run([str(BIN / "companion"), *args, "--db", str(self.db)], capture_output=True,
                              text=True, timeout=60, cwd=self.workdir)


