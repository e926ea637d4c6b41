# The handheld's configuration: <flash>/config.json. Every key, its default, unit and
# meaning is in docs/agent.md; unknown keys are refused so a typo is never silent.
import json

from agent import flash
from agent import ids

FIRMWARE = "0.2.0"
# No event is signed with a clock before this (2025-01-01T00:00:00Z, before this firmware
# was built): a handheld whose clock was never set says so instead of dating evidence 1970.
TIME_FLOOR = 1735689600

DEFAULTS = {
    "device_id": None,  # EUI-64 text; required
    "broker_host": "127.0.0.1",
    "broker_port": 1883,
    "prefix": "flagwise",
    "tls": True,  # TLS to the broker, its certificate checked against tls_ca
    "insecure": False,  # allow tls false (plain TCP): a loud opt-in, never for real jobs
    "password": None,  # the handheld's broker password, for plain TCP only (user: its device id)
    "tls_ca": None,  # CA file on flash, for tls (required)
    "tls_cert": None,  # client certificate file on flash
    "tls_key": None,  # client key file on flash
    "tls_server_name": None,  # name to check in the broker's certificate (default: broker_host)
    "keepalive": 30,  # s
    "connect_timeout": 5,  # s
    "socket_timeout": 5,  # s, for any one broker read
    "ack_timeout": 10,  # s before an unacknowledged event is sent again
    "backoff_min": 1,  # s, first reconnect delay
    "backoff_max": 60,  # s, cap of the reconnect delay
    "outbox_max": 100,  # events kept on flash for the back office, at most (docs/agent.md)
    "uart": None,  # serial port: a path on the unix port, a UART number on a board
    "baud": 19200,
    "bridge_keys": None,  # bridge public keys (hex SEC1), the acks' signers; required
}


class ConfigError(ValueError):
    pass


def load(root):
    path = root + "/config.json"
    try:
        data = json.loads(flash.read(path))
    except OSError:
        raise ConfigError("no configuration file %s (see docs/agent.md)" % path)
    except ValueError:
        raise ConfigError("%s is not valid JSON" % path)
    cfg = dict(DEFAULTS)
    for k, v in data.items():
        if k not in DEFAULTS:
            raise ConfigError("%s: unknown key %r" % (path, k))
        cfg[k] = v
    try:
        cfg["device_id"] = ids.eui64_text(ids.eui64_bytes(cfg["device_id"]))
    except ValueError:
        raise ConfigError("%s: device_id must be an EUI-64 (XX-XX-XX-XX-XX-XX-XX-XX)" % path)
    for k in ("broker_port", "keepalive", "connect_timeout", "socket_timeout", "ack_timeout",
              "backoff_min", "backoff_max", "outbox_max", "baud"):
        if not isinstance(cfg[k], int) or isinstance(cfg[k], bool):
            raise ConfigError("%s: %s must be an integer" % (path, k))
    if cfg["backoff_min"] < 1 or cfg["backoff_max"] < cfg["backoff_min"]:
        raise ConfigError("%s: need 1 <= backoff_min <= backoff_max" % path)
    if not 1 <= cfg["outbox_max"] <= 10000:
        raise ConfigError("%s: outbox_max must be 1..10000" % path)
    for k in ("tls_ca", "tls_cert", "tls_key"):  # files on flash: relative to its root
        if cfg[k] and not cfg[k].startswith("/"):
            cfg[k] = root + "/" + cfg[k]
    if cfg["tls"] and bool(cfg["tls_cert"]) != bool(cfg["tls_key"]):
        raise ConfigError("%s: tls_cert and tls_key go together" % path)
    if cfg["tls"] and not cfg["tls_ca"]:
        raise ConfigError("%s: tls needs tls_ca, or any server could pose as the broker" % path)
    if not cfg["tls"] and not cfg["insecure"]:
        raise ConfigError("%s: tls is off: set insecure true to allow plain TCP" % path)
    if not cfg["tls"] and not cfg["password"]:
        raise ConfigError("%s: plain TCP needs the handheld's password (provision again)" % path)
    keys = cfg["bridge_keys"]
    if not isinstance(keys, list) or not keys:
        raise ConfigError("%s: bridge_keys missing: provision again (tools/provision.py)" % path)
    for k in keys:
        if not isinstance(k, str) or len(k) != 130 or not k.startswith("04"):
            raise ConfigError("%s: bridge_keys: each a 65-byte public key in hex" % path)
    return cfg
