"""The event payload schema (docs/wire.md), checked strictly on the way in.

The firmware builds the same map (firmware/agent/event.py); tests/vectors/events*.json
hold the shared cases both implementations must agree on.
"""

from __future__ import annotations

from companion.wire.cbor import summary as _summary

from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any, Callable

from companion import ids
from companion.wire.cbor import loads_strict
from companion.errors import (
    InvalidDeviceIdError,
    InvalidMpxnError,
    SchemaError,
    UnknownEventTypeError,
    UnsupportedVersionError,
)

VERSION = 2  # what the handheld writes; v1 (no hub clock) is still accepted
VERSIONS = (1, 2)
EVENT_TYPES = ("install", "commission", "install_and_leave", "removal")
DEVICE_TYPES = ("ESME", "GSME", "PPMID", "HCALCS", "IHD", "CAD")
STATUSES = (
    "Pending", "Whitelisted", "InstalledNotCommissioned", "Commissioned",
    "Decommissioned", "Withdrawn", "Suspended", "Recovery", "Recovered",
)
GENERATIONS = ("SMETS1", "SMETS2")
ID_LEN = 16
MAX_MPXNS = 4
MAX_DEVICES = 16
MAX_TEXT = 40
MAX_SHORT = 32
MAX_REASON = 200
MAX_CHECKS = 8
MAX_UINT = (1 << 63) - 1
# Payload keys 0..11 (docs/wire.md)
PAYLOAD_NAMES = ("v", "id", "type", "mpans", "mprns", "job", "installer", "time", "counter",
                 "firmware", "evidence", "override")


@dataclass(frozen=True)
class Hub:
    chf: str
    generation: str
    gpf: str | None = None
    version: str | None = None
    firmware: str | None = None
    dcc: bool | None = None


@dataclass(frozen=True)
class Wan:
    connected: bool
    signal: int | None = None


@dataclass(frozen=True)
class Device:
    eui: str
    type: str
    status: str | None = None
    mpxn: str | None = None
    serial: str | None = None
    smets: str | None = None
    mode: str | None = None
    firmware: str | None = None
    answered: bool | None = None


@dataclass(frozen=True)
class Evidence:
    read_time: int
    hub: Hub | None
    wan: Wan | None
    devices: tuple[Device, ...]
    hub_time: int | None = None  # v2: the hub's clock (UTC from the DCC) when the survey was read

    @property
    def when(self) -> int:
        """The time the survey is dated and ordered by: the hub's clock where it gave one,
        else the handheld's (docs/flag-policy.md "Order")."""
        return self.read_time if self.hub_time is None else self.hub_time

    @property
    def clock_skew(self) -> int | None:
        """Handheld clock minus hub clock at the survey, in seconds; None without a hub time."""
        return None if self.hub_time is None else self.read_time - self.hub_time


@dataclass(frozen=True)
class Override:
    reason: str
    checks: tuple[str, ...]


@dataclass(frozen=True)
class Event:
    id: bytes
    type: str
    mpans: tuple[str, ...]
    mprns: tuple[str, ...]
    job: str
    installer: str
    time: int
    counter: int
    firmware: str
    evidence: Evidence
    override: Override | None = None
    version: int = VERSION

    @property
    def id_hex(self) -> str:
        return self.id.hex()

    @property
    def mpxns(self) -> tuple[str, ...]:
        return self.mpans + self.mprns


# --- field checks ---------------------------------------------------------------

def _text(path: str, v: Any, hi: int = MAX_SHORT) -> str:
    if not isinstance(v, str) or not 1 <= len(v) <= hi:
        raise SchemaError(f"{path}: text of 1 to {hi} characters required")
    return v


def _uint(path: str, v: Any) -> int:
    if type(v) is not int or not 0 <= v <= MAX_UINT:
        raise SchemaError(f"{path}: integer 0..{MAX_UINT} required")
    return v


def _bool(path: str, v: Any) -> bool:
    if type(v) is not bool:
        raise SchemaError(f"{path}: true or false required")
    return v


def _signal(path: str, v: Any) -> int:
    if type(v) is not int or not -200 <= v <= 200:
        raise SchemaError(f"{path}: integer -200..200 required")
    return v


def _eui(path: str, v: Any) -> str:
    try:
        return ids.eui64_text(v)
    except ValueError as exc:
        raise InvalidDeviceIdError(f"{path}: {exc}") from None


def _mpxn(path: str, v: Any) -> str:
    try:
        return ids.check_mpxn(v)
    except ValueError as exc:
        raise InvalidMpxnError(f"{path}: {exc}") from None


