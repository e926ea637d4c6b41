"""Alert triage against the store (docs/triage.md): one alert, a request of up to 1,000, or a file
of any size (CSV or Parquet, read and written in batches: memory does not grow with the file).
The rules are pure (companion/triage.py)."""

from __future__ import annotations

import csv
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


class Triage:
    """Answers alerts; keeps the evidence of the latest meter points and devices it read."""

    def __init__(self, store: Store, cache: int = 4096):
        self.store = store
        self.inv = Inventory(store)
        self._sites: OrderedDict[str, tuple[list[Any], list[Any]]] = OrderedDict()
        self._devices: OrderedDict[str, tuple[list[Any], list[Any]]] = OrderedDict()
        self._cache = cache

    def _get(self, memo: OrderedDict[str, Any], key: str, load: Any) -> Any:
        if key in memo:
            memo.move_to_end(key)
            return memo[key]
        value = memo[key] = load(key)
        if len(memo) > self._cache:
            memo.popitem(last=False)
        return value

    def answer(self, alert: triage.Alert) -> dict[str, Any]:
        events, site_facts = self._get(self._sites, alert.mpan, lambda m: (
            [e for _, _, e in self.store.events_for(m)], self.inv.for_mpxn(m)))
        dev_events, dev_facts = self._get(self._devices, alert.device_id, lambda d: (
            [e for _, _, e in self.store.events_for_device(d)], self.inv.history(d)))
        return triage.triage(alert, events, site_facts, dev_events, dev_facts)

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
                batch: int = 50_000) -> dict[str, Any]:
    """Every alert of the file answered into out/triage.csv and out/triage.parquet (each input
    row's columns, then ADDED), bad rows into out/bad_rows.csv with their line and why. Files are
    written under a temporary name and renamed when complete (nothing half-written)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    now = time.time() if now is None else now
    if source.suffix.lower() not in (".csv", ".parquet"):
        raise CompanionError(f"{source}: give a .csv or .parquet file of alerts")
    if not source.is_file():
        raise CompanionError(f"no such file: {source}")
    out.mkdir(parents=True, exist_ok=True)
    t = Triage(store)
    counts: dict[str, int] = {v: 0 for v in triage.VERDICTS}
    bad = 0
    tmp_csv, tmp_pq, tmp_bad = (out / ".triage.csv.part", out / ".triage.parquet.part", out / ".bad_rows.csv.part")
    writer: Any = None
    names: list[str] = []
    try:
        with tmp_csv.open("w", newline="") as fc, tmp_bad.open("w", newline="") as fb:
            wc, wb = csv.writer(fc), csv.writer(fb)
            wb.writerow(["line", "field", "error"])
            pending: list[tuple[dict[str, Any], triage.Alert]] = []

            def flush(last: bool = False) -> None:
                # A batch is answered in meter point order (each meter point's evidence read once
                # a batch), and written in the file's order.
                nonlocal writer
                answers: dict[int, dict[str, Any]] = {}
                for i in sorted(range(len(pending)), key=lambda i: (pending[i][1].mpan, pending[i][1].device_id)):
                    answers[i] = t.answer(pending[i][1])
                chunk = []
                for i, (row, _) in enumerate(pending):
                    counts[answers[i]["verdict"]] += 1
                    full = {**{c: row.get(c) for c in names}, **answers[i]}
                    chunk.append(full)
                    wc.writerow([_text(full.get(c)) for c in names + [c for c in ADDED if c not in names]])
                pending.clear()
                writer = _write(pa, pq, writer, tmp_pq, chunk, names, last=last)

            for n, cols, row in _rows(source, batch):
                if not names:
                    names = list(cols)
                    missing = [c for c in ("mpan", "device_id", "time") if c not in names]
                    if missing:
                        raise CompanionError(f"{source}: no column {', '.join(missing)} (the columns are mpan, "
                                             "device_id, time and alert_code)")
                    wc.writerow(names + [c for c in ADDED if c not in names])
                try:
                    pending.append((row, triage.parse_alert(row, now)))
                except triage.AlertError as exc:
                    bad += 1
                    wb.writerow([n, exc.field, str(exc)[:200]])
                    continue
                if len(pending) >= batch:
                    flush()
            if not names:
                raise CompanionError(f"{source}: no alerts (an empty file)")
            flush(last=True)
        tmp_csv.replace(out / "triage.csv")
        tmp_pq.replace(out / "triage.parquet")
        tmp_bad.replace(out / "bad_rows.csv")
    finally:
        if writer is not None:
            writer.close()
        for p in (tmp_csv, tmp_pq, tmp_bad):
            p.unlink(missing_ok=True)
    return {"alerts": sum(counts.values()), "bad_rows": bad, "verdicts": counts}


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _write(pa: Any, pq: Any, writer: Any, path: Path, chunk: list[dict[str, Any]], names: list[str],
           last: bool = False) -> Any:
    cols = names + [c for c in ADDED if c not in names]
    fields = [pa.field(c, pa.string()) for c in names if c not in ADDED] + [
        pa.field("verdict", pa.string()), pa.field("smets2_expected", pa.bool_()),
        pa.field("device_is_meter", pa.bool_()), pa.field("since", pa.string()), pa.field("evidence", pa.string())]
    schema = pa.schema(fields)
    if writer is None:
        writer = pq.ParquetWriter(path, schema)
    if chunk:
        data = {c: [(_text(r.get(c)) if r.get(c) is not None else None) if c not in ADDED or c in
                    ("verdict", "since", "evidence") else r.get(c) for r in chunk] for c in cols}
        writer.write_table(pa.table({f.name: data[f.name] for f in fields}, schema=schema))
    if last:
        writer.close()
        return None
    return writer
