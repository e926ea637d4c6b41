"""The store's database: SQLite (a file) or PostgreSQL (psycopg 3), chosen by URL, and the
versioned schema migrations of both (docs/operations.md "Upgrade").

    companion.db                       a SQLite file (or sqlite:///path/to/file)
    postgresql://user:pw@host/db       PostgreSQL (postgres:// too; libpq's URL form)

The store's SQL is written once, in the dialect both speak: `?` placeholders (rewritten
to `%s` for psycopg), `INSERT ... ON CONFLICT`, `RETURNING`. Only the table definitions
differ (BLOB/BYTEA, REAL/DOUBLE PRECISION, AUTOINCREMENT/BIGSERIAL), one pair per migration.

Each thread has its own connection. A transaction (`Database.tx()`) is BEGIN IMMEDIATE on
SQLite, which serialises writers, and BEGIN on PostgreSQL, where writers that touch the same
meter point are serialised by `lock_mpxns` (transaction-level advisory locks).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from companion.errors import ServiceError


class StoreError(ServiceError):
    """The store cannot be used as it is (missing, behind or ahead of this companion's schema,
    unreachable): the message says what to do. A service error, never bad input."""

    reason = "store"


class StoreUnavailable(StoreError):
    """The database did not answer a connection: transient, retried."""


# SQLite errors that pass by themselves (a writer holding the lock, a full disk being
# cleared, a file system that came back): matched on the message, the only thing sqlite3
# gives. Anything else (a bad statement, too many variables, a constraint) is permanent.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "disk i/o error",
                     "unable to open database file", "database or disk is full", "locking protocol")
# PostgreSQL SQLSTATE classes and codes that pass by themselves (appendix A of its manual):
# connection exceptions, insufficient resources, operator intervention (shutdown, restart),
# system errors, serialization failures and deadlocks.
_PG_TRANSIENT_CLASSES = ("08", "53", "57", "58")
_PG_TRANSIENT_CODES = ("40001", "40P01")


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


def redact(url: str) -> str:
    """A database URL for logs and messages: the password never appears."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def sqlite_path(url: str) -> str:
    return url[len("sqlite:///"):] if url.startswith("sqlite:///") else url


# --- migrations ---------------------------------------------------------------------------
# (version, what it does, SQLite statements, PostgreSQL statements). Never edit a released
# migration: add the next one. Version 1 is the schema of flagwise 0.2.0, so a 0.2.0 SQLite
# store (tables, no version table) is upgraded in place: its statements are IF NOT EXISTS,
# and a store from before flags carried their reason code gets the column.
_V1_TABLES = """
CREATE TABLE IF NOT EXISTS keys (
    device_id TEXT PRIMARY KEY, public_key {blob} NOT NULL, added_at {real} NOT NULL,
    revoked_at {real}, hard INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (
    event_id {blob} PRIMARY KEY, device_id TEXT NOT NULL, counter {int} NOT NULL,
    type TEXT NOT NULL, device_time {int} NOT NULL, read_time {int} NOT NULL,
    received_at {real} NOT NULL, message {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS event_mpxns (
    mpxn TEXT NOT NULL, event_id {blob} NOT NULL, PRIMARY KEY (mpxn, event_id)){norowid};
CREATE TABLE IF NOT EXISTS flags (
    mpxn TEXT PRIMARY KEY, flag TEXT, effective_from TEXT, reason TEXT NOT NULL,
    event_id TEXT, event_ids TEXT NOT NULL, override TEXT, version INTEGER NOT NULL,
    updated_at {real} NOT NULL, code TEXT NOT NULL DEFAULT 'none');
CREATE TABLE IF NOT EXISTS outbox (
    seq {serial}, mpxn TEXT NOT NULL, version INTEGER NOT NULL,
    flow TEXT NOT NULL, body TEXT NOT NULL, created_at {real} NOT NULL, mqtt_done INTEGER NOT NULL DEFAULT 0,
    dtc_file TEXT, UNIQUE (mpxn, version));
CREATE INDEX IF NOT EXISTS outbox_mqtt ON outbox (mqtt_done, seq);
CREATE INDEX IF NOT EXISTS outbox_dtc ON outbox (flow, dtc_file, seq);
CREATE TABLE IF NOT EXISTS dtc_files (
    file_id TEXT PRIMARY KEY, flow TEXT NOT NULL, created TEXT NOT NULL, name TEXT NOT NULL,
    state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, value {int} NOT NULL);
CREATE TABLE IF NOT EXISTS rejections (
    id {serial}, device_id TEXT, reason TEXT NOT NULL,
    detail TEXT NOT NULL, size INTEGER NOT NULL, received_at {real} NOT NULL);
CREATE TABLE IF NOT EXISTS rejection_counts (
    device_id TEXT NOT NULL, reason TEXT NOT NULL, count {int} NOT NULL,
    first_at {real} NOT NULL, last_at {real} NOT NULL, PRIMARY KEY (device_id, reason)){norowid};
CREATE INDEX IF NOT EXISTS events_device_counter ON events (device_id, counter);
CREATE TABLE IF NOT EXISTS suspicious (
    event_id {blob} NOT NULL, device_id TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL,
    at {real} NOT NULL, PRIMARY KEY (event_id, kind));
CREATE TABLE IF NOT EXISTS api_tokens (
    name TEXT PRIMARY KEY, token_hash {blob} NOT NULL UNIQUE, created_at {real} NOT NULL,
    revoked_at {real})
"""
_SQLITE_TYPES = {"blob": "BLOB", "real": "REAL", "int": "INTEGER", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
                 "norowid": " WITHOUT ROWID"}
