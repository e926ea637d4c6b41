"""Real services for the bench and the tests: mosquitto on a free loopback port, and the
bridge as a process (`companion bridge`), as deployed."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

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
    def __init__(self, workdir: Path, port: int | None = None, tls: dict | None = None):
        """tls: {"port", "cafile", "certfile", "keyfile"} adds a listener that requires client certificates."""
        self.port = port or free_port()
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        # `user root`: as root, mosquitto would otherwise switch to its own user, which cannot
        # read a test's private temporary folder (no effect when not run as root).
        text = (f"user root\nlistener {self.port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
                "max_inflight_messages 1000\nmax_queued_messages 100000\npersistence false\n")
        if tls:
            text += (f"listener {tls['port']} 127.0.0.1\ncafile {tls['cafile']}\ncertfile {tls['certfile']}\n"
                     f"keyfile {tls['keyfile']}\nrequire_certificate true\n")
        self.conf.write_text(text)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Mosquitto":
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class BridgeProcess:
    """`companion bridge` in its own process, as deployed."""

    def __init__(self, workdir: Path, broker_url: str | None, *extra: str, http: str = "127.0.0.1:0"):
        self.workdir = workdir = workdir.resolve()
        self.db = workdir / "bridge.db"
        self.out = workdir / "out"
        self.args = [str(BIN / "companion"), "bridge", "--db", str(self.db), "--out", str(self.out),
                     "--http", http, *extra]
        if broker_url:
            self.args += ["--broker", broker_url]
        self.proc: subprocess.Popen | None = None
        self.http = ""
        self.broker = ""
        self.log = workdir / "bridge.log"

    def start(self) -> "BridgeProcess":
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=logf, text=True, cwd=self.workdir)
        lines = {}
        for _ in range(3):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"bridge did not start: {self.log.read_text()[-2000:]}")
            key, _, value = line.partition(": ")
            lines[key] = value.strip()
        self.http = lines["http"]
        self.broker = lines["broker"].split()[0]
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
        try:
            with urllib.request.urlopen(self.http + path, timeout=10) as r:
                body = r.read().decode()
                return r.status, json.loads(body) if r.headers["Content-Type"] == "application/json" else body
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode())

    def companion(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "companion"), *args, "--db", str(self.db)], capture_output=True,
                              text=True, timeout=60)


