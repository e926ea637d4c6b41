"""A premises as data: the hub (or none), its WAN, and its devices (docs/han-link.md).

Loaded from TOML. This is the *resource*: a passive description. The emulated hub
(hil/hub.py) is the driver that serves it on a pseudo-terminal and mutates it.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

LIBRARY = Path(__file__).resolve().parent / "premises"

DEVICE_TYPES = ("ESME", "GSME", "PPMID", "HCALCS", "IHD", "CAD")
STATUSES = (
    "Pending", "Whitelisted", "InstalledNotCommissioned", "Commissioned",
    "Decommissioned", "Withdrawn", "Suspended", "Recovery", "Recovered",
)
NO_STATUS = ("IHD", "CAD")  # Type 2 devices have no inventory status
SMI_STATUSES = STATUSES  # the DCC's inventory statuses (DUIS DeviceStatus)


class PremisesError(ValueError):
    pass


@dataclass
class Device:
    eui: str
    type: str
    status: str | None = None
    mpxn: str | None = None
    serial: str | None = None
    smets: str | None = None
    mode: str | None = None
    firmware: str | None = None
    answers: bool = True  # replies on the HAN (False: in the log but gone or unreachable)


@dataclass
class Hub:
    chf: str
    generation: str = "SMETS2"
    gpf: str | None = None
    version: str | None = None
    firmware: str | None = None
    dcc: bool | None = None
    # The hub's clock, given by IDENTIFY while the hub is served by the DCC (dcc = true):
    # seconds from true UTC (0: right); None: it gives no time.
    clock_offset: int | None = 0


@dataclass
class Wan:
    connected: bool = True
    signal: int | None = None


@dataclass
class Premises:
    name: str
    hub: Hub | None
    wan: Wan
    devices: list[Device] = field(default_factory=list)
    baud: int = 19200
    response_delay_ms: tuple[int, int] = (10, 40)
    notes: str = ""
    legacy_meters: list[dict] = field(default_factory=list)  # on site, invisible to the link
    # The DCC's Smart Metering Inventory for the premises (`[premises.X.smi]`): device EUI ->
    # status, or "unknown" (not in the inventory). Published by the bench's DCC adaptor at the
    # start of a run and on every `smi` step (docs/scenarios.md).
    smi: dict[str, str] = field(default_factory=dict)

    def smi_devices(self) -> list[dict]:
        """The premises' inventory as 8.2 Device records (hil/dcc.py), unknown devices left out."""
        out = []
        for eui, status in self.smi.items():
            if status == "unknown":
                continue
            kind, mpxn = self.smi_type(eui)
            rec = {"DeviceID": eui.upper(), "DeviceType": kind, "DeviceStatus": status}
            if mpxn:
                rec["ImportMPxN"] = mpxn
            out.append(rec)
        return out

    def smi_type(self, eui: str) -> tuple[str, str | None]:
        if self.hub is not None and self.hub.chf.upper() == eui.upper():
            return "CHF", None
        if self.hub is not None and (self.hub.gpf or "").upper() == eui.upper():
            return "GPF", None
        for d in self.devices:
            if d.eui.upper() == eui.upper():
                return d.type, d.mpxn
        for lm in self.legacy_meters:
            if str(lm.get("eui", "")).upper() == eui.upper():
                return str(lm.get("type", "ESME")), lm.get("mpxn")
        raise PremisesError(f"{self.name}: smi: {eui} is not the hub, its GPF or a device of the premises")

    def copy(self) -> "Premises":
        return copy.deepcopy(self)

    def device(self, eui: str) -> Device:
        for d in self.devices:
            if d.eui.upper() == eui.upper():
                return d
        raise PremisesError(f"{self.name}: no device {eui}")

    def expected_evidence(self) -> dict:
        """What a correct survey of this premises reads (the evidence's named form)."""
        if self.hub is None:
            return {"hub": None, "wan": None, "devices": []}
        hub = {k: v for k, v in vars(self.hub).items() if v is not None and k != "clock_offset"}
        hub = {k: (v.upper() if k in ("chf", "gpf") else v) for k, v in hub.items()}
        wan = {"connected": self.wan.connected}
        if self.wan.connected and self.wan.signal is not None:
            wan["signal"] = self.wan.signal
        devices = []
        for d in self.devices:
            e = {"eui": d.eui.upper(), "type": d.type}
            for k in ("status", "mpxn"):
                if getattr(d, k) is not None:
                    e[k] = getattr(d, k)
            e["answered"] = d.answers
            if d.answers:
                for k in ("serial", "smets", "mode", "firmware"):
                    if getattr(d, k) is not None:
                        e[k] = getattr(d, k)
            devices.append(e)
        return {"hub": hub, "wan": wan, "devices": devices}