_PG_TYPES = {"blob": "BYTEA", "real": "DOUBLE PRECISION", "int": "BIGINT", "serial": "BIGSERIAL PRIMARY KEY",
             "norowid": ""}


def _statements(script: str, types: dict[str, str]) -> list[str]:
    return [s.strip() for s in script.format(**types).split(";") if s.strip()]


def _v1_sqlite_code_column(conn: Any) -> None:
    cols = {r[1] for r in conn.execute("PRAGMA table_info(flags)")}
    if "code" not in cols:
        conn.execute("ALTER TABLE flags ADD COLUMN code TEXT NOT NULL DEFAULT 'none'")


MIGRATIONS: list[tuple[int, str, dict[str, list[Any]]]] = [
    (1, "the schema of flagwise 0.2.0: keys, events, flags, outbox, DTC files, rejections, tokens", {
        "sqlite": [*_statements(_V1_TABLES, _SQLITE_TYPES), _v1_sqlite_code_column],
        "postgres": _statements(_V1_TABLES, _PG_TYPES),
    }),
]
_V2 = """
CREATE TABLE replicas (
    client_id TEXT PRIMARY KEY, instance TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    started_at {real} NOT NULL, heartbeat_at {real} NOT NULL);
ALTER TABLE flags ADD COLUMN last_key TEXT;
ALTER TABLE flags ADD COLUMN event_count INTEGER
"""
MIGRATIONS.append(
    (2, "replicas (one running bridge per MQTT client id); flags.last_key and event_count (incremental "
        "derivation: flags.event_ids keeps the latest ids only)", {
        "sqlite": _statements(_V2, _SQLITE_TYPES),
        "postgres": _statements(_V2, _PG_TYPES),
    }))
_V3 = "CREATE INDEX IF NOT EXISTS events_device_time ON events (device_id, device_time)"
MIGRATIONS.append(
    (3, "an index on each device's event times: a batch's counter checks look only at the events "
        "after each new one, not at the device's whole history", {
        "sqlite": _statements(_V3, _SQLITE_TYPES),
        "postgres": _statements(_V3, _PG_TYPES),
    }))
