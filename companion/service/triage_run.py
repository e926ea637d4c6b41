"""Alert triage against the store (docs/triage.md): one alert, a request of up to 1,000, or a file
of any size (CSV or Parquet, read and written in batches: memory does not grow with the file).
The rules are pure (companion/triage.py)."""

from __future__ import annotations

import csv
import shutil
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator

from companion import triage
from companion.errors import CompanionError
from companion.store.core import Store
from companion.store.smi import Inventory

ADDED = ("verdict", "smets2_expected", "device_is_meter", "since", "evidence")
MAX_REQUEST = 1000


class _Lru(OrderedDict[Any, Any]):
    """A dict that forgets its least recently written entries past `size`."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        if len(self) > self.size:
            self.popitem(last=False)


class Triage:
    """Answers alerts. Each meter point's evidence is read and sorted once while it is in use
    (load() reads a batch's meter points in a few queries), each device's likewise, and each
    stored event is decoded once however many meter points and devices it names."""

    def __init__(self, store: Store, cache: int = 4096):
        self.store = store
        self.inv = Inventory(store)
        self._sites: _Lru = _Lru(cache)
        self._devices: _Lru = _Lru(cache)
        self._events: _Lru = _Lru(cache * 2)

    def load(self, mpans: list[str]) -> None:
        """Read the evidence of these meter points (those not already held) in a few queries."""
        wanted = sorted({m for m in mpans if m not in self._sites})
        if not wanted:
            return
        if len(wanted) > self._sites.size:
            self._sites.size = len(wanted)  # a batch's meter points are all held while it is answered
        events = self.store.events_for_many(wanted, self._events)
        smi = self.inv.known_mpxns(wanted)
        for m in wanted:
            self._sites[m] = triage.History(m, events[m], self.inv.for_mpxn(m) if m in smi else [])

    def load_devices(self, devices: list[str]) -> None:
        """Read the sightings and the DCC's statements of these devices (those not already
        held) in a few queries."""
        wanted = sorted({d for d in devices if d not in self._devices})
        if not wanted:
            return
        if len(wanted) > self._devices.size:
            self._devices.size = len(wanted)
        events = self.store.events_for_devices(wanted, self._events)
        facts: dict[str, list[Any]] = {d: [] for d in wanted}
        for i in range(0, len(wanted), 500):
            for f in self.inv.for_devices(wanted[i:i + 500]):
                facts.setdefault(f.device_id, []).append(f)
        for d in wanted:
            self._devices[d] = (events[d], facts[d])

    def answer(self, alert: triage.Alert) -> dict[str, Any]:
        site = self._sites.get(alert.mpan)
        if site is None:
            self.load([alert.mpan])
            site = self._sites[alert.mpan]
        device = self._devices.get(alert.device_id)
        if device is None:
            device = self._devices[alert.device_id] = (
                [e for _, _, e in self.store.events_for_device(alert.device_id, known=self._events)],
                self.inv.history(alert.device_id))
        return triage.triage_at(alert, site, *device)

    def request(self, body: Any, now: float | None = None) -> list[dict[str, Any]]:
        """The answers for `{"alerts": [...]}`; CompanionError (a 400) names the alert and field."""
        now = time.time() if now is None else now
        if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
            raise CompanionError('the body must be {"alerts": [{"mpan", "device_id", "time", "alert_code"?}, ...]}')
        alerts = body["alerts"]
        if len(alerts) > MAX_REQUEST:
            raise TooMany(f"{len(alerts)} alerts: at most {MAX_REQUEST} a request (send a file to companion triage)")
        parsed = []
        for i, a in enumerate(alerts):
            if not isinstance(a, dict):
                raise CompanionError(f"alerts[{i}]: an object with mpan, device_id, time")
            try:
                parsed.append(triage.parse_alert(a, now))
            except triage.AlertError as exc:
                raise CompanionError(f"alerts[{i}].{exc}") from None
        self.load([p.mpan for p in parsed])
        self.load_devices([p.device_id for p in parsed])
        return [{**{k: a.get(k) for k in ("mpan", "device_id", "time", "alert_code")}, **self.answer(p)}
                for a, p in zip(alerts, parsed)]


class TooMany(CompanionError):
    reason = "too_many"


def _rows(path: Path, batch: int) -> Iterator[tuple[int, list[str], dict[str, Any]]]:
    """(line or row number, the input's column names, the row) of a CSV or Parquet file, in
    batches; CSV values as text, as written."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".parquet":
        f = pq.ParquetFile(path)
        names = f.schema_arrow.names
        n = 0
        for b in f.iter_batches(batch_size=batch):
            for row in b.to_pylist():
                n += 1
                yield n, names, row
        return
    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 22),
                            convert_options=pacsv.ConvertOptions(column_types={}, strings_can_be_null=False,
                                                                 auto_dict_encode=False))
    names = reader.schema.names
    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 22),
                            convert_options=pacsv.ConvertOptions(
                                column_types={c: "string" for c in names}, strings_can_be_null=False))
    line = 1  # the header
    for b in reader:
        for row in b.to_pylist():
            line += 1
            yield line, names, row


