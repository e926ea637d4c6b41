"""The reconcile engine as it stood before the streaming rewrite (flagwise 0.2 as of commit
11a1f71), kept as the reference the current engine's outputs are compared with row for row
(tests/test_reconcile.py). Not used by the product."""

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
    "no_evidence": "no signed evidence for this meter point: kept apart, never corrected",
    "legacy_value": "S or W, legacy values that MP077 replaced",
    "active_after_removal": "A, but the smart meter was removed",
    "active_not_commissioned": "A, but the smart metering system was never commissioned",
    "blank_after_install": "no flag, but a smart meter was installed",
    "non_active_not_propagated": "N in the evidence, never in registration",
    "commissioned_not_propagated": "A in the evidence, I or N in registration",
    "installed_not_propagated": "I in the evidence, N in registration",
    "wrong_effective_date": "the right flag, from the wrong date",
}
CORRECTABLE = tuple(c for c in CLASSES if c not in ("wrong_check_digit", "no_evidence"))
REGISTERED_FLAGS = ("A", "S", "W", "I", "N", "")
REQUIRED = ("mpxn", "flag", "effective_from")
CHUNK = 200_000  # evidence rows a chunk, streamed from the store
DTC_FILE_MAX = 10_000  # corrections a DTC file
_W = (3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43)  # MPAN core check digit weights


class ReconcileError(CompanionError):
    pass


@dataclass
class Summary:
    rows: int = 0
    reconciled: int = 0
    bad_rows: int = 0
    duplicates: int = 0
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


def _check_digit_sql(col: str) -> str:
    # TRY_CAST: the engine may evaluate this for rows the guard before it excludes.
    terms = " + ".join(f"TRY_CAST(substr({col}, {i + 1}, 1) AS INTEGER) * {w}" for i, w in enumerate(_W))
    return f"coalesce((({terms}) % 11 % 10) = TRY_CAST(substr({col}, 13, 1) AS INTEGER), true)"


# Names the reconcile uses itself: an extract's extra column of one of these names is kept
# as extract_<name>.
_RESERVED = {"line", "mpxn", "flag", "effective_from", "registered_flag", "registered_from", "evidence_flag",
             "evidence_from", "class", "event_id", "reason", "raw_from", "bad_check", "nth", "problem", "code"}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _source(con: Any, path: Path) -> tuple[str, list[str]]:
    """The extract as a DuckDB relation of text columns `line` (the file's line number for CSV,
    the row number + 1 for Parquet, the header being line 1), `mpxn`, `flag`, `effective_from`
    (matched whatever their case), then the extra columns; the extra columns' names."""
    p = str(path).replace("'", "''")
    if path.suffix.lower() in (".parquet", ".pq"):
        raw = f"(SELECT file_row_number + 2 AS __line, * EXCLUDE (file_row_number) FROM " \
              f"read_parquet('{p}', file_row_number = true))"
    else:
        # Every column as text (a flag or a date is judged here, not guessed by the reader);
        # rows the reader cannot split are kept apart with their line (store_rejects).
        raw = (f"(SELECT row_number() OVER () + 1 AS __line, * FROM read_csv('{p}', header = true, "
               f"all_varchar = true, ignore_errors = true, store_rejects = true, null_padding = false, "
               f"parallel = false))")
    try:
        cols = [d[0] for d in con.execute(f"SELECT * FROM {raw} LIMIT 0").description][1:]
    except Exception as exc:  # duckdb.Error: an unreadable file
        raise ReconcileError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}") from None
    by_name = {c.strip().lower(): c for c in reversed(cols)}  # the first of a name, whatever its case
    missing = [c for c in REQUIRED if c not in by_name]
    if missing:
        raise ReconcileError(f"{path}: the extract needs columns {', '.join(REQUIRED)}; missing {', '.join(missing)} "
                             f"(found: {', '.join(c[:30] for c in cols[:12])})")
    used = {by_name[c] for c in REQUIRED}
    select = ["__line AS line"] + [f"CAST({_ident(by_name[c])} AS VARCHAR) AS {c}" for c in REQUIRED]
    extras: list[str] = []
    for c in cols:
        if c in used:
            continue
        name = c
        while name.lower() in _RESERVED or name in extras:
            name = "extract_" + name
        extras.append(name)
        select.append(f"CAST({_ident(c)} AS VARCHAR) AS {_ident(name)}")
    return f"(SELECT {', '.join(select)} FROM {raw})", extras


