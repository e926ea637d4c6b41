"""The console scripts, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("toml,env,message", [
    ('batch_max = "lots"', {}, "c.toml: batch_max must be a whole number, got 'lots'"),
    ('log_level = "loud"', {}, "log_level must be one of debug, info, warning, error"),
    ('dtc_batch_age = true', {}, "dtc_batch_age must be a number"),
    ('legacy_flags = "maybe"', {}, "legacy_flags must be true or false"),
    ('legacy_mapping = {A = "A", I = "", N = 3}', {}, "legacy_mapping must be a table of text values"),
    ("", {"FLAGWISE_BATCH_MAX": "lots"}, "FLAGWISE_BATCH_MAX: batch_max must be a whole number"),
    ("", {"FLAGWISE_BACH_MAX": "5"}, "FLAGWISE_BACH_MAX: no configuration key 'bach_max'"),
    ('bogus = 1', {}, "c.toml: unknown configuration key 'bogus'"),
])
def test_a_bad_configuration_value_is_a_message_before_anything_starts(tmp_path, toml, env, message):
    """A value of the wrong type once started the bridge and killed its ingest thread while
    /healthz said ok: now each value is checked as it is read, with its source."""
    import os

    (tmp_path / "c.toml").write_text(toml + "\n")
    p = subprocess.run([str(BIN / "companion"), "bridge", "--config", "c.toml"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=30, env={**os.environ, **env})
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "companion.db").exists() and not (tmp_path / "pki").exists()


def test_configuration_from_the_environment_and_off(tmp_path, monkeypatch):
    from companion import config

    (tmp_path / "c.toml").write_text('http = "off"\nbatch_max = 10\n')
    monkeypatch.setenv("FLAGWISE_BATCH_MAX", "20")
    monkeypatch.setenv("FLAGWISE_LEGACY_FLAGS", "true")
    cfg = config.load(str(tmp_path / "c.toml"), {"max_future": 60})
    assert (cfg.http, cfg.batch_max, cfg.legacy_flags, cfg.max_future) == (None, 20, True, 60)
    cfg = config.load(str(tmp_path / "c.toml"), {"batch_max": 5})  # the command line wins
    assert cfg.batch_max == 5


@pytest.mark.parametrize("args", [["site", "1900000000096"], ["replay"], ["keys", "list"], ["tokens", "list"]])
def test_reading_commands_refuse_to_create_a_store(tmp_path, args):
    p = subprocess.run([str(BIN / "companion"), *args], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "no store at companion.db" in p.stderr and "Traceback" not in p.stderr
    assert list(tmp_path.iterdir()) == []  # no empty companion.db left behind


def test_verify_a_missing_file_is_a_message(tmp_path):
    p = subprocess.run([str(BIN / "companion"), "verify", str(tmp_path / "nope.cose"), "--key", "04"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "cannot read" in p.stderr and "Traceback" not in p.stderr
