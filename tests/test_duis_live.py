"""DUIS live from the DCC adaptor (docs/duis.md), end to end on real parts: the bridge as a
process with its own mosquitto (TLS, client certificates, the shipped ACL), an adaptor identity
of role dcc-adaptor publishing signed DUIS to <prefix>/duis/in."""

from __future__ import annotations

import json
import time
import urllib.request

from hil.services import BridgeProcess, mqtt_client
from companion.config import broker_address

from .duis_support import Dcc

MPAN = "1312345678907"
ESME = "00-1B-C5-0C-00-00-00-10"


def _site(b: BridgeProcess, mpxn: str) -> dict | None:
    req = urllib.request.Request(f"{b.http}/v1/sites/{mpxn}", headers={"Authorization": f"Bearer {b.token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _publish(b: BridgeProcess, name: str, role: str, payload: bytes) -> int:
    host, port, _ = broker_address(b.broker)
    c = mqtt_client(b.pki, name, role)
    c.connect(host, port)
    c.loop_start()
    try:
        info = c.publish("flagwise/duis/in", payload, qos=1)
        info.wait_for_publish(10)
        return int(info.rc)
    finally:
        c.disconnect()
        c.loop_stop()


def test_the_adaptor_publishes_signed_duis_and_only_the_adaptor_may(tmp_path):
    dcc = Dcc()
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(f'duis_certs = "{dcc.pem(tmp_path / "dcc.pem")}"\n')
    b = BridgeProcess(tmp_path, None, "--config", str(cfg))
    b.start()
    try:
        good = dcc.inventory([{"DeviceID": ESME, "DeviceType": "ESME", "DeviceStatus": "Commissioned",
                               "DateCommissioned": "2026-10-01", "ImportMPxN": MPAN}])
        # Sent again until it is in: a new identity is in the broker's ACL once the broker has
        # reloaded it (within a second); the same bytes twice are one message.
        deadline = time.monotonic() + 30
        view = None
        while view is None and time.monotonic() < deadline:
            assert _publish(b, "adaptor", "dcc-adaptor", good) == 0
            time.sleep(0.5)
            view = _site(b, MPAN)
        assert view is not None, b.log.read_text()[-2000:]
        assert view["flag"] == "A" and view["since"] == "2026-10-01", view
        # A consumer may not publish there (the ACL drops it): its message, sent before the
        # adaptor's next one, is never seen.
        _publish(b, "reader", "consumer", dcc.inventory([{"DeviceID": ESME, "DeviceType": "ESME",
                                                          "DeviceStatus": "Decommissioned", "ImportMPxN": MPAN}]))
        time.sleep(1)  # the consumer's identity is in the ACL now: it is its role that is refused
        _publish(b, "reader", "consumer", dcc.inventory([{"DeviceID": ESME, "DeviceType": "ESME",
                                                          "DeviceStatus": "Withdrawn", "ImportMPxN": MPAN}]))
        # A forged message from the adaptor itself is refused: the DCC's signature is what counts.
        forged = Dcc(cn="Z9", serial=7).inventory([{"DeviceID": ESME, "DeviceType": "ESME",
                                                    "DeviceStatus": "Decommissioned", "ImportMPxN": MPAN}])
        assert _publish(b, "adaptor", "dcc-adaptor", forged) == 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "unknown_certificate" not in b.log.read_text():
            time.sleep(0.2)
        assert "unknown_certificate" in b.log.read_text()
        view = _site(b, MPAN)
        assert view["flag"] == "A" and [d["status"] for d in view["dcc"]["devices"]] == ["Commissioned"], view
    finally:
        b.stop()
