"""POST /v1/alerts/triage and token roles on a running bridge (docs/triage.md): a dno token may
triage and read nothing else; a read token may do both; the console takes read tokens only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from .bridge_support import DEVICE_ID, MV, PUBLIC_KEY

ESME = "00-1B-C5-0C-00-00-00-10"


def call(url: str, token: str | None, body: object | None = None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json",
                                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text or b"{}")
        except ValueError:
            return e.code, {"error": text.decode(errors="replace")}


def test_a_dno_token_triages_and_reads_nothing_else(start_bridge):
    b = start_bridge(DEVICE_ID, PUBLIC_KEY)
    p = b.companion("tokens", "add", "dno-north", "--role", "dno")
    assert p.returncode == 0 and "only triage" in p.stderr
    dno = p.stdout.strip()
    url = b.http + "/v1/alerts/triage"
    alert = {"mpan": MV.MPAN, "device_id": ESME, "time": "2026-11-02T10:00:00Z", "alert_code": "0x8F01"}
    status, body = call(url, dno, {"alerts": [alert]})
    assert status == 200 and body["results"][0]["verdict"] == "unknown" and body["results"][0]["alert_code"] == "0x8F01"
    assert call(url, b.token, {"alerts": [alert]})[0] == 200  # a read token may triage too
    assert call(b.http + f"/v1/sites/{MV.MPAN}", dno)[0] == 403
    assert call(b.http + "/v1/conflicts", dno)[0] == 403
    assert call(url, None, {"alerts": [alert]})[0] == 401
    status, body = call(url, dno, {"alerts": [alert] * 1001})
    assert status == 413
    status, body = call(url, dno, {"alerts": [alert, {**alert, "mpan": "1312345678900"}]})
    assert status == 400 and "alerts[1].mpan" in body["error"]
    assert call(url, dno, raw=b"not json")[0] == 400
    assert call(url, dno, raw=b"")[0] == 400  # no body
    huge = json.dumps({"alerts": [alert] * 6000}).encode()  # over the server's 512 KiB: refused unread
    try:
        refused: object = call(url, dno, raw=huge)[0]
    except urllib.error.URLError:  # the server answers 413 and closes while the body is still coming
        refused = "closed"
    assert refused in (413, "closed")
    listed = b.companion("tokens", "list").stdout
    assert "dno-north  dno" in listed
    # The console signs in read tokens only.
    form = urllib.request.Request(b.http + "/console/login", data=f"token={dno}".encode(),
                                  headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": b.http})
    try:
        urllib.request.urlopen(form, timeout=10)
        code = 200
    except urllib.error.HTTPError as e:
        code = e.code
    assert code == 401
