"""The deployment kit (deploy/): the compose file parsed and held to the trust model, then
the same processes it describes started without Docker (no Docker engine runs here): the
secured mosquitto, PostgreSQL and two bridge replicas configured by exactly the compose
file's environment; the image's and the systemd unit's settings."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml

from companion.store.core import Store
from hil.services import BIN, identity_files

from .bridge_support import DEVICE_ID, PUBLIC_KEY, Handheld, make_event

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
T0 = 1793491200


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def bridges(c: dict) -> dict[str, dict]:
    return {name: s for name, s in c["services"].items() if name.startswith("bridge")}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:?message} and $$ (docs.docker.com's interpolation rules)."""
    def one(m: re.Match) -> str:
        name, _, rest = m.group(1).partition(":")
        if name not in env:
            raise KeyError(f"{name} is required: {rest[1:]}")
        return env[name]
    return re.sub(r"\$\{([^}]+)\}", one, value).replace("$$", "$")


def test_the_compose_file_is_the_secured_deployment():
    c = compose()
    services = c["services"]
    assert {"pki", "mosquitto", "postgres", "bridge-1", "bridge-2"} <= set(services)
    for name, s in services.items():
        image = s.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image ({image!r})"
    # The broker runs the configuration `companion pki` writes: TLS, certificates, the ACL.
    assert services["mosquitto"]["command"] == ["mosquitto", "-c", "/etc/flagwise/pki/mosquitto.conf"]
    assert "companion pki mosquitto-conf" in services["pki"]["command"][0]
    # No password is written down: the database's comes from the operator's environment.
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${FLAGWISE_DB_PASSWORD:?")
    names, groups = set(), set()
    for name, s in bridges(c).items():
        env = s["environment"]
        assert env["FLAGWISE_BROKER"].startswith("mqtts://"), f"{name}: TLS only"
        assert env["FLAGWISE_DB"].startswith("postgresql://") and "${FLAGWISE_DB_PASSWORD" in env["FLAGWISE_DB"]
        assert "/readyz" in " ".join(s["healthcheck"]["test"])
        names.add(env["FLAGWISE_NAME"])
        groups.add(env["FLAGWISE_SHARE_GROUP"])
        assert "companion pki issue bridge $$n" in services["pki"]["command"][0]
    assert len(names) == len(bridges(c)) == 2, "each replica is an identity (and client id) of its own"
    assert len(groups) == 1, "the replicas share one subscription group"
    for n in names:
        assert n in services["pki"]["command"][0], f"the pki service issues {n}"


def test_the_image_runs_unprivileged_with_a_liveness_check():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER flagwise$", text, re.M)
    assert "/healthz" in text and 'ENTRYPOINT ["companion"]' in text
    for line in re.findall(r"^COPY (\S+)", text, re.M):
        assert (DEPLOY.parent / line).exists(), f"COPY {line}: no such path"


def test_the_systemd_unit_runs_the_bridge_and_does_not_restart_a_refusal():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "flagwise-bridge@.service")
    svc = unit["Service"]
    assert svc["ExecStart"].split()[1:3] == ["bridge", "--config"]
    assert svc["User"] == "flagwise" and svc["NoNewPrivileges"] == "true"
    assert svc["Environment"] == "FLAGWISE_NAME=%i"
    # The CLI's exit status for a refusal (bad configuration, store behind, id in use) is 2.
    assert svc["RestartPreventExitStatus"] == "2" and svc["Restart"] == "on-failure"
    r = subprocess.run([str(BIN / "companion"), "bridge", "--config", "/nonexistent.toml"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "no configuration file" in r.stderr


def _start(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([str(BIN / "companion"), "bridge"], env=env, cwd=cwd, stdout=subprocess.PIPE,
                         stderr=open(cwd / "bridge.log", "ab"), text=True)
    lines = {}
    for _ in range(4):
        line = p.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError((cwd / "bridge.log").read_text()[-2000:])
        key, _, value = line.partition(": ")
        lines[key] = value.strip()
    return p, lines["admin"]


def test_the_compose_processes_run_without_docker(tmp_path, broker, postgres):
    """What `docker compose up` starts, as processes here: the replicas get exactly the
    compose file's environment, with the service names resolved to this machine's ports."""
    import psycopg

    c = compose()
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute('CREATE DATABASE "flagwise"')
    hosts = {"mosquitto:8883": f"127.0.0.1:{broker.port}", "postgres:5432": f"127.0.0.1:{postgres.port}"}
    procs = []
    try:
        for name, s in bridges(c).items():
            identity_files(broker.pki, s["environment"]["FLAGWISE_NAME"], "bridge")
        broker.reload()
        for name, s in bridges(c).items():
            env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGWISE_")}
            for k, v in s["environment"].items():
                v = interpolate(str(v), {"FLAGWISE_DB_PASSWORD": postgres.password})
                for service, local in hosts.items():
                    v = v.replace(service, local)
                env[k] = v
            # What the image sets (deploy/Dockerfile ENV), on this machine's paths and ports.
            env.update(FLAGWISE_PKI=str(broker.pki.root), FLAGWISE_OUT=str(tmp_path / name / "out"),
                       FLAGWISE_HTTP="127.0.0.1:0", FLAGWISE_ADMIN="127.0.0.1:0")
            (tmp_path / name).mkdir()
            procs.append(_start(env, tmp_path / name))
        url = postgres.url("flagwise")
        r = subprocess.run([str(BIN / "companion"), "keys", "add", DEVICE_ID, PUBLIC_KEY, "--db", url],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        hh = Handheld(broker.url, broker.pki)
        try:
            sent = [make_event("commission", T0 + i, i) for i in range(20)]
            for _, m in sent:
                hh.send(m)
            hh.wait(lambda h: all(e in h.acks for e, _ in sent), what="acks from the replicas")
        finally:
            hh.close()
        for _, admin in procs:  # the probes' listener, as the compose healthcheck uses it
            with urllib.request.urlopen(admin + "/readyz", timeout=5) as resp:
                assert resp.status == 200
        assert Store(url).event_count() == 20
        deadline = time.monotonic() + 10
        logs = ""
        while time.monotonic() < deadline:
            logs = "".join((tmp_path / n / "bridge.log").read_text() for n in bridges(c))
            if logs.count('"status": "stored"') == 20:
                break
            time.sleep(0.2)
        assert logs.count('"status": "stored"') == 20
        for n in bridges(c):  # the shared subscription gave each replica a share
            assert '"status": "stored"' in (tmp_path / n / "bridge.log").read_text(), n
    finally:
        for p, _ in procs:
            p.terminate()
            p.wait(15)
