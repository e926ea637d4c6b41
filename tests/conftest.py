"""Shared fixtures. Firmware tests run the firmware under the real `micropython`."""

from __future__ import annotations

import pytest

from .support import MicroPythonRunner


@pytest.fixture(scope="session", autouse=True)
def firmware_built() -> None:
    """Keep build/firmware (.mpy) current with firmware/ when pytest runs on its own."""
    from .support import build_firmware

    build_firmware()


@pytest.fixture(scope="session")
def mpy() -> MicroPythonRunner:
    return MicroPythonRunner()


@pytest.fixture(scope="session")
def server():
    """The firmware's codecs under micropython, one request a line (tests/mpy/codec_server.py):
    one process for the session, shared by the CBOR, signing, framing and id tests."""
    from .support import MPY_HELPERS

    with MicroPythonRunner().session(MPY_HELPERS / "codec_server.py") as s:
        yield s


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster of this test process's own (initdb, pg_ctl, a free port)."""
    from hil.services import Postgres

    pg = Postgres().start()
    yield pg
    pg.stop()


@pytest.fixture
def backend() -> str:
    """The store's database for `start_bridge` and `store_url`: SQLite here; a module that
    runs on both overrides it (params=["sqlite", "postgres"])."""
    return "sqlite"


@pytest.fixture
def store_url(request, backend, tmp_path) -> str:
    """A new, empty store: a SQLite file path, or a new database of the test cluster."""
    if backend == "postgres":
        return request.getfixturevalue("postgres").new_database()
    return str(tmp_path / "bridge.db")


@pytest.fixture
def start_bridge(tmp_path, broker, store_url):
    """start_bridge(device_id, public_key_hex, *options): the bridge as a process on `broker`,
    with that handheld's key registered; stopped after the test."""
    from hil.services import BridgeProcess

    started = []

    def start(device_id: str, public_key: str, *extra: str) -> BridgeProcess:
        b = BridgeProcess(tmp_path, broker.url, *extra, db=store_url)
        assert b.companion("keys", "add", device_id, public_key).returncode == 0
        started.append(b.start())
        return b

    yield start
    for b in started:
        b.stop()


@pytest.fixture
def watch(broker):
    """An MQTT client on `broker` that collects events, acks, rejections and flag updates."""
    from .bridge_support import Handheld

    h = Handheld(broker.url, broker.pki)
    yield h
    h.close()


@pytest.fixture
def broker(tmp_path):
    """A real mosquitto with the shipped configuration (TLS, client certificates, ACL) on a
    free loopback port, for this test; the bridge's identity is issued before it starts."""
    from hil.services import Mosquitto

    from hil.services import identity_files

    m = Mosquitto(tmp_path)
    identity_files(m.pki, "bridge", "bridge")
    m.start()
    yield m
    m.stop()
