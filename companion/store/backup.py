"""Backups of the store, taken while the bridge runs, and their restore (docs/operations.md).

SQLite: the online backup API (a consistent copy of a live WAL database, page by page).
PostgreSQL: pg_dump's custom format (one consistent snapshot), restored with pg_restore.
A backup never overwrites a file; a restore goes into a new store only (a missing SQLite
file, or an empty PostgreSQL database), so it never mixes two histories.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from companion.store.db import Database, StoreError, sqlite_path


def backup(db: Database, dest: Path) -> None:
    if dest.exists():
        raise StoreError(f"{dest} exists: a backup never overwrites a file")
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        if db.kind == "sqlite":
            src = sqlite3.connect(sqlite_path(db.url))
            out = sqlite3.connect(tmp)
            try:
                src.backup(out)
            finally:
                out.close()
                src.close()
        else:
            _pg_tool("pg_dump", db.url, ["--format=custom", "--no-owner", f"--file={tmp}"])
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def restore(db: Database, src: Path) -> None:
    if not src.is_file():
        raise StoreError(f"no backup file at {src}")
    if db.kind == "sqlite":
        target = Path(sqlite_path(db.url))
        if target.exists():
            raise StoreError(f"{target} exists: restore into a new file (stop the bridge, move the old store "
                             "away, then restore)")
        if src.read_bytes()[:16] != b"SQLite format 3\x00":
            raise StoreError(f"{src} is not a SQLite backup")
        tmp = target.with_name(f".{target.name}.partial")
        try:
            with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as source:
                out = sqlite3.connect(tmp)
                try:
                    source.backup(out)
                finally:
                    out.close()
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return
    if not db.is_empty():
        raise StoreError(f"{db} is not empty: restore into a new database (createdb), then point the bridges at it")
    _pg_tool("pg_restore", db.url, ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                                    str(src)])


def _pg_tool(name: str, url: str, args: list[str]) -> None:
    """Run pg_dump or pg_restore on url; the password goes by environment, never argv."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    tool = shutil.which(name) or _debian_tool(name)
    if tool is None:
        raise StoreError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    params = conninfo_to_dict(url)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    p = subprocess.run([tool, f"--dbname={make_conninfo('', **params)}", *args], capture_output=True, text=True,
                       env=env, timeout=3600)
    if p.returncode != 0:
        raise StoreError(f"{name} failed: {p.stderr.strip()[-500:]}")


def _debian_tool(name: str) -> str | None:
    from glob import glob

    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parent.parent.name))
    return found[-1] if found else None
