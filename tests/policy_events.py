"""Events for policy tests, built as the companion's dataclasses (the policy is pure)."""

from __future__ import annotations

import hashlib

from companion.wire.event import Device, Event, Evidence, Hub, Override, Wan

MPAN = "1312345678907"
MPRN = "1234567890"
DAY = 86400
T0 = 1795824000  # 2026-11-28T00:00:00Z


def hub(generation="SMETS2", dcc=True, gpf=True, chf="00-1B-C5-0C-00-00-00-01") -> Hub:
    return Hub(chf=chf, generation=generation, gpf="00-1B-C5-0C-00-00-00-02" if gpf else None, dcc=dcc)


def meter(kind="ESME", status="Commissioned", mpxn=None, answered=True, n=0x10) -> Device:
    return Device(eui=f"00-1B-C5-0C-00-00-00-{n:02X}", type=kind, status=status,
                  mpxn=mpxn or (MPAN if kind == "ESME" else MPRN), answered=answered)


def event(etype, when, devices=(), *, hub_=None, wan=True, mpans=(MPAN,), mprns=(), device="hh1",
          counter=1, override=None, no_hub=False) -> Event:
    eid = hashlib.sha256(f"{device}/{counter}/{etype}/{when}".encode()).digest()[:16]
    return Event(
        id=eid, type=etype, mpans=tuple(mpans), mprns=tuple(mprns), job=f"J{counter}",
        installer=f"I-{device}", time=when + 5, counter=counter, firmware="0.1.0",
        evidence=Evidence(
            read_time=when,
            hub=None if no_hub else (hub_ or hub()),
            wan=None if no_hub else Wan(connected=wan),
            devices=tuple(devices),
        ),
        override=Override(override, ("wan_down",)) if override else None,
    )