def _load_evidence(con: Any, rows: Iterable[tuple[Any, ...]], total: int, progress: Any) -> int:
    """Stream the store's flags into DuckDB in chunks (bounded memory on both sides)."""
    import pyarrow as pa

    con.execute("CREATE TABLE evidence (mpxn VARCHAR, flag VARCHAR, effective_from VARCHAR, event_id VARCHAR, "
                "reason VARCHAR, code VARCHAR)")
    task = progress.add_task("evidence from the store", total=total or None)
    names = ["mpxn", "flag", "effective_from", "event_id", "reason", "code"]
    n = 0
    chunk: list[tuple[Any, ...]] = []

    def flush() -> None:
        nonlocal chunk
        if chunk:
            con.register("chunk", pa.table({k: [r[i] for r in chunk] for i, k in enumerate(names)}))
            con.execute("INSERT INTO evidence SELECT * FROM chunk")
            con.unregister("chunk")
            progress.advance(task, len(chunk))
            chunk = []

    for row in rows:
        chunk.append(row)
        n += 1
        if len(chunk) >= CHUNK:
            flush()
    flush()
    return n


def reconcile(extract: Path, evidence_rows: Callable[[], tuple[int, Iterable[tuple[Any, ...]]]], out: Path, *,
              config: Config, correct: Iterable[str] = (), today: date | None = None, progress: bool = False,
              memory_limit: str = "2GB", threads: int | None = None,
              file_number: Callable[[], int] | None = None) -> Summary:
    """Reconcile `extract` against the evidence; write the outputs into `out` (a new folder,
    or an empty one). evidence_rows() -> (how many, rows of (mpxn, flag, effective_from,
    event_id, reason, code)). file_number() -> the next correction file's number, never used
    before (the store's sequence: two runs never write different files with one id); required
    when `correct` names any class."""
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
        return _run(duckdb, extract, evidence_rows, out, config, correct, today, progress, memory_limit, threads, t0,
                    file_number)
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


def _run(duckdb: Any, extract: Path, evidence_rows: Callable[[], tuple[int, Iterable[tuple[Any, ...]]]], out: Path,
         config: Config, correct: list[str], today: date, progress: bool, memory_limit: str, threads: int | None,
         t0: float, file_number: Callable[[], int] | None = None) -> Summary:
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{str(out / '.spill').replace(chr(39), '')}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    summary = Summary()
    with _progress(progress) as bar:
        stage = bar.add_task("reconcile", total=6)
        rel, extra = _source(con, extract)
        quoted = [_ident(c) for c in extra]
        extra_sel = "".join(", " + c for c in quoted)
        rejects = _read_extract(duckdb, con, rel, extra_sel)
        bar.advance(stage)
        _judge(con)
        bar.advance(stage)
        # 2. The evidence.
        total, rows_iter = evidence_rows()
        summary.evidence = _load_evidence(con, rows_iter, total, bar)
        bar.advance(stage)
        # 2b. Every valid first row of a meter point, classified.
        _classify(con, quoted, extra_sel)
        bar.advance(stage)
        _count(con, summary, rejects)
        # 3. The outputs: discrepancies (CSV, Parquet), bad rows, corrections, the report.
        _write_rows(con, out, rejects)
        bar.advance(stage)
        _tally(con, summary, today)
        summary.files = _corrections(con, out, correct, config, summary, file_number)
        bar.advance(stage)
    con.close()
    summary.seconds = time.monotonic() - t0
    facts = _summary_dict(summary, extract, today, correct)
    (out / "summary.json").write_text(json.dumps(facts, indent=1) + "\n")
    from companion.render import reconcile_html

    (out / "report.html").write_text(reconcile_html(facts))
    return summary


