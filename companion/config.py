"""Bridge configuration: one table of keys (docs/bridge.md), from defaults, a TOML file,
`FLAGWISE_<KEY>` environment variables and the command line, in that order of precedence
(the command line wins). Every value is checked against its key's type as it is set, so a
bad value is a message naming its source and key, never a worker that dies later."""

from __future__ import annotations

import functools
import os
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from companion.errors import CompanionError
from companion.wire.cose import MAX_MESSAGE


class ConfigError(CompanionError):
    reason = "config"


@dataclass
class Config:
    # -- broker ----------------------------------------------------------------------
    broker: str | None = None  # mqtts://host:port; None: the bridge's own mosquitto
    listen: str = "127.0.0.1:8883"  # the bridge's own broker listens here (port 0: a free port)
    insecure: bool = False  # plain TCP, no identities: a loud opt-in for throwaway trials only
    pki: str = "pki"  # folder of the CA, identities, CRL, ACL and signing keys (companion pki)
    name: str = "bridge"  # this bridge's identity: certificate CN, MQTT client id, signing key
    broker_user: str | None = None  # the own broker's account when started as root (default mosquitto, else nobody)
    max_packet_size: int = 65536  # bytes: the broker drops larger packets before they reach anyone
    prefix: str = "flagwise"  # topic prefix
    client_id: str | None = None  # default: the identity name (the broker enforces it)
    share_group: str | None = None  # subscribe as $share/<group>/... (several replicas)
    session_expiry: int = 7 * 86400  # s, MQTT 5 persistent-session lifetime
    broker_wait: float = 300.0  # s to wait for the broker at start (backoff 1 s .. 30 s); 0: try once
    keepalive: int = 30  # s
    tls_ca: str | None = None  # CA file for mqtts:// (default: the pki folder's ca.crt)
    tls_cert: str | None = None  # client certificate (default: pki/clients/<name>.crt)
    tls_key: str | None = None  # client key (default: pki/clients/<name>.key)
    username: str | None = None
    password: str | None = None
    # -- ingest ----------------------------------------------------------------------
    max_message: int = MAX_MESSAGE  # bytes; larger messages are rejected unread
    max_future: int = 300  # s a device clock may run ahead of ours
    time_floor: str = "2025-01-01"  # device and survey times before this date are refused (UTC)
    max_survey_age: int = 86400  # s from the survey to the event it backs
    clock_tolerance: int = 300  # s a handheld clock may disagree with its hub's before it is recorded
    batch_max: int = 500  # messages per commit (group commit)
    device_rate: float = 50.0  # messages/s one handheld may send; more are set aside unread (a flood)
    device_burst: int = 500  # ... after a burst of this many
    batch_wait_ms: int = 5  # wait for more messages before committing a batch
    verify_workers: int = 0  # processes checking the events' signatures; 0: the ingest's own
    # -- store -----------------------------------------------------------------------
    db: str = "companion.db"  # SQLite file (or sqlite:///path), or postgresql://user:pw@host/db
    db_upgrade: bool = True  # apply pending schema migrations at start; false: refuse a store behind
    # -- outputs ---------------------------------------------------------------------
    out: str = "out"  # DTC flow files go here
    dtc_batch_size: int = 500  # flag changes per DTC file, at most
    dtc_batch_age: float = 60.0  # s: a file closes when its oldest change is this old
    dtc_alarm_age: float = 600.0  # s: /readyz fails while a change has waited longer for its DTC file
    dtc_test_flag: str = "OPER"  # ZHV test flag: OPER, or TR01.. for test files
    dtc_from_participant: str = "DCCO"
    dtc_electricity_to: str = "MPAS"  # assumed recipient id (docs/flag-policy.md)
    dtc_gas_to: str = "XOSV"  # assumed recipient id
    legacy_flags: bool = False  # DTC files carry A/""/W (pre-MP077) instead of A/I/N
    legacy_mapping: dict[str, str] = field(default_factory=lambda: {"A": "A", "I": "", "N": "W"})
    # -- the DCC's side (DUIS; docs/duis.md) ---------------------------------------------
    duis_certs: str | None = None  # PEM file or folder: the DCC certificates whose signatures are believed
    duis_user_eui: str | None = None  # the supplier's DCC user id (EUI-64): first part of a RequestID
    duis_dcc_eui: str | None = None  # the DCC's EUI-64: the recipient of non-device requests (CommandVariant 8)
    install_and_leave_days: int = 90  # days installed with no SM WAN before it is a conflict (MP121's target)
    # Which request each conflict class gets drafted (docs/duis.md): a class -> "8.2" (read the
    # inventory again instead), "none" (no draft), or its default ("8.3", "8.4", "8.14.4", "8.2").
    duis_requests: dict[str, str] = field(default_factory=dict)
    # -- read API --------------------------------------------------------------------
    http: str | None = "127.0.0.1:8080"  # HOST:PORT for the read API; None: off
    admin: str | None = "127.0.0.1:8081"  # HOST:PORT for /healthz, /readyz, /metrics alone; None: off
    trusted_proxy: str | None = None  # address of a TLS-terminating proxy whose X-Forwarded-Proto is believed
    url_scheme: str = "http"  # "https" behind a proxy that always terminates TLS (console cookies get Secure)
    reports: str | None = None  # a folder of `companion reconcile` outputs, listed by the console
    log_level: str = "info"

    def set(self, key: str, value: Any, source: str = "configuration") -> None:
        names = {f.name for f in fields(self)}
        key = key.replace("-", "_")
        if key not in names:
            raise ConfigError(f"{source}: unknown configuration key {key!r}")
        setattr(self, key, _typed(key, typing.get_type_hints(Config)[key], value, source))
        self.__dict__.setdefault("_given", set()).add(key)

    def given(self, key: str) -> bool:
        """Was the key set by a file, the environment or the command line (not a default)?"""
        return key in self.__dict__.get("_given", ())

    @property
    def db_path(self) -> str:
        return self.db[len("sqlite:///"):] if self.db.startswith("sqlite:///") else self.db

    @property
    def time_floor_epoch(self) -> int:
        return _day_start(self.time_floor)

    @property
    def mqtt_client_id(self) -> str:
        """One per replica: the identity's name, unless set. The shipped broker makes every
        client id its certificate's name (use_username_as_clientid), so each replica runs as an
        identity of its own (`companion pki issue bridge bridge-2`, --name bridge-2;
        docs/operations.md), and the store refuses a second bridge with the same id."""
        return self.client_id or self.name

    def check(self) -> "Config":
        if self.broker is not None and not self.broker.startswith(("mqtt://", "mqtts://")):
            raise ConfigError(f"broker must be mqtts://HOST:PORT (or mqtt:// with --insecure), got {self.broker!r}")
        if self.broker is not None and self.broker.startswith("mqtt://") and not self.insecure:
            raise ConfigError("a plain mqtt:// broker carries no identities and no encryption: use mqtts:// "
                              "(docs/security.md), or opt in with --insecure")
        try:
            self.time_floor_epoch
        except (TypeError, ValueError):
            raise ConfigError(f"time_floor must be a date YYYY-MM-DD, got {str(self.time_floor)[:20]!r}") from None
        for key, (lo, hi) in BOUNDS.items():
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise ConfigError(f"{key} must be {lo:g} .. {hi:g}, got {str(v)[:20]}")
        if self.url_scheme not in ("http", "https"):
            raise ConfigError(f"url_scheme must be http or https, got {self.url_scheme[:20]!r}")
        for name in ("listen", "http", "admin"):
            v = getattr(self, name)
            if v is not None:
                host_port(v, name)
        if set(self.legacy_mapping) != {"A", "I", "N"}:
            raise ConfigError("legacy_mapping must map each of A, I, N")
        if self.max_message + 1024 > self.max_packet_size:
            raise ConfigError(f"max_message ({self.max_message}) plus 1024 bytes for the topic and header must fit "
                              f"max_packet_size ({self.max_packet_size}): the broker would drop such events unseen")
        if len(self.dtc_from_participant) != 4:
            raise ConfigError("dtc_from_participant must be 4 characters")
        return self