def triage_file(store: Store, source: Path, out: Path, now: float | None = None,
                batch: int = 50_000, memory_limit: str = "512MB") -> dict[str, Any]:
    """Every alert of the file answered into out/triage.csv and out/triage.parquet (each input
    row's columns, then ADDED, in the file's order), bad rows into out/bad_rows.csv with their
    line and why. Files are written under a temporary name and renamed when complete (nothing
    half-written).

    Three passes, none holding the file in memory: the alerts are read and checked in batches
    into a columnar work file; DuckDB sorts them by meter point and time, and each meter point's
    evidence is read once and answers all its alerts; DuckDB puts the answers back beside their
    rows, in the file's order, and writes both outputs."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    now = time.time() if now is None else now
    if source.suffix.lower() not in (".csv", ".parquet"):
        raise CompanionError(f"{source}: give a .csv or .parquet file of alerts")
    if not source.is_file():
        raise CompanionError(f"no such file: {source}")
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".triage-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    tmp_csv, tmp_pq, tmp_bad = (out / ".triage.csv.part", out / ".triage.parquet.part", out / ".bad_rows.csv.part")
    counts: dict[str, int] = {v: 0 for v in triage.VERDICTS}
    try:
        names, bad = _check(source, work / "alerts.parquet", tmp_bad, now, batch)
        con = duckdb.connect()
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute(f"SET temp_directory = '{_q(work / 'spill')}'")
        _answer(con, Triage(store), work, counts, min(batch, 8192), pa, pq)
        cols = [(_ident(c), f"r.{c}" if c in ADDED else f"a.{_ident(c)}") for c in names]
        extra = [(c, f"r.{c}") for c in ADDED if c not in names]
        # The rows and their answers in the file's order, once (spilled to disk past the memory
        # limit), then written twice: CSV (the input's columns, then ADDED) and Parquet (the
        # input's other columns, then ADDED).
        every = ", ".join(f"{e} AS {n}" for n, e in cols + extra)
        con.execute(f"CREATE TABLE done AS SELECT {every} FROM read_parquet('{_q(work / 'alerts.parquet')}') a "
                    f"JOIN read_parquet('{_q(work / 'answers.parquet')}') r USING (__n) ORDER BY __n")
        text = ", ".join(n for n, _ in cols + extra)
        typed = ", ".join([n for n, e in cols if not e.startswith("r.")] + list(ADDED))
        con.execute(f"COPY (SELECT {text} FROM done) TO '{_q(tmp_csv)}' (FORMAT csv, HEADER)")
        con.execute(f"COPY (SELECT {typed} FROM done) TO '{_q(tmp_pq)}' (FORMAT parquet)")
        con.close()
        tmp_csv.replace(out / "triage.csv")
        tmp_pq.replace(out / "triage.parquet")
        tmp_bad.replace(out / "bad_rows.csv")
    except duckdb.Error as exc:
        raise CompanionError(f"triage failed: {str(exc).splitlines()[0][:300]}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for p in (tmp_csv, tmp_pq, tmp_bad):
            p.unlink(missing_ok=True)
    return {"alerts": sum(counts.values()), "bad_rows": bad, "verdicts": counts}


def _check(source: Path, work: Path, bad_path: Path, now: float, batch: int) -> tuple[list[str], int]:
    """Pass 1: every row checked; the good ones (numbered, with their columns as text and the
    parsed alert) into `work`, the bad ones into `bad_path` with their line. -> (the input's
    column names, bad rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names: list[str] = []
    bad = 0
    writer: Any = None
    cols: dict[str, list[Any]] = {}
    keys = ("__n", "__mpan", "__device", "__at")

    def flush() -> None:
        nonlocal writer
        table = pa.table({**{k: cols[k] for k in keys}, **{c: cols[c] for c in names}},
                         schema=pa.schema([("__n", pa.int64()), ("__mpan", pa.string()), ("__device", pa.string()),
                                           ("__at", pa.int64())] + [(c, pa.string()) for c in names]))
        if writer is None:
            writer = pq.ParquetWriter(work, table.schema)
        writer.write_table(table)
        for v in cols.values():
            v.clear()

    try:
        with bad_path.open("w", newline="") as fb:
            wb = csv.writer(fb)
            wb.writerow(["line", "field", "error"])
            for n, row_names, row in _rows(source, batch):
                if not names:
                    names = list(row_names)
                    missing = [c for c in ("mpan", "device_id", "time") if c not in names]
                    if missing:
                        raise CompanionError(f"{source}: no column {', '.join(missing)} (the columns are mpan, "
                                             "device_id, time and alert_code)")
                    if set(names) & set(keys):
                        raise CompanionError(f"{source}: a column may not be named {', '.join(keys)}")
                    cols = {k: [] for k in (*keys, *names)}
                try:
                    alert = triage.parse_alert(row, now)
                except triage.AlertError as exc:
                    bad += 1
                    wb.writerow([n, exc.field, str(exc)[:200]])
                    continue
                cols["__n"].append(n)
                cols["__mpan"].append(alert.mpan)
                cols["__device"].append(alert.device_id)
                cols["__at"].append(alert.at)
                for c in names:
                    v = row.get(c)
                    cols[c].append(None if v is None else _text(v))
                if len(cols["__n"]) >= batch:
                    flush()
            if not names:
                raise CompanionError(f"{source}: no alerts (an empty file)")
            flush()
    finally:
        if writer is not None:
            writer.close()
    return names, bad


def _answer(con: Any, t: Triage, work: Path, counts: dict[str, int], batch: int, pa: Any, pq: Any) -> None:
    """Pass 2: the alerts in meter point order, each batch's evidence read at once, the answers
    into work/answers.parquet."""
    schema = pa.schema([("__n", pa.int64()), ("verdict", pa.string()), ("smets2_expected", pa.bool_()),
                        ("device_is_meter", pa.bool_()), ("since", pa.string()), ("evidence", pa.string())])
    reader = con.sql(f"SELECT __n, __mpan, __device, __at FROM read_parquet('{_q(work / 'alerts.parquet')}') "
                         "ORDER BY __mpan, __at, __n").to_arrow_reader(batch)
    with pq.ParquetWriter(work / "answers.parquet", schema) as writer:
        for b in reader:
            ns, mpans, devices, ats = (b.column(i).to_pylist() for i in range(4))
            t.load(mpans)
            t.load_devices(devices)
            got: dict[str, list[Any]] = {k: [] for k in schema.names}
            got["__n"] = ns
            for m, d, at in zip(mpans, devices, ats):
                a = t.answer(triage.Alert(m, d, at))
                counts[a["verdict"]] += 1
                for k in ADDED:
                    got[k].append(a[k])
            writer.write_table(pa.table(got, schema=schema))


def _q(path: Path) -> str:
    return str(path).replace("'", "''")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