def _read_extract(duckdb: Any, con: Any, rel: str, extra_sel: str) -> list[Any]:
    """The extract as table `rows`; -> the lines the CSV reader could not split."""
    # 1. The extract, each row judged: its line, its values, and what is wrong with it.
    mp = "trim(mpxn)"
    con.execute(f"""
        CREATE TABLE rows AS
        SELECT line, {mp} AS mpxn, upper(trim(coalesce(flag, ''))) AS flag,
               trim(coalesce(effective_from, '')) AS raw_from,
               coalesce(try_strptime(trim(effective_from), '%Y-%m-%d'),
                        try_strptime(trim(effective_from), '%Y%m%d'))::DATE AS registered_from
               {extra_sel}
        FROM {rel}""")
    # Rows the CSV reader could not split, with their line (one error a line). The rows
    # it read are numbered in order; each unreadable line before a row moves it one on.
    rejects = []
    try:
        rejects = con.execute("SELECT line, min(error_message) FROM reject_errors GROUP BY line "
                              "ORDER BY line").fetchall()
    except duckdb.Error:
        pass
    if rejects:
        con.execute("CREATE TEMP TABLE shifts AS SELECT unnest(?::BIGINT[]) AS t",
                    [[int(r) - j for j, (r, _) in enumerate(rejects, 1)]])
        con.execute("UPDATE rows SET line = line + (SELECT count(*) FROM shifts WHERE t <= rows.line - 1)")
    return rejects


def _judge(con: Any) -> None:
    """Table `judged`: each row with its problem, check digit and rank among valid rows."""
    # Duplicates are counted among valid rows only: a valid row after a bad one for the same
    # meter point is that meter point's first (every input row ends up exactly once: in the
    # reconciliation, as a duplicate, or as a bad row).
    con.execute(f"""
        CREATE TABLE judged AS
        WITH p AS (
          SELECT *,
            CASE
              WHEN mpxn IS NULL OR mpxn = '' THEN 'no mpxn'
              WHEN NOT regexp_full_match(mpxn, '[0-9]{{13}}|[0-9]{{6,10}}')
                THEN 'mpxn is not an MPAN core (13 digits) or an MPRN (6 to 10 digits)'
              WHEN flag NOT IN ('A', 'S', 'W', 'I', 'N', '') THEN 'flag must be one of A S W I N or blank'
              WHEN raw_from <> '' AND registered_from IS NULL THEN 'effective_from must be YYYY-MM-DD or YYYYMMDD'
              WHEN flag <> '' AND raw_from = '' THEN 'a flag needs its effective_from'
            END AS problem
          FROM rows)
        SELECT *,
          length(mpxn) = 13 AND regexp_full_match(mpxn, '[0-9]{{13}}') AND NOT ({_check_digit_sql('mpxn')})
            AS bad_check,
          CASE WHEN problem IS NULL
               THEN row_number() OVER (PARTITION BY mpxn, problem IS NULL ORDER BY line) END AS nth
        FROM p""")
    con.execute("DROP TABLE rows")


