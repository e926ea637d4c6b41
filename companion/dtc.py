"""DTC flow files: a generic writer, and the flag flows defined as data.

A file is plain text, one group a line, fields separated by `|` with a trailing `|`:
a ZHV header, the flow's groups, a ZPT trailer with the group count (ZHV and ZPT not
counted). The D0350 body layout was not found in a public source: the electricity and gas
groups below are ASSUMED (docs/flag-policy.md) and kept here as data, to be corrected
against the Data Transfer Catalogue without touching the writer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Flow:
    name: str  # "electricity" or "gas"
    flow_version: str  # ZHV field 3, e.g. D0350001
    from_role: str  # 1 character
    to_role: str  # 1 character
    group: str  # the group id of one flag change (ASSUMED)
    fields: tuple[str, ...]  # the flag-change keys that fill the group, in order (ASSUMED)
    assumed: bool = True


# DCC (role Z, participant DCCO) to the MPAS (role P): "Notification of DCC Services at
# Metering Point". Group id and field order assumed: MPAN core (J0003), flag (J1833?),
# effective-from date.
D0350 = Flow("electricity", "D0350001", "Z", "P", "350", ("mpxn", "flag", "effective_from"))
# DCC to Xoserve: the flag of XRN 5142 travels in the DXI file, record E46; layout assumed.
GAS = Flow("gas", "DXIE4601", "Z", "X", "E46", ("mpxn", "flag", "effective_from"))
FLOWS = {"electricity": D0350, "gas": GAS}


def _field(value: object) -> str:
    s = "" if value is None else str(value)
    if "|" in s or "\n" in s:
        raise ValueError(f"DTC field may not contain '|' or a newline: {s!r}")
    return s


def line(fields: Sequence[object]) -> str:
    return "|".join(_field(f) for f in fields) + "|"


def render(flow: Flow, file_id: str, created: datetime, changes: Sequence[dict[str, Any]], *,
           from_participant: str, to_participant: str, test_flag: str = "OPER",
           sending_app: str = "FLAGWISE") -> str:
    if not 1 <= len(file_id) <= 10:
        raise ValueError("DTC file id must be 1 to 10 characters")
    stamp = created.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S")
    lines = [line(["ZHV", file_id, flow.flow_version, flow.from_role, from_participant, flow.to_role,
                   to_participant, stamp, sending_app, "", "", test_flag])]
    for ch in changes:
        values = []
        for key in flow.fields:
            v = ch.get(key)
            if key == "effective_from" and v:
                v = v.replace("-", "")  # YYYY-MM-DD -> YYYYMMDD
            values.append(v)
        lines.append(line([flow.group, *values]))
    lines.append(line(["ZPT", file_id, len(changes), "", 1, stamp]))
    return "\n".join(lines) + "\n"


def write_atomically(directory: Path, name: str, text: str) -> Path:
    """The file appears whole or not at all: write beside, fsync, rename, fsync the folder."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    tmp = directory / f".{name}.tmp"
    with open(tmp, "w", encoding="ascii", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return final


def parse(text: str) -> dict[str, Any]:
    """Read a DTC file back (tests, replay): header, groups, trailer; checks the count."""
    rows = [ln[:-1].split("|") for ln in text.splitlines() if ln]
    if not rows or rows[0][0] != "ZHV" or rows[-1][0] != "ZPT":
        raise ValueError("not a DTC file: ZHV ... ZPT expected")
    groups = rows[1:-1]
    if int(rows[-1][2]) != len(groups):
        raise ValueError(f"ZPT group count {rows[-1][2]} but {len(groups)} groups")
    if rows[0][1] != rows[-1][1]:
        raise ValueError("ZHV and ZPT file ids differ")
    return {"header": rows[0], "groups": groups, "trailer": rows[-1]}