def _one_of(allowed: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(path: str, v: Any) -> str:
        if v not in allowed:
            raise SchemaError(f"{path}: one of {', '.join(allowed)} required, got {_summary(v)}")
        return str(v)

    return check


# Sub-maps: key -> (name, check, required). Optional entries are absent when unknown.
_Spec = dict[int, tuple[str, Callable[[str, Any], Any], bool]]
_HUB: _Spec = {
    0: ("chf", _eui, True), 1: ("gpf", _eui, False), 2: ("generation", _one_of(GENERATIONS), True),
    3: ("version", _text, False), 4: ("firmware", _text, False), 5: ("dcc", _bool, False),
}
_WAN: _Spec = {0: ("connected", _bool, True), 1: ("signal", _signal, False)}
_DEVICE: _Spec = {
    0: ("eui", _eui, True), 1: ("type", _one_of(DEVICE_TYPES), True),
    2: ("status", _one_of(STATUSES), False), 3: ("mpxn", _mpxn, False),
    4: ("serial", _text, False), 5: ("smets", _text, False), 6: ("mode", _text, False),
    7: ("firmware", _text, False), 8: ("answered", _bool, False),
}


def _map(path: str, v: Any) -> Mapping[Any, Any]:
    if type(v) is not dict and not isinstance(v, Mapping):
        raise SchemaError(f"{path}: a map required")
    return v


def _keys(path: str, m: Mapping[Any, Any], allowed: Container[Any]) -> None:
    for k in m:
        if k not in allowed:
            raise SchemaError(f"{path}: unknown key {_summary(k)}")


def _submap(path: str, spec: _Spec, v: Any) -> dict[str, Any]:
    m = v if type(v) is dict else _map(path, v)
    _keys(path, m, spec)
    out = {}
    for key, (name, check, required) in spec.items():
        if key in m:
            try:
                out[name] = check(name, m[key])
            except SchemaError as exc:  # the path is built only for the error
                raise type(exc)(f"{path}.{exc}") from None
        elif required:
            raise SchemaError(f"{path}.{name}: required")
    return out


def _list(path: str, v: Any, hi: int) -> tuple[Any, ...]:
    if not isinstance(v, (list, tuple)) or len(v) > hi:
        raise SchemaError(f"{path}: a list of at most {hi} required")
    return tuple(v)


def _mpxns(path: str, v: Any, check: Callable[[object], str]) -> tuple[str, ...]:
    out: list[str] = []
    for i, x in enumerate(_list(path, v, MAX_MPXNS)):
        try:
            check(x)
        except ValueError as exc:
            raise InvalidMpxnError(f"{path}[{i}]: {exc}") from None
        if x in out:
            raise InvalidMpxnError(f"{path}[{i}]: repeated {x}")
        out.append(x)
    return tuple(out)


def _evidence(v: Any, version: int) -> Evidence:
    m = _map("evidence", v)
    _keys("evidence", m, range(5 if version >= 2 else 4))
    for key in range(4):
        if key not in m:
            raise SchemaError(f"evidence: key {key} required")
    hub = None if m[1] is None else Hub(**_submap("evidence.hub", _HUB, m[1]))
    wan = None if m[2] is None else Wan(**_submap("evidence.wan", _WAN, m[2]))
    devices = tuple(
        Device(**_submap(f"evidence.devices[{i}]", _DEVICE, d))
        for i, d in enumerate(_list("evidence.devices", m[3], MAX_DEVICES))
    )
    hub_time = _uint("evidence.hub_time", m[4]) if 4 in m else None
    return Evidence(_uint("evidence.read_time", m[0]), hub, wan, devices, hub_time)


def _override(v: Any) -> Override:
    m = _map("override", v)
    _keys("override", m, range(2))
    checks = _list("override.checks", m.get(1), MAX_CHECKS)
    if not checks:
        raise SchemaError("override.checks: at least one check code required")
    return Override(
        _text("override.reason", m.get(0), MAX_REASON),
        tuple(_text(f"override.checks[{i}]", c) for i, c in enumerate(checks)),
    )


def event_from_map(m: Any) -> Event:
    m = _map("payload", m)
    version = m.get(0)
    if type(version) is not int or version not in VERSIONS:
        raise UnsupportedVersionError(f"payload version {_summary(version)} is not supported "
                                      f"(want {' or '.join(map(str, VERSIONS))})")
    _keys("payload", m, range(12))
    for key, name in enumerate(PAYLOAD_NAMES[:11]):
        if key not in m:
            raise SchemaError(f"{name}: required (payload key {key})")
    etype = m[2]
    if etype not in EVENT_TYPES:
        raise UnknownEventTypeError(f"type: unknown event type {_summary(etype)}")
    eid = m[1]
    if not isinstance(eid, bytes) or len(eid) != ID_LEN:
        raise SchemaError(f"id: {ID_LEN} bytes required")
    mpans = _mpxns("mpans", m[3], ids.check_mpan)
    mprns = _mpxns("mprns", m[4], ids.check_mprn)
    if not mpans and not mprns:
        raise InvalidMpxnError("mpans/mprns: the event names no meter point (MPAN or MPRN)")
    return Event(
        id=eid,
        type=etype,
        mpans=mpans,
        mprns=mprns,
        job=_text("job", m[5], MAX_TEXT),
        installer=_text("installer", m[6], MAX_TEXT),
        time=_uint("time", m[7]),
        counter=_uint("counter", m[8]),
        firmware=_text("firmware", m[9]),
        evidence=_evidence(m[10], version),
        override=_override(m[11]) if 11 in m else None,
        version=version,
    )


def parse_payload(payload: bytes) -> Event:
    return event_from_map(loads_strict(payload, "payload"))