# The bounds of every numeric key (inclusive), checked as each value is set and again in
# check(): a value outside them would stall or starve the bridge later (batch_max past the
# databases' parameter limits: every batch fails). docs/bridge.md lists them.
BOUNDS: dict[str, tuple[float, float]] = {
    "max_packet_size": (1024, 1 << 24),
    "session_expiry": (0, 0xFFFFFFFF),  # MQTT 5 §3.1.2.11.2: a four-byte interval
    "broker_wait": (0, 86400),
    "keepalive": (0, 65535),  # MQTT §3.1.2.10: two bytes
    "max_message": (1, 1 << 20),
    "max_future": (0, 366 * 86400),
    "max_survey_age": (0, 30 * 86400),
    "clock_tolerance": (0, 366 * 86400),
    "batch_max": (1, 1000),
    "device_rate": (0.1, 100_000),
    "device_burst": (1, 1_000_000),  # 8 parameters an event: under SQLite's 32,766 and PostgreSQL's 65,535
    "batch_wait_ms": (0, 10_000),
    "verify_workers": (0, 64),
    "dtc_batch_size": (1, 99_999),
    "dtc_batch_age": (0.01, 86400),
    "dtc_alarm_age": (1, 7 * 86400),
    "install_and_leave_days": (1, 3650),
}