# v4: an event is identified by its device and its id (two handhelds never share one: a
# handheld that learns another's event id cannot store its own event under it first). The
# tables keyed by event id alone are rebuilt with the device in their keys; the same
# statements on both backends.
_V4 = """
CREATE TABLE events_v4 (
    event_id {blob} NOT NULL, device_id TEXT NOT NULL, counter {int} NOT NULL,
    type TEXT NOT NULL, device_time {int} NOT NULL, read_time {int} NOT NULL,
    received_at {real} NOT NULL, message {blob} NOT NULL, PRIMARY KEY (device_id, event_id));
INSERT INTO events_v4 SELECT event_id, device_id, counter, type, device_time, read_time, received_at, message
    FROM events;
CREATE TABLE event_mpxns_v4 (
    mpxn TEXT NOT NULL, device_id TEXT NOT NULL, event_id {blob} NOT NULL,
    PRIMARY KEY (mpxn, device_id, event_id)){norowid};
INSERT INTO event_mpxns_v4 SELECT m.mpxn, e.device_id, m.event_id FROM event_mpxns m
    JOIN events e ON e.event_id = m.event_id;
CREATE TABLE suspicious_v4 (
    event_id {blob} NOT NULL, device_id TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL,
    at {real} NOT NULL, PRIMARY KEY (device_id, event_id, kind));
INSERT INTO suspicious_v4 SELECT event_id, device_id, kind, detail, at FROM suspicious;
DROP TABLE event_mpxns;
DROP TABLE suspicious;
DROP TABLE events;
ALTER TABLE events_v4 RENAME TO events;
ALTER TABLE event_mpxns_v4 RENAME TO event_mpxns;
ALTER TABLE suspicious_v4 RENAME TO suspicious;
CREATE INDEX events_device_counter ON events (device_id, counter);
CREATE INDEX events_device_time ON events (device_id, device_time)
"""
MIGRATIONS.append(
    (4, "an event is identified by (device id, event id): events, event_mpxns and suspicious rebuilt "
        "with the device in their keys", {
        "sqlite": _statements(_V4, _SQLITE_TYPES),
        "postgres": _statements(_V4, _PG_TYPES),
    }))
_V5 = """
CREATE TABLE console_sessions (
    session_hash {blob} PRIMARY KEY, token_name TEXT NOT NULL, created_at {real} NOT NULL,
    expires_at {real} NOT NULL);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at)
"""
MIGRATIONS.append(
    (5, "web console sessions: a random id per sign-in, stored hashed, with an expiry; sign-out and a "
        "revoked token end them", {
        "sqlite": _statements(_V5, _SQLITE_TYPES),
        "postgres": _statements(_V5, _PG_TYPES),
    }))
_V6 = """
CREATE TABLE duis_messages (
    seq {serial}, digest TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, service TEXT, change TEXT,
    response_id TEXT, request_id TEXT, response_code TEXT NOT NULL, at {int} NOT NULL, signer TEXT NOT NULL,
    source TEXT NOT NULL, received_at {real} NOT NULL, message {blob} NOT NULL);
CREATE TABLE smi_status (
    device_id TEXT NOT NULL, message_seq {int} NOT NULL, device_type TEXT NOT NULL, status TEXT,
    since {int} NOT NULL, at {int} NOT NULL, mpxns TEXT NOT NULL, chf TEXT, manufacturer TEXT, model TEXT,
    PRIMARY KEY (device_id, message_seq));
CREATE TABLE smi_mpxns (mpxn TEXT NOT NULL, device_id TEXT NOT NULL, PRIMARY KEY (mpxn, device_id)){norowid};
CREATE INDEX smi_mpxns_device ON smi_mpxns (device_id);
CREATE TABLE duis_refused (
    id {serial}, digest TEXT NOT NULL, source TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,
    size {int} NOT NULL, received_at {real} NOT NULL, head {blob} NOT NULL)
"""
MIGRATIONS.append(
    (6, "the DCC's side: DUIS messages as received, refused ones with their reason, and the Smart "
        "Metering Inventory per device with its history and meter points", {
        "sqlite": _statements(_V6, _SQLITE_TYPES),
        "postgres": _statements(_V6, _PG_TYPES),
    }))
