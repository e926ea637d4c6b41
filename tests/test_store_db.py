"""The store's database as an operator meets it: schema versions and migrations (from an
empty store, and from a 0.2.0 store made before versions), refusals with a next step,
backups taken and restored, and flags queued for publishing again -- on SQLite and on a
real PostgreSQL cluster."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from companion.store import db as dbmod
from companion.store.core import Store

from .bridge_support import DEVICE_ID, MV, PUBLIC_KEY, companion, make_event

T0 = 1793491200  # 2026-11-01
DATA = Path(__file__).parent / "data"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    return request.param


def test_a_new_store_is_made_at_the_latest_version_and_upgrade_is_idempotent(store_url):
    r = companion("db", "upgrade", "--db", store_url)
    assert r.returncode == 0, r.stderr
    assert "applied: 1 " in r.stdout and f"schema version: {dbmod.LATEST}" in r.stdout
    r = companion("db", "upgrade", "--db", store_url)
    assert r.returncode == 0 and "applied" not in r.stdout and "up to date" in r.stdout
    r = companion("db", "status", "--db", store_url)
    assert r.returncode == 0 and f"schema version: {dbmod.LATEST} (this companion: {dbmod.LATEST})" in r.stdout
    assert "pending" not in r.stdout


def test_an_empty_database_is_refused_by_reads_with_the_next_step(store_url, backend):
    if backend == "sqlite":
        r = companion("keys", "list", "--db", store_url)
        assert r.returncode == 2 and "no store at" in r.stderr
        assert not Path(store_url).exists(), "a read made a store"
        return
    r = companion("keys", "list", "--db", store_url)
    assert r.returncode == 2 and "run `companion db upgrade`" in r.stderr and "Traceback" not in r.stderr
    r = companion("db", "status", "--db", store_url)
    assert r.returncode == 1 and "schema version: 0" in r.stdout and "pending: 1 " in r.stdout


def _legacy_store(path: Path) -> None:
    """A store as flagwise 0.2.0 made it (no schema version), with a key, an event and a flag."""
    c = sqlite3.connect(path)
    c.executescript((DATA / "store-0.2.0.sql").read_text())
    c.execute("INSERT INTO keys (device_id, public_key, added_at) VALUES (?, ?, ?)",
              (DEVICE_ID, bytes.fromhex(PUBLIC_KEY), 1.0))
    eid, msg = make_event("commission", T0, 1)
    c.execute("INSERT INTO events VALUES (?, ?, 1, 'commission', ?, ?, ?, ?)",
              (bytes.fromhex(eid), DEVICE_ID, T0, T0, float(T0), msg))
    c.execute("INSERT INTO event_mpxns VALUES (?, ?)", (MV.MPAN, bytes.fromhex(eid)))
    c.execute("INSERT INTO flags VALUES (?, 'A', '2026-11-01', 'commissioned', ?, ?, NULL, 1, ?, 'active')",
              (MV.MPAN, eid, f'["{eid}"]', float(T0)))
    c.commit()
    c.close()


def test_a_020_store_is_refused_then_upgraded_in_place_with_its_data(tmp_path):
    path = tmp_path / "old.db"
    _legacy_store(path)
    r = companion("keys", "list", "--db", str(path))
    assert r.returncode == 2 and "schema version 0" in r.stderr and "companion db upgrade" in r.stderr
    r = companion("db", "status", "--db", str(path))
    assert r.returncode == 1 and "pending: 1 " in r.stdout
    r = companion("db", "upgrade", "--db", str(path))
    assert r.returncode == 0 and "applied: 1 " in r.stdout, r.stderr
    r = companion("keys", "list", "--db", str(path))
    assert r.returncode == 0 and DEVICE_ID in r.stdout
    r = companion("site", MV.MPAN, "--json", "--db", str(path))
    assert r.returncode == 0 and '"flag": "A"' in r.stdout
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == dbmod.LATEST


def test_a_bridge_told_not_to_upgrade_refuses_an_old_store(tmp_path):
    path = tmp_path / "old.db"
    _legacy_store(path)
    cfg = tmp_path / "c.toml"
    cfg.write_text("db_upgrade = false\n")
    r = companion("bridge", "--config", str(cfg), "--db", str(path), "--http", "off", "--listen", "127.0.0.1:0",
                  "--pki", str(tmp_path / "pki"), cwd=tmp_path)
    assert r.returncode == 2 and "companion db upgrade" in r.stderr and "Traceback" not in r.stderr


def test_a_store_newer_than_the_companion_is_refused(store_url):
    Store(store_url).close()
    s = Store(store_url)
    with s.tx() as c:
        c.execute("INSERT INTO schema_version VALUES (?, 'from the future', 0)", (dbmod.LATEST + 1,))
    s.close()
    for args in (["site", MV.MPAN], ["db", "upgrade"], ["db", "status"]):
        r = companion(*args, "--db", store_url)
        assert r.returncode == 2 and "newer than this companion knows" in r.stderr, (args, r.stderr)


def _fill(store: Store) -> None:
    store.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
    store.add_token("ops")
    for i in range(3):
        store.record_rejection(DEVICE_ID, "bad_signature", f"try {i}", 100, T0 + i)
    with store.tx() as c:
        c.execute("INSERT INTO outbox (mpxn, version, flow, body, created_at) VALUES (?, 1, 'electricity', '{}', ?)",
                  (MV.MPAN, float(T0)))


def _contents(store: Store) -> tuple:
    c = store.conn()
    return (store.keys(), store.tokens(), store.rejection_counts(),
            c.execute("SELECT mpxn, version, body FROM outbox ORDER BY seq").fetchall(), store.db.version())


def test_backup_while_the_store_is_written_then_restore_into_a_new_store(tmp_path, backend, store_url, request):
    store = Store(store_url)
    _fill(store)
    before = _contents(store)
    dest = tmp_path / "store.backup"
    # A writer holds a transaction open: the backup is still consistent, and does not wait for it.
    writer = Store(store_url)
    tx = writer.tx()
    c = tx.__enter__()
    c.execute("INSERT INTO sequences VALUES ('uncommitted', 1)")
    try:
        r = companion("db", "backup", str(dest), "--db", store_url)
    finally:
        tx.__exit__(None, None, None)
    assert r.returncode == 0, r.stderr
    assert dest.stat().st_size > 0
    r = companion("db", "backup", str(dest), "--db", store_url)
    assert r.returncode == 2 and "never overwrites" in r.stderr

    target = (str(tmp_path / "restored.db") if backend == "sqlite"
              else request.getfixturevalue("postgres").new_database("restored"))
    r = companion("db", "restore", str(dest), "--db", target)
    assert r.returncode == 0 and "up to date" in r.stdout, r.stderr
    restored = Store(target, upgrade=False)
    assert _contents(restored) == before
    assert restored.conn().execute("SELECT count(*) FROM sequences WHERE name='uncommitted'").fetchone()[0] == 0
    # Never into a store that has a history of its own.
    r = companion("db", "restore", str(dest), "--db", target)
    assert r.returncode == 2 and ("exists" in r.stderr or "not empty" in r.stderr)


def test_restore_refuses_what_is_not_a_backup(tmp_path, backend, request):
    bogus = tmp_path / "bogus"
    bogus.write_text("hello")
    target = (str(tmp_path / "r.db") if backend == "sqlite"
              else request.getfixturevalue("postgres").new_database("r"))
    r = companion("db", "restore", str(bogus), "--db", target)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = companion("db", "restore", str(tmp_path / "missing"), "--db", target)
    assert r.returncode == 2 and "no backup file" in r.stderr


def test_a_database_that_cannot_be_reached_is_one_clear_line(tmp_path):
    r = companion("keys", "list", "--db", "postgresql://flagwise:secret-pw@127.0.0.1:1/x")
    assert r.returncode == 2 and "cannot connect to the database" in r.stderr
    assert "secret-pw" not in r.stderr and "Traceback" not in r.stderr


def test_revocation_times_are_iso_8601_in_and_out(tmp_path):
    db = str(tmp_path / "s.db")
    assert companion("db", "upgrade", "--db", db).returncode == 0
    assert companion("keys", "add", DEVICE_ID, PUBLIC_KEY, "--db", db).returncode == 0
    r = companion("keys", "revoke", DEVICE_ID, "--at", "2026-11-27T10:00:00Z", "--db", db, "--no-pki")
    assert r.returncode == 0, r.stderr
    assert Store(db).key(DEVICE_ID).revoked_at == 1795773600.0
    r = companion("keys", "list", "--db", db)
    assert "revoked 2026-11-27T10:00:00Z" in r.stdout
    r = companion("keys", "revoke", DEVICE_ID, "--at", "2026-11-27T10:00:00", "--db", db)
    assert r.returncode == 2 and "no time zone" in r.stderr
    r = companion("keys", "revoke", DEVICE_ID, "--at", "yesterday", "--db", db)
    assert r.returncode == 2 and "ISO 8601" in r.stderr


def test_flags_republish_sends_each_current_flag_again_signed_at_its_version(start_bridge, watch, store_url):
    bridge = start_bridge(DEVICE_ID, PUBLIC_KEY)
    eid, msg = make_event("commission", T0, 1)
    watch.send(msg)
    watch.wait(lambda h: len(h.flags.get(MV.MPAN, [])) == 1, what="the flag")
    r = bridge.companion("flags", "republish")
    assert r.returncode == 0 and r.stdout.startswith("1 flags queued"), r.stderr
    watch.wait(lambda h: len(h.flags.get(MV.MPAN, [])) == 2, what="the flag again")
    first, again = watch.flags[MV.MPAN]
    assert again == first and again["version"] == 1
    time.sleep(0.5)
    assert len(watch.flags[MV.MPAN]) == 2


def test_a_long_history_keeps_its_count_and_a_late_event_rederives_it(store_url):
    """The flags row keeps the latest ids and a count (incremental derivation); the read API
    still lists every event, the flag update counts them all, and a late event (older than
    the newest) re-derives the whole history: replay agrees."""
    from companion.config import Config
    from companion.service.ingest import Incoming, Ingestor
    from companion.surfaces.replay import replay
    from companion.surfaces.site import site_view
    from tests.bridge_support import evidence

    store = Store(store_url)
    store.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
    cfg = Config(db=store_url).check()
    ing = Ingestor(store, cfg)
    status = ["Commissioned", "InstalledNotCommissioned"]
    stream = [make_event("commission", T0 + 60 * i, i, mpans=[MV.MPAN],
                         ev=evidence([("ESME", MV.MPAN, status[(i // 3) % 2])])) for i in range(31)]
    late = stream.pop(4)  # arrives last, older than all but four
    changes = []
    for _, msg in stream + [late]:
        [out] = ing.handle_batch([Incoming(f"flagwise/events/{DEVICE_ID}", msg)])
        assert out.status == "stored", out
        changes += out.changes
    assert changes[-1]["event_count"] > 20 and len(changes[-1]["event_ids"]) == 20
    view = site_view(store, MV.MPAN, cfg)
    in_order = [eid for eid, _ in stream[:4] + [late] + stream[4:]]  # the policy order: survey time
    assert view is not None and view["event_ids"] == in_order
    n, diffs = replay(store)
    assert n == 1 and diffs == []
    flag = store.flag(MV.MPAN)
    assert flag is not None and flag.event_count == 31 and list(flag.event_ids) == in_order[-20:]
