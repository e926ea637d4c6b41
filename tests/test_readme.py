"""The README's "Try it by hand" section, run as written (its commands taken from the
README itself), non-interactively: bridge, premises, provisioning, registration, a job on
the handheld's console, and the site the back office reports. Only the folder (`try/`)
and the two ports are replaced, so that the test runs beside others."""

from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import time
from pathlib import Path

from hil.services import free_port

ROOT = Path(__file__).resolve().parent.parent


def readme_steps() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Try it by hand", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def _line(proc: subprocess.Popen, pattern: str, timeout: float = 60) -> str:
    end = time.monotonic() + timeout
    buf = ""
    while time.monotonic() < end:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            chunk = os.read(proc.stdout.fileno(), 4096).decode()
            if not chunk:
                break
            buf += chunk
            m = re.search(pattern, buf)
            if m:
                return m.group(0)
    raise TimeoutError(f"no {pattern!r} in:\n{buf[-2000:]}")


def test_the_readme_try_it_by_hand_sequence_works_as_written(tmp_path):
    steps = readme_steps()
    assert len(steps) == 7 and steps[0] == "mkdir -p try", steps
    steps = steps[1:]
    broker, http = str(free_port()), str(free_port())
    work = tmp_path / "try"
    work.mkdir()

    def cmd(step: str, **subst: str) -> list[str]:
        step = step.replace("try/", f"{work}/").replace("8883", broker).replace("8080", http)
        for k, v in subst.items():
            step = step.replace(k, v)
        env_part = re.match(r"^((?:[A-Z]+=\S+ )*)(.*)$", step)
        return shlex.split(env_part.group(2)), dict(kv.split("=", 1) for kv in env_part.group(1).split())

    def env(extra: dict) -> dict:
        e = dict(os.environ)
        # `.frozen` names the interpreter's frozen modules (ssl among them), not a folder.
        e.update({k: ":".join(p if p.startswith(".") else str(ROOT / p) for p in v.split(":"))
                  for k, v in extra.items()})
        return e

    argv, _ = cmd(steps[0])
    bridge = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    argv, _ = cmd(steps[1])
    premises = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
    try:
        _line(bridge, r"http: \S+")
        pty = _line(premises, r"pty: \S+").split()[1]
        argv, _ = cmd(steps[2], **{"/dev/pts/N": pty})
        r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        pub = re.search(r"public key: (\w+)", r.stdout).group(1)
        argv, _ = cmd(steps[3], PUBLIC_KEY=pub)
        r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        argv, extra = cmd(steps[4])
        console = subprocess.Popen(argv, cwd=ROOT, env=env(extra), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
        _line(console, r"READY \S+")
        console.stdin.write(b"job commission 2000012345672 3000123456 WO-1 INST-1\n")
        console.stdin.flush()
        _line(console, r"ACKED \w+ stored")
        console.stdin.write(b"quit\n")
        console.stdin.flush()
        assert console.wait(30) == 0
        argv, _ = cmd(steps[5])
        end = time.monotonic() + 20
        while True:
            r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
            if r.returncode == 0 or time.monotonic() > end:
                break
            time.sleep(0.3)
        assert r.returncode == 0 and "2000012345672: flag A" in r.stdout, r.stdout + r.stderr
    finally:
        for p in (premises, bridge):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
    # hil premises kept serving with no console, and stopped on SIGTERM.
    assert premises.returncode == 0
