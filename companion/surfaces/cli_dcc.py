"""The DCC's side on the command line (docs/duis.md, docs/devices.md): `companion duis import`,
`companion conflicts` and `companion device`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _certs(cfg: Any) -> list[Any]:
    from companion.config import ConfigError
    from companion.wire.duis import load_certs

    if not cfg.duis_certs:
        raise ConfigError("no DCC certificates: set duis_certs (a PEM file or folder) in the configuration or "
                          "FLAGWISE_DUIS_CERTS, or --certs; unsigned or unverifiable DUIS is never stored")
    return load_certs([cfg.duis_certs])


def cmd_duis_import(args: argparse.Namespace) -> int:
    from companion.service.dcc_view import rederive
    from companion.service.duis_import import DuisIntake, ImportSummary, files, import_files
    from companion.store.smi import Inventory
    from companion.surfaces.cli import _store

    cfg, store = _store(args)
    if args.certs:
        cfg.set("duis_certs", args.certs, "--certs")
    certs = _certs(cfg)
    found, missing = files(args.paths)
    for m in missing:
        print(f"companion duis import: no such file or folder: {m}", file=sys.stderr)
    summary = ImportSummary()
    changed = [0]

    def derive(mpxns: set[str]) -> None:  # after each batch: the memory of a run does not grow with it
        changed[0] += rederive(store, cfg, mpxns)

    import_files(DuisIntake(Inventory(store), certs, changed=derive), found, summary)
    for source, reason, detail in summary.refusals:
        print(f"refused {source}: {reason}: {detail[:200]}")
    refused = ", ".join(f"{n} {r}" for r, n in sorted(summary.refused.items()))
    print(f"duis import: {len(found)} files: {summary.stored} stored, {summary.already} already stored, "
          f"{summary.refused_total} refused{f' ({refused})' if refused else ''}; {summary.devices} device "
          f"statements, {len(summary.mpxns)} meter points, {changed[0]} flags changed")
    return 1 if summary.refused_total or missing else 0


def cmd_conflicts(args: argparse.Namespace) -> int:
    from companion.service.dcc_view import conflicts, write_requests
    from companion.surfaces.cli import _store

    cfg, store = _store(args)
    found = conflicts(store, cfg, args.cls)
    written: list[Path] = []
    if args.requests:
        written = write_requests(store, cfg, found, Path(args.requests))
    if args.json:
        print(json.dumps({"conflicts": [c.as_dict() for c in found],
                          "requests": [str(p) for p in written]}, indent=1))
        return 0
    for c in found:
        req = f"  -> {c.request}" if c.request else ""
        print(f"{c.mpxn}  {c.cls}  {c.device_id or '-'}  since {c.since}{req}")
        print(f"    field: {_side(c.field)}")
        print(f"    dcc:   {_side(c.dcc)}")
        print(f"    fix:   {c.fix}")
    by: dict[str, int] = {}
    for c in found:
        by[c.cls] = by.get(c.cls, 0) + 1
    counts = ", ".join(f"{n} {k}" for k, n in sorted(by.items()))
    print(f"conflicts: {len(found)}{f' ({counts})' if counts else ''}"
          + (f"; {len(written)} requests drafted in {args.requests}" if args.requests else ""))
    return 0


def cmd_device(args: argparse.Namespace) -> int:
    from companion.service.device_view import view
    from companion.surfaces.cli import _store

    _, store = _store(args)
    try:
        v = view(store, args.eui)
    except ValueError as exc:
        print(f"companion device: {exc}", file=sys.stderr)
        return 2
    if v is None:
        print(f"{args.eui}: nothing known (no survey lists it, the DCC's inventory does not name it)")
        return 1
    if args.json:
        print(json.dumps(v, indent=1))
        return 0
    print(f"{v['device_id']} {v['type'] or ''}: {v['condition']}" + (f" since {v['since']}" if v["since"] else ""))
    print(f"  why: {v['why']} ({v['evidence']})")
    for p in v["placements"]:
        until = p["until"] or "now"
        print(f"  at {p['mpxn'] or '-'} hub {p['chf'] or '-'} from {p['since']} to {until} "
              f"({p['source']}: {', '.join(p['evidence'][:3])})")
    return 0


def cmd_triage(args: argparse.Namespace) -> int:
    from companion.service.triage_run import triage_file
    from companion.surfaces.cli import _store

    _, store = _store(args)
    got = triage_file(store, Path(args.alerts), Path(args.out))
    v = ", ".join(f"{n} {k}" for k, n in got["verdicts"].items() if n)
    print(f"triage: {got['alerts']} alerts answered ({v or 'none'}); {got['bad_rows']} bad rows "
          f"(in {Path(args.out) / 'bad_rows.csv'}); {Path(args.out) / 'triage.csv'} and triage.parquet")
    return 1 if got["bad_rows"] else 0


def cmd_stock(args: argparse.Namespace) -> int:
    from companion.service.stock import stock
    from companion.surfaces.cli import _store

    _, store = _store(args)
    s = stock(store, Path(args.out), args.silent_days)
    acts = ", ".join(f"{n} {a}" for a, n in s["actions"].items() if n)
    conds = ", ".join(f"{n} {c}" for c, n in s["conditions"].items() if n)
    print(f"stock: {s['devices']} devices ({conds or 'none'}); act first on: {acts or 'nothing'}; "
          f"{Path(args.out) / 'stock.html'}, stock.csv, stock.parquet")
    return 0


def _side(d: dict[str, Any]) -> str:
    if not d:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in d.items() if v not in (None, [], "") and k != "message_seq")


def add_parsers(sub: Any, common: Any) -> None:
    d = sub.add_parser("duis", help="the DCC's side: signed DUIS messages (docs/duis.md)")
    ds = d.add_subparsers(dest="action", required=True)
    di = ds.add_parser("import", help="import DUIS messages (8.2 inventory responses, DCC alerts) from files or "
                                      "folders; each verified against duis_certs; exit 1 if any was refused")
    common(di)
    di.add_argument("paths", nargs="+", metavar="PATH")
    di.add_argument("--certs", help="PEM file or folder of the DCC's certificates (default: duis_certs)")
    di.set_defaults(func=cmd_duis_import)

    dv = sub.add_parser("device", help="where a smart device is, and in what condition, from both sources")
    common(dv)
    dv.add_argument("eui", metavar="EUI")
    dv.add_argument("--json", action="store_true")
    dv.set_defaults(func=cmd_device)

    tr = sub.add_parser("triage", help="network operators' alerts: was a SMETS2 system expected there then "
                                       "(docs/triage.md)")
    common(tr)
    tr.add_argument("alerts", metavar="ALERTS", help="a .csv or .parquet file: mpan, device_id, time[, alert_code]")
    tr.add_argument("--out", required=True, metavar="DIR", help="triage.csv, triage.parquet and bad_rows.csv go here")
    tr.set_defaults(func=cmd_triage)

    st = sub.add_parser("stock", help="every smart device by condition, from both sources (CSV, Parquet, HTML)")
    common(st)
    st.add_argument("--out", required=True, metavar="DIR")
    st.add_argument("--silent-days", type=int, default=30, metavar="N",
                    help="installed and silent for more than N days is a class to act on (default 30)")
    st.set_defaults(func=cmd_stock)

    c = sub.add_parser("conflicts", help="where the field and the DCC's inventory disagree, and the fix")
    common(c)
    c.add_argument("--json", action="store_true")
    c.add_argument("--class", dest="cls", metavar="CLASS", help="only this class")
    c.add_argument("--requests", metavar="DIR", help="draft the corrective DUIS requests into DIR (unsigned)")
    c.set_defaults(func=cmd_conflicts)