def _check_device(name: str, d: Device) -> None:
    if d.type not in DEVICE_TYPES:
        raise PremisesError(f"{name}: device {d.eui}: type must be one of {', '.join(DEVICE_TYPES)}")
    if d.type in NO_STATUS:
        if d.status is not None:
            raise PremisesError(f"{name}: device {d.eui}: {d.type} has no inventory status")
    elif d.status not in STATUSES:
        raise PremisesError(f"{name}: device {d.eui}: status must be one of {', '.join(STATUSES)}")


def from_dict(data: dict, name: str = "premises") -> Premises:
    try:
        hub = Hub(**data["hub"]) if "hub" in data else None
        wan = Wan(**data.get("wan", {}))
        devices = [Device(**d) for d in data.get("devices", [])]
    except TypeError as exc:
        raise PremisesError(f"{name}: {exc}") from None
    if hub is None and devices:
        raise PremisesError(f"{name}: devices need a hub")
    if hub is not None and hub.generation not in ("SMETS1", "SMETS2"):
        raise PremisesError(f"{name}: hub.generation must be SMETS1 or SMETS2")
    for d in devices:
        _check_device(name, d)
    delay = data.get("response_delay_ms", [10, 40])
    smi = data.get("smi", {})
    if not isinstance(smi, dict) or not all(isinstance(v, str) for v in smi.values()):
        raise PremisesError(f"{name}: smi must be a table of device EUI = status")
    for eui, status in smi.items():
        if status not in (*SMI_STATUSES, "unknown"):
            raise PremisesError(f"{name}: smi: {eui}: status must be one of {', '.join(SMI_STATUSES)} or unknown")
    p = Premises(
        name=data.get("name", name), hub=hub, wan=wan, devices=devices,
        baud=int(data.get("baud", 19200)), response_delay_ms=(int(delay[0]), int(delay[1])),
        notes=data.get("notes", ""), legacy_meters=list(data.get("legacy_meters", [])),
        smi={str(k).upper(): v for k, v in smi.items()},
    )
    for eui in p.smi:
        p.smi_type(eui)  # the SMI speaks of the premises' own devices only
    return p


def read_toml(path: str | Path, library_dir: Path, what: str, error: type[ValueError]) -> tuple[Path, dict]:
    """A TOML file by path, or by name from a library folder; errors say which and why."""
    p = Path(path)
    if not p.exists() and (library_dir / f"{path}.toml").exists():
        p = library_dir / f"{path}.toml"
    try:
        return p, tomllib.loads(p.read_text())
    except FileNotFoundError:
        names = ", ".join(sorted(q.stem for q in library_dir.glob("*.toml")))
        raise error(f"no {what} {path} (library: {names})") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{p}: {exc}") from None


def load(path: str | Path) -> Premises:
    """A premises from a TOML file, or by name from the library (hil/premises/NAME.toml)."""
    p, data = read_toml(path, LIBRARY, "premises file", PremisesError)
    return from_dict(data, p.stem)


def library() -> list[str]:
    return sorted(p.stem for p in LIBRARY.glob("*.toml"))
