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


# --- tiers (docs/architecture.md "Tests in tiers") --------------------------------------------
# `make check` runs what is left unmarked: pure logic, vectors, the firmware's fast tier, lint
# and types, in under a minute. Everything that starts a real part is marked:
#   integration  mosquitto, PostgreSQL, a bridge or a companion process, micropython boards
#   browser      Debian's chromium
#   bench        the scenario library (hil/scenarios) and the bench's own tests
# A test is marked by the fixtures it uses, or by its module (below) when it starts real
# parts itself; tests/test_house.py holds every module to one of these lists or to none.
REAL_FIXTURES = {"broker", "start_bridge", "postgres", "watch", "board", "bridge", "site", "console",
                 "evidence_store", "clock", "words"}
INTEGRATION_MODULES = {"test_agent", "test_bridge", "test_duis_live", "test_triage_api", "test_cli", "test_deploy",
                       "test_readme",
                       "test_replicas",
                       "test_security", "test_store_db", "test_openapi", "test_reconcile", "test_dtc",
                       "test_acks", "test_survey", "test_toolchain"}
BENCH_MODULES = {"test_hil_scenarios", "test_hil_board", "test_hil_plugin", "test_hub_emulator"}
BROWSER_TESTS = {"test_a_real_browser_signs_in_by_keyboard_searches_and_sees_the_timeline"}
SUBPROCESS_TESTS = {  # unit-looking tests in mixed modules that run the companion command line
    "test_every_numeric_setting_is_bounded_at_load", "test_reissuing_an_identity_revokes_its_earlier_certificate",
    "test_pki_commands_refuse_a_missing_pki", "test_only_the_bridge_and_db_upgrade_make_a_store",
    "test_reconcile_keeps_every_row_once_and_never_reuses_a_file_id",
    "test_store_errors_are_transient_only_on_a_positive_list", "test_replicas_see_each_others_revocations_and_counters",
    "test_the_event_key_migration_keeps_every_event_and_its_meter_points",
    "test_the_command_answers_with_a_clear_code",
    "test_the_command_walks_folders_refuses_a_100_mb_file_unread_and_exits_1"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.stem
        name = getattr(item, "originalname", item.name)
        if item.path.suffix == ".toml" or module in BENCH_MODULES:
            item.add_marker(pytest.mark.bench)
        elif name in BROWSER_TESTS:
            item.add_marker(pytest.mark.browser)
        elif (module in INTEGRATION_MODULES or name in SUBPROCESS_TESTS
              or REAL_FIXTURES & set(getattr(item, "fixturenames", ()))
              or "postgres" in getattr(getattr(item, "callspec", None), "params", {}).values()):
            item.add_marker(pytest.mark.integration)