_V7 = """
CREATE TABLE event_devices (
    eui TEXT NOT NULL, device_id TEXT NOT NULL, event_id {blob} NOT NULL,
    PRIMARY KEY (eui, device_id, event_id)){norowid}
"""


def _v7_backfill(db: Any) -> None:
    """Every stored event's surveyed devices and hub, into the new index (events decoded once)."""
    from companion.store.core import device_rows, _event

    rows = db.execute("SELECT device_id, event_id, message FROM events").fetchall()
    for i in range(0, len(rows), 1000):
        out = [r for device_id, eid, message in rows[i:i + 1000]
               for r in device_rows(device_id, bytes(eid), _event(message))]
        if out:
            db.executemany("INSERT INTO event_devices VALUES (?, ?, ?) ON CONFLICT DO NOTHING", out)


MIGRATIONS.append(
    (7, "event_devices: the devices (and hub) each stored event's survey lists, so a device's history is "
        "found without reading every event", {
        "sqlite": [*_statements(_V7, _SQLITE_TYPES), _v7_backfill],
        "postgres": [*_statements(_V7, _PG_TYPES), _v7_backfill],
    }))
_V8 = "ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'read'"
MIGRATIONS.append(
    (8, "tokens get roles: read (the read API and the console) or dno (alert triage only); existing tokens "
        "are read tokens", {
        "sqlite": _statements(_V8, _SQLITE_TYPES),
        "postgres": _statements(_V8, _PG_TYPES),
    }))
LATEST = MIGRATIONS[-1][0]

_VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                  "description TEXT NOT NULL, applied_at {real} NOT NULL)")
_MIGRATION_LOCK = 0x666C6167  # "flag": the advisory lock id held while PostgreSQL migrates


# --- connections --------------------------------------------------------------------------
class _PgConn:
    """A psycopg connection that takes the store's `?` SQL."""

    def __init__(self, raw: Any):
        self.raw = raw
        self._sql: dict[str, str] = {}

    def _q(self, sql: str) -> str:
        q = self._sql.get(sql)
        if q is None:
            q = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return q

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        return self.raw.execute(self._q(sql), params)

    def executemany(self, sql: str, rows: list[Any]) -> Any:
        cur = self.raw.cursor()
        cur.executemany(self._q(sql), rows)
        return cur

    def close(self) -> None:
        self.raw.close()


