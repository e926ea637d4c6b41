# The handheld's configuration: <flash>/config.json. Every key, its default, unit and
# meaning is in docs/agent.md; unknown keys are refused so a typo is never silent.
import json

from agent import flash
from agent import ids

FIRMWARE = "0.2.0"

DEFAULTS = {
    "device_id": None,  # EUI-64 text; required
    "broker_host": "127.0.0.1",
    "broker_port": 1883,
    "prefix": "flagwise",
    "tls": False,
    "tls_ca": None,  # CA file on flash, for tls
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
    "clock_offset": 0,  # s added to the device clock (bench)
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
              "backoff_min", "backoff_max", "outbox_max", "baud", "clock_offset"):
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
    return cfg
