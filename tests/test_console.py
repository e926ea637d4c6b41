"""The operator web console (companion/surfaces/console.py) on a running bridge with real signed events:
no page with data without a live token; then a real headless browser (Debian's chromium,
driven by Playwright with the system browser) signs in by keyboard, searches, and sees the
timeline, on a desktop and on a phone-sized screen. Screenshots are kept in
out/test-artifacts/console/."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .bridge_support import DEVICE_ID, MV, PUBLIC_KEY, Handheld, evidence, make_event

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "out" / "test-artifacts" / "console"
T0 = 1793491200
PAGES = ["/console", "/console/", "/console/site?mpxn=" + MV.MPAN, "/console/rejections", "/console/keys",
         "/console/reports", "/console/reports/x", "/console/conflicts", "/console/nowhere"]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def fetch(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict, str]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


@pytest.fixture
def console(tmp_path, start_bridge, broker):
    """A bridge whose store holds one meter point's I then A (real signed events through the
    broker), a rejection, and a reconciliation report."""
    reports = tmp_path / "reports"
    (reports / "extract-2026-11").mkdir(parents=True)
    (reports / "extract-2026-11" / "summary.json").write_text(
        '{"extract": "extract.csv", "today": "2026-11-29", "rows": 10, "discrepancies": 3}')
    (reports / "extract-2026-11" / "report.html").write_text("<!doctype html><h1>Reconciliation of extract.csv</h1>")
    cfg = tmp_path / "console.toml"
    cfg.write_text(f'reports = "{reports}"\n')
    b = start_bridge(DEVICE_ID, PUBLIC_KEY, "--config", str(cfg))
    hh = Handheld(broker.url, broker.pki)
    try:
        mpan = MV.MPAN
        for i, (etype, status) in enumerate((("install", "InstalledNotCommissioned"), ("commission", "Commissioned"))):
            eid, msg = make_event(etype, T0 + i * 86400 * 3, i + 1, mpans=[mpan],
                                  ev=evidence([("ESME", mpan, status)]))
            hh.send(msg)
            assert not hh.resend_until_acked({eid: msg}, timeout=30, every=1.0)
        hh.send(b"\xa0 not an event")
        yield b
    finally:
        hh.close()


def test_no_page_with_data_is_served_without_a_live_token(console):
    base = console.http
    for page in PAGES:
        status, headers, body = fetch(base + page)
        assert status == 303 and headers["Location"] == "/console/login", page
        assert MV.MPAN not in body and "rejection" not in body.lower()
        status, headers, _ = fetch(base + page, headers={"Authorization": "Bearer fw_not-a-token"})
        assert status == 303, page
        status, _, _ = fetch(base + page, headers={"Cookie": "flagwise_console=fw_not-a-token"})
        assert status == 303, page
    status, headers, body = fetch(base + "/console/login")
    assert status == 200 and 'name="token"' in body and MV.MPAN not in body
    assert "script-src" not in headers["Content-Security-Policy"] and "default-src 'none'" in \
        headers["Content-Security-Policy"]
    # A wrong token at the sign-in: refused, no cookie.
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": base}
    # A cross-site form (defect 4): refused, whatever it carries; so is one with no origin at all.
    for other in ({**form, "Origin": "https://evil.example"}, {"Content-Type": form["Content-Type"]}):
        status, headers, body = fetch(base + "/console/login", ("token=" + urllib.parse.quote(console.token)).encode(),
                                      other)
        assert status == 403 and "Set-Cookie" not in headers
    status, headers, body = fetch(base + "/console/login", b"token=fw_wrong", form)
    assert status == 401 and "Set-Cookie" not in headers and "not a live one" in body
    # The right one: a cookie the browser keeps from scripts and other sites.
    status, headers, _ = fetch(base + "/console/login", ("token=" + urllib.parse.quote(console.token)).encode(), form)
    assert status == 303 and headers["Location"] == "/console"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here; test_defects covers TLS behind a proxy
    assert console.token not in cookie  # a session id, never the long-lived token (defect 4)
    jar = {"Cookie": cookie.split(";")[0]}
    status, _, body = fetch(base + "/console/site?mpxn=" + MV.MPAN, headers=jar)
    assert status == 200 and ">A<" in body
    status, _, body = fetch(base + "/console/site?mpxn=1234567890123", headers=jar)
    assert status == 400 and "check digit" in body
    status, _, body = fetch(base + "/console/reports/..%2F..%2Fetc", headers=jar)
    assert status == 404
    # A cross-site sign-out is refused too.
    assert fetch(base + "/console/logout", b"", {**jar, "Origin": "https://evil.example"})[0] == 403
    assert fetch(base + "/console", headers=jar)[0] == 200
    # Signed out: the session ends on the server, so a copy of the cookie opens nothing.
    status, headers, _ = fetch(base + "/console/logout", b"", {**jar, "Origin": base})
    assert status == 303 and "Max-Age=0" in headers["Set-Cookie"]
    assert fetch(base + "/console", headers=jar)[0] == 303
    # Revoking the token ends its other sessions.
    _, headers, _ = fetch(base + "/console/login", ("token=" + urllib.parse.quote(console.token)).encode(), form)
    jar = {"Cookie": headers["Set-Cookie"].split(";")[0]}
    assert fetch(base + "/console", headers=jar)[0] == 200
    revoked = console.companion("tokens", "revoke", console.companion("tokens", "list").stdout.split()[0])
    assert revoked.returncode == 0
    assert fetch(base + "/console", headers=jar)[0] == 303  # a revoked token's session opens nothing


def test_the_console_shows_the_dccs_side_and_the_conflicts(console, tmp_path):
    """A DUIS 8.2 response that says the commissioned meter is InstalledNotCommissioned: the site
    page shows the DCC's inventory beside the survey and the conflict; the conflicts page lists it."""
    from .duis_support import Dcc

    dcc = Dcc()
    meter = evidence()["devices"][0]["eui"]
    msg = tmp_path / "inventory.xml"
    msg.write_bytes(dcc.inventory([{"DeviceID": meter, "DeviceType": "ESME", "DeviceStatus": "InstalledNotCommissioned",
                                    "ImportMPxN": MV.MPAN}]))
    p = console.companion("duis", "import", str(msg), "--certs", str(dcc.pem(tmp_path / "dcc.pem")))
    assert p.returncode == 0, p.stdout + p.stderr
    base = console.http
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": base}
    _, headers, _ = fetch(base + "/console/login", ("token=" + urllib.parse.quote(console.token)).encode(), form)
    jar = {"Cookie": headers["Set-Cookie"].split(";")[0]}
    status, _, body = fetch(base + "/console/site?mpxn=" + MV.MPAN, headers=jar)
    assert status == 200 and 'id="dcc-devices"' in body and "InstalledNotCommissioned" in body
    assert "smi_not_commissioned_but_field_commissioned" in body and ">I<" in body
    status, _, body = fetch(base + "/console/conflicts", headers=jar)
    assert status == 200 and "smi_not_commissioned_but_field_commissioned" in body and meter in body
    status, _, body = fetch(base + "/console/conflicts?class=mpxn_mismatch", headers=jar)
    assert status == 200 and "No conflict." in body
    assert fetch(base + "/console/conflicts?class=nonsense", headers=jar)[0] == 400


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_a_real_browser_signs_in_by_keyboard_searches_and_sees_the_timeline(console):
    from playwright.sync_api import sync_playwright

    assert _chromium(), "Debian's chromium is missing: tools/setup.sh installs it"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            screens = (("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 390, "height": 844}))
            for name, viewport in screens:
                page = browser.new_page(viewport=viewport)
                page.goto(console.http + "/console/keys")
                assert page.url.endswith("/console/login")  # sent to sign in first
                assert page.evaluate("document.activeElement.id") == "token"  # focused on arrival
                page.keyboard.type(console.token)
                page.keyboard.press("Enter")
                page.wait_for_url("**/console")
                page.screenshot(path=str(ARTIFACTS / f"{name}-home.png"), full_page=True)
                assert "bad_topic" in page.content() or "not_cose" in page.content() or "Recent rejections" in \
                    page.content()
                # Reachable by keyboard: Tab from the top of the page reaches the search field.
                page.evaluate("document.activeElement && document.activeElement.blur()")
                for _ in range(12):
                    page.keyboard.press("Tab")
                    if page.evaluate("document.activeElement.id") == "mpxn":
                        break
                assert page.evaluate("document.activeElement.id") == "mpxn"
                page.keyboard.type(MV.MPAN)
                page.keyboard.press("Enter")
                page.wait_for_url("**/console/site?mpxn=*")
                assert page.inner_text("#flag") == "A"
                steps = page.locator("#timeline circle.step")
                assert steps.count() == 2  # I, then A
                box = page.locator("#timeline").bounding_box()
                assert box is not None and box["width"] > 0 and box["height"] > 0
                # Usable on a phone-sized screen: nothing wider than the screen.
                assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
                page.screenshot(path=str(ARTIFACTS / f"{name}-site.png"), full_page=True)
                page.goto(console.http + "/console/keys")
                assert DEVICE_ID in page.content() and "active" in page.content()
                page.goto(console.http + "/console/reports")
                page.click("text=extract-2026-11")
                assert "Reconciliation of extract.csv" in page.content()
                page.goto(console.http + "/console/rejections")
                page.screenshot(path=str(ARTIFACTS / f"{name}-rejections.png"), full_page=True)
                page.close()
        finally:
            browser.close()
    assert sorted(p.name for p in ARTIFACTS.glob("*.png")) == sorted(
        f"{n}-{s}.png" for n in ("desktop", "phone") for s in ("home", "site", "rejections"))