class Database:
    """One store's database: a connection per thread, transactions, migrations."""

    def __init__(self, url: str | Path):
        self.url = str(url)
        self.kind = "postgres" if is_postgres(self.url) else "sqlite"
        self._local = threading.local()

    def __str__(self) -> str:
        return redact(self.url)

    # connections
    def conn(self) -> Any:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = self._connect()
        return c

    def _connect(self) -> Any:
        if self.kind == "postgres":
            try:
                import psycopg

                return _PgConn(psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                               application_name="flagwise"))
            except psycopg.Error as exc:
                raise StoreUnavailable(f"cannot connect to the database {redact(self.url)}: "
                                 f"{str(exc).strip().splitlines()[0][:300]}") from None
        c = sqlite3.connect(sqlite_path(self.url), timeout=30, isolation_level=None, check_same_thread=False)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=FULL")  # durable commits: the ack follows the fsync
        c.execute("PRAGMA foreign_keys=ON")
        return c

    @contextmanager
    def arrow(self, sql: str) -> Iterator[Any]:
        """A query's rows as Arrow record batches (a pyarrow RecordBatchReader), read by the
        database's ADBC driver on a connection of its own: columnar from the driver on, with no
        Python object per row. Give every column a type SQLite can tell from its first rows
        (no column NULL throughout a batch: coalesce it)."""
        if self.kind == "postgres":
            import adbc_driver_postgresql.dbapi as driver
            target = self.url
        else:
            import adbc_driver_sqlite.dbapi as driver
            target = sqlite_path(self.url)
        try:
            conn = driver.connect(target)
        except Exception as exc:  # the driver's own errors: a clear message, never the password
            raise StoreUnavailable(f"cannot read {redact(self.url)}: {str(exc).splitlines()[0][:200]}") from None
        try:
            cur = conn.cursor()
            cur.execute(sql)
            yield cur.fetch_record_batch()
            cur.close()
        finally:
            conn.close()

    def stream(self, sql: str, params: tuple[Any, ...] = (), size: int = 10_000) -> Iterator[tuple[Any, ...]]:
        """The rows of a query, `size` at a time, never all at once in memory: a SQLite cursor,
        or a PostgreSQL server-side cursor on a connection of its own."""
        if self.kind == "sqlite":
            cur = self.conn().execute(sql, params)
            while rows := cur.fetchmany(size):
                yield from rows
            return
        import psycopg

        with psycopg.connect(self.url, connect_timeout=10, application_name="flagwise-stream") as raw:
            with raw.cursor(name="flagwise_stream") as cur:
                cur.itersize = size
                cur.execute(sql.replace("%", "%%").replace("?", "%s"), params)
                yield from cur

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    @contextmanager
    def tx(self, pipeline: bool = False) -> Iterator[Any]:
        """BEGIN (IMMEDIATE, on SQLite) ... COMMIT, or ROLLBACK on an exception. pipeline: on
        PostgreSQL, statements whose results are not read go out without waiting for each
        other (psycopg's pipeline mode); a result that is read waits for what came before it."""
        c = self.conn()
        if pipeline and self.kind == "postgres":
            with c.raw.transaction():
                with c.raw.pipeline():
                    yield c
            return
        c.execute("BEGIN IMMEDIATE" if self.kind == "sqlite" else "BEGIN")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def lock_mpxns(self, db: Any, mpxns: list[str]) -> None:
        """Serialise derivation per meter point across writers (replicas), in a fixed order so
        that two batches never wait on each other. SQLite has one writer at a time already."""
        self._xact_locks(db, "", mpxns)

    def lock_devices(self, db: Any, device_ids: list[str]) -> None:
        """Serialise a device's events across writers (replicas), so that each batch's counter
        checks see every event of the device committed before it. Taken before lock_mpxns, in
        a fixed order, in a key space of its own: two batches never wait on each other."""
        self._xact_locks(db, "device:", device_ids)

    def _xact_locks(self, db: Any, space: str, keys: list[str]) -> None:
        # PostgreSQL transaction-level advisory locks on hash(space || key), taken in key order.
        if self.kind == "postgres" and keys:
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended(? || k, 0)) "
                       "FROM (SELECT k FROM unnest(?::text[]) AS k ORDER BY k) AS ordered", (space, sorted(set(keys))))

    def relax_commit(self, db: Any) -> None:
        """This transaction's commit need not wait for the disk (PostgreSQL): for work that is
        redone harmlessly if lost in a crash (marking flag updates published)."""
        if self.kind == "postgres":
            db.execute("SET LOCAL synchronous_commit = off")

    _LOCKS = {"publish": 0x666C6701, "dtc": 0x666C6702, "replicas": 0x666C6703}

    def try_lock(self, db: Any, name: str) -> bool:
        """A transaction-level lock on one output (publish, dtc) shared by every replica: the
        replica that holds it works that output alone until it commits, so flag updates go out
        in version order and a change is never assigned to two DTC files. SQLite: BEGIN
        IMMEDIATE already excludes every other writer."""
        if self.kind != "postgres":
            return True
        return bool(db.execute("SELECT pg_try_advisory_xact_lock(?)", (self._LOCKS[name],)).fetchone()[0])

    def lock(self, db: Any, name: str) -> None:
        """The transaction-level lock `name`, waited for (PostgreSQL; SQLite: BEGIN IMMEDIATE
        already excludes every other writer)."""
        if self.kind == "postgres":
            db.execute("SELECT pg_advisory_xact_lock(?)", (self._LOCKS[name],))

    def is_transient(self, exc: BaseException) -> bool:
        """Is this an error of a database that is down or busy for a while? A positive list:
        such work is retried, never turned into a rejection; anything else is a failure of its
        own, raised, logged and counted (retrying it forever would stall ingest for good)."""
        if isinstance(exc, StoreUnavailable):
            return True
        if self.kind == "sqlite":
            return isinstance(exc, sqlite3.OperationalError) and str(exc).lower().startswith(_SQLITE_TRANSIENT)
        import psycopg

        if not isinstance(exc, psycopg.Error):
            return False
        code = getattr(exc, "sqlstate", None)
        if code is not None:
            return code in _PG_TRANSIENT_CODES or code[:2] in _PG_TRANSIENT_CLASSES
        # No SQLSTATE: a client-side error. Transient only if the connection itself broke.
        c = getattr(self._local, "conn", None)
        raw = getattr(c, "raw", None)
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) and (
            raw is None or bool(raw.broken) or bool(raw.closed))

    def errors(self) -> tuple[type[BaseException], ...]:
        """Every error the database driver raises, for an `except` that then asks is_transient."""
        if self.kind == "postgres":
            import psycopg

            return (psycopg.Error, StoreError)
        return (sqlite3.Error, StoreError)

    # schema
    def _has_table(self, name: str) -> bool:
        if self.kind == "postgres":
            return self.conn().execute("SELECT to_regclass(?)", (name,)).fetchone()[0] is not None
        return self.conn().execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                                   (name,)).fetchone() is not None

    def version(self) -> int:
        """The schema version (0: empty, or a 0.2.0 SQLite store from before versions)."""
        if not self._has_table("schema_version"):
            return 0
        return int(self.conn().execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])

    def is_empty(self) -> bool:
        return self.version() == 0 and not self._has_table("events")

    def pending(self) -> list[tuple[int, str]]:
        """The migrations this store still needs, (version, description)."""
        v = self.version()
        if v > LATEST:
            raise StoreError(f"the store {self} is at schema version {v}, newer than this companion knows "
                             f"({LATEST}): upgrade the companion, not the store")
        return [(n, d) for n, d, _ in MIGRATIONS if n > v]

    def check(self) -> None:
        """Refuse a store that is behind this companion's schema."""
        todo = self.pending()
        if todo:
            raise StoreError(f"the store {self} is at schema version {self.version()} and this companion "
                             f"needs {LATEST}: run `companion db upgrade` (docs/operations.md), or start "
                             "the bridge with db_upgrade = true")

    def upgrade(self) -> list[tuple[int, str]]:
        """Apply the pending migrations, each in its own transaction; -> what was applied.
        Safe when several bridges start at once: PostgreSQL holds an advisory lock, SQLite
        the write lock of each transaction (a migration already applied is skipped)."""
        types = _PG_TYPES if self.kind == "postgres" else _SQLITE_TYPES
        applied = []
        c = self.conn()
        if self.kind == "postgres":
            c.execute("SELECT pg_advisory_lock(?)", (_MIGRATION_LOCK,))
        try:
            self.pending()  # a store newer than this companion is refused, never touched
            with self.tx() as db:
                db.execute(_VERSION_TABLE.format(**types))
            for number, description, steps in MIGRATIONS:
                with self.tx() as db:
                    if db.execute("SELECT 1 FROM schema_version WHERE version=?", (number,)).fetchone():
                        continue
                    for step in steps[self.kind]:
                        if callable(step):
                            step(db)
                        else:
                            db.execute(step)
                    db.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (number, description, time.time()))
                    if self.kind == "sqlite":
                        db.execute(f"PRAGMA user_version = {int(number)}")
                applied.append((number, description))
        finally:
            if self.kind == "postgres":
                c.execute("SELECT pg_advisory_unlock(?)", (_MIGRATION_LOCK,))
        return applied