def _classify(con: Any, quoted: list[str], extra_sel: str) -> None:
    """Table `discrepancies`: every valid first row of a meter point, classified."""
    # 3. Every valid first row of a meter point, classified.
    con.execute(f"""
        CREATE TABLE discrepancies AS
        WITH j AS (
          SELECT r.line, r.mpxn, r.flag AS registered_flag, r.registered_from, r.bad_check
                 {"".join(", r." + c for c in quoted)},
                 e.flag AS evidence_flag, CAST(e.effective_from AS DATE) AS evidence_from, e.event_id,
                 e.reason, e.code
          FROM judged r LEFT JOIN evidence e ON e.mpxn = r.mpxn
          WHERE r.problem IS NULL AND r.nth = 1),
        c AS (
          SELECT *, CASE
            WHEN bad_check THEN 'wrong_check_digit'
            WHEN evidence_flag IS NULL THEN 'no_evidence'
            WHEN registered_flag IN ('S', 'W') THEN 'legacy_value'
            WHEN registered_flag = 'A' AND evidence_flag = 'N' AND code LIKE 'removed%' THEN 'active_after_removal'
            WHEN registered_flag = 'A' AND evidence_flag IN ('I', 'N') THEN 'active_not_commissioned'
            WHEN registered_flag = '' AND evidence_flag IN ('I', 'A') THEN 'blank_after_install'
            WHEN registered_flag IN ('', 'I') AND evidence_flag = 'N' THEN 'non_active_not_propagated'
            WHEN registered_flag IN ('I', 'N') AND evidence_flag = 'A' THEN 'commissioned_not_propagated'
            WHEN registered_flag = 'N' AND evidence_flag = 'I' THEN 'installed_not_propagated'
            WHEN registered_flag = evidence_flag AND registered_from IS DISTINCT FROM evidence_from
              THEN 'wrong_effective_date'
          END AS class
          FROM j)
        SELECT line, mpxn, registered_flag, registered_from, evidence_flag, evidence_from, class,
               CASE WHEN class IN ('wrong_check_digit', 'no_evidence') THEN NULL ELSE event_id END AS event_id,
               CASE WHEN class = 'wrong_check_digit' THEN 'MPAN core check digit mismatch'
                    WHEN class = 'no_evidence' THEN 'no signed event names this meter point'
                    ELSE reason END AS reason
               {extra_sel}
        FROM c WHERE class IS NOT NULL ORDER BY line""")


def _count(con: Any, summary: Summary, rejects: list[Any]) -> None:
    counts = con.execute("SELECT count(*), count(*) FILTER (WHERE problem IS NULL AND nth = 1), "
                         "count(*) FILTER (WHERE problem IS NOT NULL), "
                         "count(*) FILTER (WHERE problem IS NULL AND nth > 1) FROM judged").fetchone()
    summary.rows = int(counts[0]) + len(rejects)
    summary.reconciled, summary.bad_rows, summary.duplicates = int(counts[1]), int(counts[2]) + len(rejects), \
        int(counts[3])


def _write_rows(con: Any, out: Path, rejects: list[Any]) -> None:
    # 4. The outputs: discrepancies (CSV, Parquet), bad rows, corrections, the report.
    con.execute(f"COPY (SELECT * EXCLUDE (line) FROM discrepancies) TO '{q(out / 'discrepancies.csv')}' "
                "(HEADER, DELIMITER ',')")
    con.execute(f"COPY (SELECT * EXCLUDE (line) FROM discrepancies) TO '{q(out / 'discrepancies.parquet')}' "
                "(FORMAT parquet)")
    con.execute("CREATE TABLE bad AS "
                "SELECT line, left(mpxn, 20) AS mpxn, problem FROM judged WHERE problem IS NOT NULL "
                "UNION ALL SELECT d.line, left(d.mpxn, 20), 'duplicate of line ' || f.line "
                "FROM judged d JOIN judged f ON f.mpxn = d.mpxn AND f.nth = 1 "
                "WHERE d.problem IS NULL AND d.nth > 1 AND f.problem IS NULL")
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
        f"WHERE class NOT IN ('wrong_check_digit', 'no_evidence')) GROUP BY 1").fetchall())
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
            "bad_rows": s.bad_rows, "duplicates": s.duplicates, "evidence": s.evidence,
            "discrepancies": s.discrepancies, "classes": s.classes, "descriptions": CLASSES, "regions": s.regions,
            "ages": s.ages, "corrected_classes": correct, "corrections": s.corrections, "files": s.files,
            "seconds": round(s.seconds, 1)}
