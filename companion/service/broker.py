"""The bridge's own broker: mosquitto (Debian's package), started as a child process with the
configuration the project ships (companion.service.pki.mosquitto_conf): TLS, client certificates,
CRL, ACL, a packet size limit. It is reloaded (SIGHUP) when `companion pki` changes the CRL
or the ACL, so a revocation reaches the broker within a second.

`--insecure` gives a plain-TCP broker, for a throwaway trial, announced loudly on every
start: no encryption, but still no anonymous client. Each identity logs in with its
password (companion.service.pki.Pki.secret, where certificates cannot serve), its user name is its
client id, and the same ACL applies.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from companion.config import host_port
from companion.service.pki import Pki, mosquitto_conf


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: stop() still ends it


def mosquitto_binary() -> str:
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        raise RuntimeError("mosquitto is not installed (Debian/Ubuntu: apt-get install mosquitto); "
                           "or point the bridge at your broker with --broker mqtts://HOST:PORT")
    return exe


def broker_account(user: str | None) -> tuple[str, int, int] | None:
    """(name, uid, gid) the broker runs as, or None to run as we do. Started as root, mosquitto
    never stays root: it runs as `user`, by default `mosquitto` (Debian's package makes it) or
    else `nobody`. `user = "root"` is an explicit, logged opt-in."""
    import pwd

    if os.geteuid() != 0:
        return None
    names = [user] if user else ["mosquitto", "nobody"]
    for name in names:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return name, pw.pw_uid, pw.pw_gid
    raise RuntimeError(f"no user {names[0]!r} to run the broker as (broker_user; docs/bridge.md)")


_BROKER_FILES = ("ca.crt", "broker.crt", "broker.key", "crl.pem", "acl")


def reachable(path: Path, uid: int, gid: int) -> bool:
    """Can the account (uid, gid) enter every folder down to `path` (a private /tmp/pytest-of-root,
    a 0700 home)?"""
    import stat

    for d in [path, *path.parents]:
        try:
            st = d.stat()
        except OSError:
            continue  # made later, by us, for the account
        bit = (stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid == gid else stat.S_IXOTH)
        if not st.st_mode & bit:
            return False
    return True


class ManagedBroker:
    def __init__(self, listen: str, workdir: Path, pki: Pki | None, max_packet_size: int,
                 insecure: bool = False, die_with_parent: bool = False, user: str | None = None):
        host, port = host_port(listen, "listen")
        self.account = broker_account(user)
        # What the broker itself reads and writes after dropping privileges (its file copies,
        # password file, persistence): the workdir, or, where its account cannot enter it, a
        # folder of its own (persistence then lasts until the machine restarts).
        self.data = workdir
        if self.account is not None and self.account[1] != 0 and not reachable(workdir.resolve(), *self.account[1:]):
            import tempfile

            self.data = Path(tempfile.mkdtemp(prefix="flagwise-broker-"))
        self.host, self.port = host, port or free_port(host)
        self.workdir = workdir
        self.pki = pki
        self.insecure = insecure
        self.max_packet_size = max_packet_size
        # Linux delivers the signal when the *thread* that started the broker ends: only for a
        # broker started from a thread that lives as long as its owner (the bridge's main one).
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None
        self._watch_stop = threading.Event()
        self._mtimes: tuple[float, ...] = ()

    @property
    def url(self) -> str:
        return f"{'mqtt' if self.insecure else 'mqtts'}://{self.host}:{self.port}"

    @property
    def files(self) -> Path:
        """The broker's own copies of its TLS files, CRL and ACL (and password file), readable by
        its account: it drops privileges before it reads them, and the PKI's keys stay root's."""
        return self.data / "files"

    def _copy_files(self) -> None:
        assert self.pki is not None
        self.files.mkdir(parents=True, exist_ok=True)
        for name in _BROKER_FILES:
            src = self.pki.root / name
            if not src.exists():
                continue
            tmp = self.files / f".{name}.tmp"
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o600 if name.endswith(".key") else 0o644)
            if self.account is not None:
                os.chown(tmp, self.account[1], self.account[2])
            os.replace(tmp, self.files / name)
        if self.account is not None:
            for d in (self.data, self.files):
                os.chown(d, self.account[1], self.account[2])
            for p in self.data.glob("*.db"):  # persistence written by an earlier (root) broker
                os.chown(p, self.account[1], self.account[2])

    def config_text(self) -> str:
        # Started as root, mosquitto switches to `user` before it reads its files (hence the
        # copies in `files`); `user root` only where it is asked for (broker_account).
        head = f"user {self.account[0]}\n" if self.account is not None else ""
        assert self.pki is not None
        if self.insecure:
            root = self.files.resolve()
            return (head + "# INSECURE: plain TCP, passwords in clear (companion bridge --insecure)\n"
                    f"per_listener_settings false\nallow_anonymous false\nlistener {self.port} {self.host}\n"
                    f"password_file {self.passwd.resolve()}\nuse_username_as_clientid true\n"
                    f"acl_file {root / 'acl'}\nmax_packet_size {self.max_packet_size}\nset_tcp_nodelay true\n"
                    "max_inflight_messages 1000\nmax_inflight_bytes 16777216\nmax_queued_messages 20000\n"
                    "max_queued_bytes 67108864\npersistence false\n")
        return head + mosquitto_conf(self.pki, self.host, self.port, persistence_dir=self.data,
                                     max_packet_size=self.max_packet_size, files=self.files)

    @property
    def passwd(self) -> Path:
        return self.data / "passwd"

    def write_passwd(self) -> None:
        """mosquitto's password file (hashed by mosquitto_passwd) for every live identity."""
        assert self.pki is not None
        exe = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        tmp = self.passwd.with_name("passwd.tmp")
        tmp.write_text("")
        for ident in self.pki.identities():
            if not ident.revoked:
                subprocess.run([exe, "-b", str(tmp), ident.name, self.pki.secret(ident.name)], check=True,
                               capture_output=True, timeout=30)
        if self.account is not None:
            os.chown(tmp, self.account[1], self.account[2])
        os.replace(tmp, self.passwd)

    def start(self) -> "ManagedBroker":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        if self.pki is not None:
            self._copy_files()
        if self.insecure:
            self.write_passwd()
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        log = open(self.workdir / "mosquitto.log", "ab")
        # Its own session (a Ctrl-C reaches the bridge, which then stops the broker in order),
        # but it dies with the bridge even when the bridge is killed (Linux PR_SET_PDEATHSIG).
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=log, stderr=log,
                                     start_new_session=True,
                                     preexec_fn=_die_with_parent if self.die_with_parent else None)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                tail = (self.workdir / "mosquitto.log").read_text(errors="replace")[-600:]
                raise RuntimeError(f"the broker did not start on {self.host}:{self.port}:\n{tail}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"the broker did not open {self.host}:{self.port} within 10 s")
        if self.pki is not None:
            self._mtimes = self._stamp()
            threading.Thread(target=self._watch, name="broker-reload", daemon=True).start()
        return self

    def _stamp(self) -> tuple[float, ...]:
        assert self.pki is not None
        out = []
        for p in (self.pki.crl, self.pki.acl):
            try:
                out.append(p.stat().st_mtime)
            except OSError:
                out.append(0.0)
        return tuple(out)

    def _watch(self) -> None:
        # A revocation or a new identity (companion pki) rewrites the CRL and the ACL.
        while not self._watch_stop.wait(0.5):
            now = self._stamp()
            if now != self._mtimes:
                self._mtimes = now
                self._copy_files()
                if self.insecure:
                    self.write_passwd()  # a new or revoked identity
                self.reload()

    def reload(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        self._watch_stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.data != self.workdir:  # a folder of its own, made for this run only
            shutil.rmtree(self.data, ignore_errors=True)
