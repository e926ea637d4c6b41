"""Reconcile a registration extract against the evidence: which registered DCC Service Flags
(MP077) the signed field evidence contradicts, why, and the corrections (docs/reconcile.md).

The extract (CSV or Parquet: `mpxn,flag,effective_from`, other columns kept through) is read by
DuckDB, a columnar engine that streams CSV and Parquet and spills to disk past its memory limit;
the evidence (each meter point's derived flag, from the store, SQLite or PostgreSQL) comes in as
Arrow from the database's ADBC driver. The extract is never held whole: two streaming passes run
side by side, one counting each meter point's rows (duplicates, and how many have no evidence),
the other keeping only the rows that are written out (bad rows, discrepancies) with their
lines. Meter points with no evidence are counted, not listed (a list of them is written on
request). A third pass, only when the extract repeats a meter point, finds the repeats' lines.
The outputs are written by DuckDB (CSV, Parquet), by the DTC writer (companion/dtc.py) and by a
Jinja2 template (a self-contained HTML report).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from companion import dtc
from companion.config import Config
from companion.errors import CompanionError

# The classes, in the order they are decided; each is documented in docs/reconcile.md.
CLASSES: dict[str, str] = {
    "wrong_check_digit": "the MPAN core's check digit is wrong: the row names no real meter point",
    "legacy_value": "S or W, legacy values that MP077 replaced",
    "active_after_removal": "A, but the smart meter was removed",
    "active_not_commissioned": "A, but the smart metering system was never commissioned",
    "blank_after_install": "no flag, but a smart meter was installed",
    "non_active_not_propagated": "N in the evidence, never in registration",
    "commissioned_not_propagated": "A in the evidence, I or N in registration",
    "installed_not_propagated": "I in the evidence, N in registration",
    "wrong_effective_date": "the right flag, from the wrong date",
}
CORRECTABLE = tuple(c for c in CLASSES if c != "wrong_check_digit")
UNVERIFIED = "no signed evidence for this meter point: counted, never corrected (listed with --list-unverified)"
REGISTERED_FLAGS = ("A", "S", "W", "I", "N", "")
REQUIRED = ("mpxn", "flag", "effective_from")
DTC_FILE_MAX = 10_000  # corrections a DTC file
_W = (3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43)  # MPAN core check digit weights
_KEY_SCALE = 10_000_000_000_000  # above every 13-digit number: a key's length part


class ReconcileError(CompanionError):
    pass


@dataclass
class Summary:
    rows: int = 0
    reconciled: int = 0
    bad_rows: int = 0
    duplicates: int = 0
    unverified: int = 0
    evidence: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    regions: dict[str, dict[str, int]] = field(default_factory=dict)
    ages: dict[str, int] = field(default_factory=dict)
    corrections: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def discrepancies(self) -> int:
        return sum(self.classes.values())


def _progress(enabled: bool) -> Any:
    """A rich progress bar on a terminal (stderr), or a stand-in that shows nothing."""
    if enabled:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=False)

    class Quiet:
        def __enter__(self) -> Quiet:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def add_task(self, *a: Any, **k: Any) -> int:
            return 0

        def update(self, *a: Any, **k: Any) -> None:
            pass

        def advance(self, *a: Any, **k: Any) -> None:
            pass

    return Quiet()


def q(path: Path) -> str:
    """A path as a SQL string literal's content."""
    return str(path).replace("'", "''")


_MPXN = "[0-9]{13}|[0-9]{6,10}"  # an MPAN core or an MPRN, as a regular expression


def _key_sql(m: str) -> str:
    """SQL: a meter point's key from its MPxN text `m` (trimmed): one integer a meter point, its
    digits and its length (an MPRN's leading zeros count), NULL for text that is no number."""
    return f"(TRY_CAST({m} AS BIGINT) + length({m}) * {_KEY_SCALE})"


def _check_digit_sql(num: str) -> str:
    """SQL: true when the 13-digit MPAN core `num` (a BIGINT column) has a wrong check digit
    (the weighted sum of the first 12 digits, mod 11, mod 10)."""
    terms = " + ".join(f"({num} // {10 ** (12 - i)} % 10) * {w}" for i, w in enumerate(_W))
    return f"(({terms}) % 11 % 10) <> {num} % 10"