LOG_LEVELS = ("debug", "info", "warning", "error")
_OFF = ("http", "listen", "admin")  # keys where "off" means none


def _typed(key: str, hint: Any, value: Any, source: str) -> Any:
    """The value as its key's type; text (from the environment) is converted."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args and optional else hint
    base = typing.get_origin(base) or base
    if key in _OFF and value == "off":
        return None
    if value is None and optional:
        return value

    def bad(what: str) -> ConfigError:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        return ConfigError(f"{source}: {key} must be {what}, got {shown}")

    if base is bool:
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if base in (int, float):
        what, accepted = ("a whole number", (int,)) if base is int else ("a number", (int, float))
        if isinstance(value, str):
            try:
                parsed = base(value)
            except ValueError:
                raise bad(what) from None
            return _bounded(key, parsed, bad)
        if not isinstance(value, accepted) or isinstance(value, bool):
            raise bad(what)
        return _bounded(key, base(value), bad)
    if base is str:
        if not isinstance(value, str):
            raise bad("text")
        if key == "log_level" and value.lower() not in LOG_LEVELS:
            raise bad("one of " + ", ".join(LOG_LEVELS))
        return value.lower() if key == "log_level" else value
    if base is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise bad("a table of text values")
        if key == "duis_requests" and any(v not in ("none", "8.2", "8.3", "8.4", "8.14.4") for v in value.values()):
            raise bad("a table of conflict class = none, 8.2, 8.3, 8.4 or 8.14.4")
        return dict(value)
    return value


def _bounded(key: str, value: Any, bad: Any) -> Any:
    lo, hi = BOUNDS.get(key, (None, None))
    if lo is not None and not lo <= value <= hi:
        raise bad(f"{lo:g} .. {hi:g}")
    return value


ENV_PREFIX = "FLAGWISE_"


def host_port(value: str, what: str = "address") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} must be HOST:PORT, got {value!r}")
    return host or "127.0.0.1", int(port)


def broker_address(url: str) -> tuple[str, int, bool]:
    tls = url.startswith("mqtts://")
    rest = url.split("://", 1)[1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep:
        return rest, 8883 if tls else 1883, tls
    if not port.isdigit():
        raise ConfigError(f"bad broker port in {url!r}")
    return host, int(port), tls


def load(path: str | None, overrides: dict[str, Any]) -> Config:
    cfg = Config()
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"no configuration file {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        for k, v in data.items():
            cfg.set(k, v, str(path))
    names = {f.name for f in fields(Config)}
    for var, v in sorted(os.environ.items()):
        if var.startswith(ENV_PREFIX):  # a misspelt one is refused, not ignored
            key = var[len(ENV_PREFIX):].lower()
            if key not in names:
                raise ConfigError(f"{var}: no configuration key {key!r} (docs/bridge.md)")
            cfg.set(key, v, var)
    for k, v in overrides.items():
        if v is not None:
            cfg.set(k, v, "--" + k.replace("_", "-"))
    return cfg.check()


@functools.lru_cache(maxsize=8)
def _day_start(day: str) -> int:
    """Seconds since the epoch at the start (UTC) of YYYY-MM-DD: read for every event."""
    import datetime

    d = datetime.date.fromisoformat(day)
    return int(datetime.datetime(d.year, d.month, d.day, tzinfo=datetime.timezone.utc).timestamp())
