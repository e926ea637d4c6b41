"""Make tests/vectors/policy.json: what the bridge's flag policy (companion/policy.py
`observe`) says of one job's evidence for one meter point, over a systematic set of
premises — hub generations and DCC states, WAN up and down, GPF or none, one meter or an
old one left beside a new one in the hub's log, each job type — so that the handheld's
prediction (firmware/agent/predict.py) can be held to it. Deterministic.

Usage: python tools/make_policy_vectors.py
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from companion import policy  # noqa: E402
from companion.wire.event import Device, Event, Evidence, Hub, Wan  # noqa: E402

OUT = ROOT / "tests" / "vectors" / "policy.json"
MPAN, MPRN = "1312345678907", "1234567890"
TYPES = ("install", "commission", "install_and_leave", "removal")
STATUSES = ("Commissioned", "InstalledNotCommissioned", "Decommissioned", "Withdrawn", None)


def _hubs():
    for gen, dcc, gpf in itertools.product(("SMETS2", "SMETS1"), (True, False, None), (True, False)):
        if gen == "SMETS1" and not gpf:
            continue
        yield {"chf": "00-1B-C5-0C-00-00-00-01", "generation": gen, "dcc": dcc,
               "gpf": "00-1B-C5-0C-00-00-00-02" if gpf else None}


def _logs(mpxn: str):
    kind = "ESME" if len(mpxn) == 13 else "GSME"
    other = "GSME" if kind == "ESME" else "ESME"
    yield []  # the meter point is not in the log
    for st, ans in itertools.product(STATUSES, (True, False)):
        yield [{"eui": "00-1B-C5-0C-00-00-00-10", "type": kind, "status": st, "mpxn": mpxn, "answered": ans}]
    # A same-hub exchange: the old meter left in the log, in either order, beside the new one.
    for old, new in itertools.product((("Decommissioned", False), ("Commissioned", False), ("Withdrawn", None)),
                                      (("Commissioned", True), ("InstalledNotCommissioned", True))):
        a = {"eui": "00-1B-C5-0C-00-00-00-10", "type": kind, "status": old[0], "mpxn": mpxn, "answered": old[1]}
        b = {"eui": "00-1B-C5-0C-00-00-00-20", "type": kind, "status": new[0], "mpxn": mpxn, "answered": new[1]}
        yield [a, b]
        yield [b, a]
    # Another fuel's meter with this meter point's number is not its meter.
    yield [{"eui": "00-1B-C5-0C-00-00-00-11", "type": other, "status": "Commissioned", "mpxn": mpxn,
            "answered": True}]


def _event(etype: str, mpxn: str, ev: dict) -> Event:
    hub = None if ev["hub"] is None else Hub(ev["hub"]["chf"], ev["hub"]["generation"], ev["hub"]["gpf"],
                                             dcc=ev["hub"]["dcc"])
    wan = None if ev["wan"] is None else Wan(ev["wan"]["connected"])
    devices = tuple(Device(d["eui"], d["type"], d["status"], d["mpxn"], answered=d["answered"])
                    for d in ev["devices"])
    is_mpan = len(mpxn) == 13
    return Event(bytes(16), etype, (mpxn,) if is_mpan else (), () if is_mpan else (mpxn,), "J", "I", 1, 0, "0",
                 Evidence(1, hub, wan, devices))


def vectors() -> dict:
    """Compact: the hubs and the device logs once each; a case is
    [job type, meter point, hub index (-1: none), WAN up (null: no hub), log index, flag, code]."""
    hubs: list[dict | None] = list(_hubs()) + [None]
    logs: list[list[dict]] = []
    cases = []
    for mpxn in (MPAN, MPRN):
        for log in _logs(mpxn):
            logs.append(log)
            li = len(logs) - 1
            for hi, hub in enumerate(hubs):
                wans = [None] if hub is None else [True, False]
                for wan_up, etype in itertools.product(wans, TYPES):
                    ev = {"hub": hub, "wan": None if wan_up is None else {"connected": wan_up},
                          "devices": [] if hub is None else log}
                    obs = policy.observe(_event(etype, mpxn, ev), mpxn)
                    cases.append([etype, mpxn, -1 if hub is None else hi, wan_up, li, obs.flag, obs.code])
    return {"hubs": [h for h in hubs if h is not None], "logs": logs, "cases": cases}


def text() -> str:
    """policy.json as committed (tests/test_vectors_fresh.py holds it so)."""
    data = {"comment": "companion.policy.observe over systematic evidence: (job type, meter point, evidence) "
                       "-> flag and reason code; the handheld's agent.predict must agree on every case. A case "
                       "is [type, mpxn, hub index into hubs (-1: no hub), WAN connected (null: no hub), log "
                       "index into logs, flag, code]. Made by tools/make_policy_vectors.py.",
            "words": policy.CODES, **vectors()}
    return json.dumps(data, separators=(",", ":")) + "\n"


def main() -> None:
    OUT.write_text(text())
    print(f"{len(json.loads(OUT.read_text())['cases'])} cases in {OUT}")


if __name__ == "__main__":
    main()
