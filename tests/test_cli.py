"""The console scripts, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .support import load_vectors

BIN = Path(sys.executable).parent
EVENTS = load_vectors("events")
BAD = load_vectors("events_bad")


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], input=stdin, capture_output=True, timeout=120)


def test_companion_verify_accepts_a_good_message(tmp_path):
    f = tmp_path / "event.cbor"
    f.write_bytes(bytes.fromhex(EVENTS["cases"][1]["message"]))
    p = run("companion", "verify", "--key", EVENTS["public_key"], str(f))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["ok"] and out["kid"] == EVENTS["kid"]
    assert out["event"]["type"] == "install"
    assert out["event"]["mprns"] == ["1234567890"]


def test_companion_verify_reports_the_reason_for_a_bad_message():
    case = [c for c in BAD["messages"] if c["name"] == "alg_es384"][0]
    p = run("companion", "verify", "--hex", "--key", EVENTS["public_key"], "-",
            stdin=case["message"].encode())
    assert p.returncode == 1
    assert json.loads(p.stdout)["reason"] == "wrong_alg"


def test_companion_verify_bad_key_is_a_usage_error(tmp_path):
    f = tmp_path / "event.cbor"
    f.write_bytes(b"\x00")
    p = run("companion", "verify", "--key", "zz", str(f))
    assert p.returncode == 2
    assert b"--key must be hex" in p.stderr


def test_hil_selfcheck_passes():
    p = run("hil", "selfcheck", "-n", "2")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.decode().count("tampered copy refused: bad_signature") == 2
    assert p.stdout.decode().rstrip().endswith("selfcheck: OK")