# Names the reconcile uses itself: an extract's extra column of one of these names is kept
# as extract_<name>.
_RESERVED = {"line", "mpxn", "flag", "effective_from", "registered_flag", "registered_from", "evidence_flag",
             "evidence_from", "class", "event_id", "reason", "raw_from", "bad_check", "nth", "problem", "code",
             "k", "num", "n", "n_unverified", "g", "n_noev", "in_mpxn", "in_flag", "in_from", "h", "nth",
             "has_evidence", "file_row_number"}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Extract:
    """The extract as DuckDB relations of text columns `line` (the file's line number for CSV,
    the row number + 1 for Parquet, the header being line 1), `mpxn`, `flag`, `effective_from`
    (matched whatever their case), then the extra columns."""

    def __init__(self, con: Any, path: Path):
        self.path = path
        self.parquet = path.suffix.lower() in (".parquet", ".pq")
        try:
            cols = [d[0] for d in con.execute(f"SELECT * FROM {self._read(numbered=False)} LIMIT 0").description][1:]
        except Exception as exc:  # duckdb.Error: an unreadable file
            raise ReconcileError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}") from None
        by_name = {c.strip().lower(): c for c in reversed(cols)}  # the first of a name, whatever its case
        missing = [c for c in REQUIRED if c not in by_name]
        if missing:
            raise ReconcileError(f"{path}: the extract needs columns {', '.join(REQUIRED)}; missing "
                                 f"{', '.join(missing)} (found: {', '.join(c[:30] for c in cols[:12])})")
        used = {by_name[c] for c in REQUIRED}
        self.required = [f"CAST({_ident(by_name[c])} AS VARCHAR) AS {c}" for c in REQUIRED]
        self.extras: list[str] = []
        self.extra_cols: list[str] = []
        for c in cols:
            if c in used:
                continue
            name = c
            while name.lower() in _RESERVED or name in self.extras:
                name = "extract_" + name
            self.extras.append(name)
            self.extra_cols.append(f"CAST({_ident(c)} AS VARCHAR) AS {_ident(name)}")
        self.quoted = [_ident(c) for c in self.extras]
        # A column of the file's own named like the Parquet reader's row number: read so, the
        # two clash (columnar copies the file with the column renamed).
        self.numbering_clash = any(c.lower() == "file_row_number" for c in cols)

    def columnar(self, con: Any, work: Path) -> None:
        """A CSV extract, read once (on every thread, in the file's order) into a Parquet work
        file that the passes read instead: parsing the CSV once, not once a pass, and each row's
        number comes with it (`file_row_number`), so no pass has to number the rows on one
        thread. The rows the reader cannot split are kept in reject_errors with their lines, as
        before; the lines after them are moved on by _duplicates. A Parquet extract is read as
        it is, unless a column of its own is named file_row_number: it is copied too, with that
        column renamed (as every extra column named like one of the outputs' own)."""
        if self.parquet and not self.numbering_clash:
            return
        cols = ", ".join([*self.required, *self.extra_cols])
        con.execute(f"""
            COPY (SELECT {cols} FROM {self._read(numbered=False, rejects=True)})
            TO '{q(work)}' (FORMAT parquet, ROW_GROUP_SIZE 122880)""")
        self.path, self.parquet, self.numbering_clash = work, True, False
        self.required = [f"{c} AS {c}" for c in REQUIRED]
        self.extra_cols = [f"{c} AS {c}" for c in self.quoted]

    def rel(self, extras: bool = True) -> str:
        """Every row, with its line (read from Parquet: the rows' numbers come on every thread)."""
        cols = ", ".join(["__line AS line", *self.required, *(self.extra_cols if extras else [])])
        return f"(SELECT {cols} FROM {self._read()})"

    def _read(self, numbered: bool = True, rejects: bool = False) -> str:
        """The file as read, every column, with `__line` (numbered: the Parquet row number + 2,
        the header being line 1; else NULL). A CSV is read with every column as text (a flag or
        a date is judged here, not guessed by the reader), and only unnumbered: to see its
        columns, and by columnar(), which keeps the rows it cannot split when `rejects`."""
        p = q(self.path)
        if self.parquet and numbered:
            return (f"(SELECT file_row_number + 2 AS __line, * EXCLUDE (file_row_number) FROM "
                    f"read_parquet('{p}', file_row_number = true))")
        if self.parquet:
            return f"(SELECT NULL::BIGINT AS __line, * FROM read_parquet('{p}'))"
        return (f"(SELECT NULL::BIGINT AS __line, * FROM read_csv('{p}', header = true, all_varchar = true, "
                f"ignore_errors = true, store_rejects = {str(rejects).lower()}, null_padding = false))")

    def judged(self, extras: bool = True, where: str = "") -> str:
        """Each row with its problem (NULL when valid), its key `k` (one integer a meter point:
        its digits and its length) and whether it is a 13-digit core with a wrong check digit
        (`k` and `bad_check` mean something only where `problem` is NULL). `where`: a
        condition on the values as read, tested before anything is judged."""
        ex = "".join(", " + c for c in self.quoted) if extras else ""
        rel = self.rel(extras)
        if where:
            rel = f"(SELECT * FROM {rel} WHERE {where})"
        # Casts are tried, never trusted: the engine may evaluate an expression for rows a
        # guard before it excludes. A column computed once below is read by name above, never
        # written out again inside another expression (each copy costs a pass over the rows).
        return f"""(
        SELECT line, mpxn, flag, raw_from, registered_from, problem {ex},
          num + length(mpxn) * {_KEY_SCALE} AS k,  -- _key_sql(mpxn), its cast already made
          coalesce(length(mpxn) = 13 AND ({_check_digit_sql('num')}), false) AS bad_check
        FROM (
          SELECT *, CASE
              WHEN mpxn IS NULL OR mpxn = '' THEN 'no mpxn'
              WHEN NOT regexp_full_match(mpxn, '{_MPXN}')
                THEN 'mpxn is not an MPAN core (13 digits) or an MPRN (6 to 10 digits)'
              WHEN flag NOT IN ('A', 'S', 'W', 'I', 'N', '') THEN 'flag must be one of A S W I N or blank'
              WHEN raw_from <> '' AND registered_from IS NULL THEN 'effective_from must be YYYY-MM-DD or YYYYMMDD'
              WHEN flag <> '' AND raw_from = '' THEN 'a flag needs its effective_from'
            END AS problem
          FROM (
            SELECT *, TRY_CAST(mpxn AS BIGINT) AS num,
              CASE WHEN length(raw_from) = 10 AND substr(raw_from, 5, 1) = '-' AND substr(raw_from, 8, 1) = '-'
                     THEN TRY_CAST(raw_from AS DATE)
                   WHEN length(raw_from) = 8 AND TRY_CAST(raw_from AS UINTEGER) IS NOT NULL
                     THEN TRY_CAST(substr(raw_from, 1, 4) || '-' || substr(raw_from, 5, 2) || '-' ||
                                   substr(raw_from, 7, 2) AS DATE)
              END AS registered_from
            FROM (
              SELECT line, trim(mpxn) AS mpxn, upper(trim(coalesce(flag, ''))) AS flag,
                     trim(coalesce(effective_from, '')) AS raw_from {ex}
              FROM {rel}))))"""


def _load_evidence(con: Any, evidence: Callable[[], Any]) -> int:
    """The store's flags, as Arrow from the database's driver, into table `evidence` keyed as
    the extract's rows are."""
    with evidence() as reader:
        con.register("evidence_in", reader)
        con.execute(f"""
            CREATE TABLE evidence AS
            SELECT {_key_sql("m")} AS k, CAST(flag AS VARCHAR) AS flag,
                   TRY_CAST(nullif(CAST(effective_from AS VARCHAR), '') AS DATE) AS evidence_from,
                   nullif(CAST(event_id AS VARCHAR), '') AS event_id,
                   CAST(reason AS VARCHAR) AS reason, CAST(code AS VARCHAR) AS code
            FROM (SELECT *, CAST(mpxn AS VARCHAR) AS m FROM evidence_in)""")
        con.unregister("evidence_in")
    return int(con.execute("SELECT count(*) FROM evidence").fetchone()[0])


def reconcile(extract: Path, evidence: Callable[[], Any], out: Path, *,
              config: Config, correct: Iterable[str] = (), today: date | None = None, progress: bool = False,
              memory_limit: str = "1GB", threads: int | None = None,
              file_number: Callable[[], int] | None = None, list_unverified: bool = False) -> Summary:
    """Reconcile `extract` against the evidence; write the outputs into `out` (a new folder,
    or an empty one). evidence() -> a context manager giving a pyarrow RecordBatchReader of
    (mpxn, flag, effective_from, event_id, reason, code) (Store.evidence_arrow).
    file_number() -> the next correction file's number, never used before (the store's
    sequence: two runs never write different files with one id); required when `correct` names
    any class. list_unverified: also write unverified.csv, the meter points with no evidence."""
    import duckdb

    t0 = time.monotonic()
    correct = list(correct)
    unknown = [c for c in correct if c not in CORRECTABLE]
    if unknown:
        raise ReconcileError(f"--correct: {unknown[0][:40]!r} is not a class that can be corrected "
                             f"(one of: {', '.join(CORRECTABLE)})")
    if correct and file_number is None:
        raise ReconcileError("corrections need a file numbering that outlives the run (the store's)")
    if not extract.is_file():
        raise ReconcileError(f"no extract at {extract}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReconcileError(f"{out} exists and is not an empty folder: the outputs go into a new one")
    today = today or datetime.now(timezone.utc).date()
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _run(duckdb, extract, evidence, out, config, correct, today, progress, memory_limit, threads, t0,
                    file_number, list_unverified)
    except BaseException as exc:
        # Nothing half-made is left behind: a failed run's folder goes (or is emptied).
        if made:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for p in out.iterdir():
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        if isinstance(exc, duckdb.Error):
            raise ReconcileError(f"reconcile failed: {str(exc).splitlines()[0][:300]}") from None
        raise
    finally:
        shutil.rmtree(out / ".spill", ignore_errors=True)


def _run(duckdb: Any, extract: Path, evidence: Callable[[], Any], out: Path, config: Config, correct: list[str],
         today: date, progress: bool, memory_limit: str, threads: int | None, t0: float,
         file_number: Callable[[], int] | None, list_unverified: bool) -> Summary:
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{str(out / '.spill').replace(chr(39), '')}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    summary = Summary()
    with _progress(progress) as bar:
        stage = bar.add_task("reconcile", total=5)
        ex = _Extract(con, extract)
        work = out / ".spill"
        work.mkdir(exist_ok=True)
        ex.columnar(con, work / "extract.parquet")
        task = bar.add_task("evidence from the store", total=1)
        summary.evidence = _load_evidence(con, evidence)
        bar.update(task, completed=1)
        bar.advance(stage)
        _passes(con, ex)
        bar.advance(stage)
        rejects = _duplicates(duckdb, con, ex, out if list_unverified else None)
        _count(con, summary, rejects)
        bar.advance(stage)
        _write_rows(con, ex, out, rejects)
        bar.advance(stage)
        _tally(con, summary, today)
        summary.files = _corrections(con, out, correct, config, summary, file_number)
        bar.advance(stage)
    con.close()
    summary.seconds = time.monotonic() - t0
    facts = _summary_dict(summary, extract, today, correct)
    facts["unverified_listed"] = list_unverified
    (out / "summary.json").write_text(json.dumps(facts, indent=1) + "\n")
    from companion.render import reconcile_html

    (out / "report.html").write_text(reconcile_html(facts))
    return summary


_CLASS = """CASE
    WHEN j.bad_check THEN 'wrong_check_digit'
    WHEN e.flag IS NULL THEN NULL
    WHEN j.flag IN ('S', 'W') THEN 'legacy_value'
    WHEN j.flag = 'A' AND e.flag = 'N' AND e.code LIKE 'removed%' THEN 'active_after_removal'
    WHEN j.flag = 'A' AND e.flag IN ('I', 'N') THEN 'active_not_commissioned'
    WHEN j.flag = '' AND e.flag IN ('I', 'A') THEN 'blank_after_install'
    WHEN j.flag IN ('', 'I') AND e.flag = 'N' THEN 'non_active_not_propagated'
    WHEN j.flag IN ('I', 'N') AND e.flag = 'A' THEN 'commissioned_not_propagated'
    WHEN j.flag = 'N' AND e.flag = 'I' THEN 'installed_not_propagated'
    WHEN j.flag = e.flag AND j.registered_from IS DISTINCT FROM e.evidence_from THEN 'wrong_effective_date'
  END"""


def _passes(con: Any, ex: _Extract) -> None:
    """The two streaming passes over the extract: `counts` (each meter point
    key seen more than once, with how many of its rows have no evidence, and the totals: cheap,
    nothing judged but the key), and `kept` (every row judged; the rows that are written out,
    with their lines: bad rows and discrepancies). Exact counts of valid rows come from both:
    a bad row is in `kept` with its key."""
    counting = f"""
        CREATE TABLE counts AS
        SELECT c.k, count(*) AS n, count(*) FILTER (WHERE e.k IS NULL) AS n_noev, grouping(c.k) AS g
        FROM (SELECT {_key_sql("m")} AS k
              FROM (SELECT trim(mpxn) AS m FROM {ex.rel(extras=False)})) c
        LEFT JOIN (SELECT k FROM evidence) e ON e.k = c.k
        GROUP BY GROUPING SETS ((c.k), ()) HAVING grouping(c.k) = 1 OR (c.k IS NOT NULL AND count(*) > 1)"""
    keeping = f"""
        CREATE TABLE kept AS
        SELECT j.line, j.k, j.mpxn, j.flag AS registered_flag, j.registered_from, j.problem, j.bad_check,
               e.k IS NOT NULL AS has_evidence, e.flag AS evidence_flag, e.evidence_from, {_CLASS} AS class,
               CASE WHEN j.bad_check THEN NULL ELSE e.event_id END AS event_id,
               CASE WHEN j.bad_check THEN 'MPAN core check digit mismatch' ELSE e.reason END AS reason
               {"".join(", j." + c for c in ex.quoted)}
        FROM {ex.judged()} j LEFT JOIN evidence e ON e.k = j.k
        -- every evidence class is a difference in flag or date (or a wrong check digit)
        WHERE j.problem IS NOT NULL OR j.bad_check
           OR (e.k IS NOT NULL AND (j.flag <> e.flag OR j.registered_from IS DISTINCT FROM e.evidence_from))"""
    # One after the other: side by side, each on every thread, they took longer than in turn.
    con.execute(counting)
    con.execute(keeping)
    # Each repeated key's valid rows: its rows less its bad ones.
    con.execute("""
        CREATE TABLE repeats AS
        SELECT c.k, c.n - count(p.k) AS n_valid, c.n_noev > 0 AS no_evidence
        FROM counts c LEFT JOIN kept p ON p.k = c.k AND p.problem IS NOT NULL
        WHERE c.g = 0 GROUP BY c.k, c.n, c.n_noev HAVING c.n - count(p.k) > 1""")


def _duplicates(duckdb: Any, con: Any, ex: _Extract, unverified_to: Path | None) -> list[Any]:
    """Table `dups` (line, first: each repeat of a meter point after its first valid row), from a
    third pass that runs only when the extract repeats a meter point; the unverified list when
    asked for; lines moved past the rows the CSV reader could not split. -> those rows."""
    con.execute("CREATE TABLE dups (line BIGINT, k BIGINT, mpxn VARCHAR, first BIGINT)")
    if con.execute("SELECT count(*) FROM repeats").fetchone()[0]:
        con.execute(f"""
            INSERT INTO dups
            SELECT line, k, mpxn, min(line) OVER (PARTITION BY k) AS first
            FROM {ex.judged(extras=False, where=_key_sql("trim(mpxn)") + " IN (SELECT k FROM repeats)")} j
            WHERE problem IS NULL""")
        con.execute("DELETE FROM dups WHERE line = first")
    if unverified_to is not None:
        con.execute(f"""
            COPY (SELECT j.mpxn, j.flag AS registered_flag, j.registered_from {"".join(", j." + c for c in ex.quoted)}
                  FROM {ex.judged()} j
                  WHERE j.problem IS NULL AND NOT j.bad_check AND j.k NOT IN (SELECT k FROM evidence)
                    AND j.line NOT IN (SELECT line FROM dups)
                  ORDER BY j.line)
            TO '{q(unverified_to / 'unverified.csv')}' (HEADER, DELIMITER ',')""")
    # Rows the CSV reader could not split, with their line (one error a line). The rows it read
    # are numbered in order; each unreadable line before a row moves it one on.
    rejects = []
    try:
        rejects = con.execute("SELECT line, min(error_message) FROM reject_errors GROUP BY line "
                              "ORDER BY line").fetchall()
    except duckdb.Error:
        pass
    if rejects:
        con.execute("CREATE TEMP TABLE shifts AS SELECT unnest(?::BIGINT[]) AS t",
                    [[int(r) - j for j, (r, _) in enumerate(rejects, 1)]])
        for table in ("kept", "dups"):
            con.execute(f"UPDATE {table} SET line = line + (SELECT count(*) FROM shifts WHERE t <= {table}.line - 1)")
        con.execute("UPDATE dups SET first = first + (SELECT count(*) FROM shifts WHERE t <= dups.first - 1)")
    # A repeat is never a discrepancy, whatever its values: the first row speaks for the point.
    con.execute("""
        CREATE TABLE discrepancies AS
        SELECT * EXCLUDE (k, problem, bad_check, has_evidence) FROM kept
        WHERE problem IS NULL AND class IS NOT NULL AND line NOT IN (SELECT line FROM dups) ORDER BY line""")
    return rejects


def _count(con: Any, summary: Summary, rejects: list[Any]) -> None:
    rows, noev = con.execute("SELECT n, n_noev FROM counts WHERE g = 1").fetchone() or (0, 0)
    problems, problems_noev, bad_check_keys = con.execute(
        "SELECT count(*) FILTER (WHERE problem IS NOT NULL), "
        "count(*) FILTER (WHERE problem IS NOT NULL AND NOT has_evidence), "
        "count(DISTINCT k) FILTER (WHERE problem IS NULL AND bad_check AND NOT has_evidence) FROM kept").fetchone()
    repeats, repeats_noev = con.execute(
        "SELECT coalesce(sum(n_valid - 1), 0), coalesce(sum(n_valid - 1) FILTER (WHERE no_evidence), 0) "
        "FROM repeats").fetchone()
    valid = int(rows) - int(problems)
    summary.rows = int(rows) + len(rejects)
    summary.reconciled = valid - int(repeats)
    summary.duplicates = int(repeats)
    summary.bad_rows = int(problems) + len(rejects)
    # Meter points (first valid rows) with no evidence, less those with a wrong check digit.
    summary.unverified = int(noev) - int(problems_noev) - int(repeats_noev) - int(bad_check_keys)


def _write_rows(con: Any, ex: _Extract, out: Path, rejects: list[Any]) -> None:
    cols = "mpxn, registered_flag, registered_from, evidence_flag, evidence_from, class, event_id, reason" + \
        "".join(", " + c for c in ex.quoted)
    con.execute(f"COPY (SELECT {cols} FROM discrepancies ORDER BY line) TO '{q(out / 'discrepancies.csv')}' "
                "(HEADER, DELIMITER ',')")
    con.execute(f"COPY (SELECT {cols} FROM discrepancies ORDER BY line) TO '{q(out / 'discrepancies.parquet')}' "
                "(FORMAT parquet)")
    con.execute("CREATE TABLE bad AS "
                "SELECT line, left(mpxn, 20) AS mpxn, problem FROM kept WHERE problem IS NOT NULL "
                "UNION ALL SELECT line, left(mpxn, 20), 'duplicate of line ' || first FROM dups")
    if rejects:
        con.executemany("INSERT INTO bad VALUES (?, NULL, ?)",
                        [(int(ln), "unreadable row: " + str(msg)[:200]) for ln, msg in rejects])
    con.execute(f"COPY (SELECT * FROM bad ORDER BY line) TO '{q(out / 'bad_rows.csv')}' (HEADER, DELIMITER ',')")


def _tally(con: Any, summary: Summary, today: date) -> None:
    """Counts by class, region and age of the wrongness."""
    summary.classes = {c: n for c, n in con.execute(
        "SELECT class, count(*) FROM discrepancies GROUP BY class").fetchall()}
    summary.classes = {c: summary.classes.get(c, 0) for c in CLASSES}
    for region, cls, n in con.execute(
            "SELECT CASE WHEN length(mpxn) = 13 THEN left(mpxn, 2) ELSE 'gas' END, class, count(*) "
            "FROM discrepancies GROUP BY ALL ORDER BY 1").fetchall():
        summary.regions.setdefault(region, {})[cls] = int(n)
    buckets = [(0, 30, "under 30 days"), (30, 90, "30-89 days"), (90, 365, "90-364 days"),
               (365, 365 * 3, "1-3 years"), (365 * 3, 10**6, "3 years or more")]
    case = " ".join(f"WHEN age < {hi} THEN '{label}'" for lo, hi, label in buckets)
    ages = dict(con.execute(
        f"SELECT CASE WHEN age IS NULL THEN 'unknown' {case} END, count(*) FROM ("
        f"SELECT date_diff('day', evidence_from, DATE '{today.isoformat()}') AS age FROM discrepancies "
        f"WHERE class <> 'wrong_check_digit') GROUP BY 1").fetchall())
    summary.ages = {label: int(ages.get(label, 0)) for _, _, label in buckets}
    if ages.get("unknown"):
        summary.ages["unknown"] = int(ages["unknown"])


def _corrections(con: Any, out: Path, correct: list[str], config: Config, summary: Summary,
                 file_number: Callable[[], int] | None) -> list[str]:
    """DTC files (companion/dtc.py) that set each selected discrepancy's meter point to the
    evidence's flag and date: D0350 for MPANs, the gas flow for MPRNs."""
    if not correct:
        return []
    folder = out / "corrections"
    folder.mkdir()
    files = []
    names = ",".join("'" + c + "'" for c in correct)
    created = datetime.now(timezone.utc)
    assert file_number is not None  # reconcile() refuses corrections without one
    for flow in (dtc.D0350, dtc.GAS):
        length = "= 13" if flow is dtc.D0350 else "<> 13"
        cur = con.execute(f"SELECT mpxn, evidence_flag, strftime(evidence_from, '%Y%m%d') FROM discrepancies "
                          f"WHERE class IN ({names}) AND length(mpxn) {length} ORDER BY line")
        count = 0
        while True:
            rows = cur.fetchmany(DTC_FILE_MAX)
            if not rows:
                break
            file_id = f"RC{file_number():08d}"
            text = dtc.render(flow, file_id, created,
                              [{"mpxn": m, "flag": f, "effective_from": d} for m, f, d in rows],
                              from_participant=config.dtc_from_participant,
                              to_participant=config.dtc_electricity_to if flow is dtc.D0350 else config.dtc_gas_to,
                              test_flag=config.dtc_test_flag)
            name = f"{flow.flow_version}_{file_id}.dtc"
            (folder / name).write_text(text)
            files.append(name)
            count += len(rows)
        summary.corrections[flow.name] = count
    return files


def _summary_dict(s: Summary, extract: Path, today: date, correct: list[str]) -> dict[str, Any]:
    return {"extract": extract.name, "today": today.isoformat(), "rows": s.rows, "reconciled": s.reconciled,
            "bad_rows": s.bad_rows, "duplicates": s.duplicates, "unverified": s.unverified,
            "unverified_means": UNVERIFIED, "evidence": s.evidence,
            "discrepancies": s.discrepancies, "classes": s.classes, "descriptions": CLASSES, "regions": s.regions,
            "ages": s.ages, "corrected_classes": correct, "corrections": s.corrections, "files": s.files,
            "seconds": round(s.seconds, 1)}
