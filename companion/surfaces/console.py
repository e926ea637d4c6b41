"""The operator web console (docs/console.md): server-rendered HTML pages (Jinja2), served by
the bridge's HTTP server behind the read API's authentication.

    GET  /console/login            the sign-in form (the one page shown without a token)
    POST /console/login            token=... -> a session cookie; 303 to /console
    POST /console/logout           the cookie goes
    GET  /console                  search, recent rejections
    GET  /console/site?mpxn=...    a meter point: flag, date, deciding event, override, devices,
                                   a timeline of its flag changes
    GET  /console/rejections       recent rejections, with their reasons
    GET  /console/keys             the handheld keys, their status and their last event
    GET  /console/device?eui=...   one device: where it was, its condition now and why
    GET  /console/conflicts        where the field and the DCC's inventory disagree (?class=C)
    GET  /console/reports          reconciliation reports (config `reports`); /console/reports/NAME

A request is authenticated by `Authorization: Bearer <token>` or by the cookie the sign-in
sets: a session id (random, stored hashed, 8 hours; sign-out ends it, revoking its token ends
it), HttpOnly, SameSite=Strict, path /console, and Secure when the request came over TLS (the
bridge's `trusted_proxy` / `url_scheme` settings tell it so behind a TLS-terminating proxy).
Every POST must come from the console's own origin (its Origin header, or its Referer, names
this host): a cross-site form cannot sign anyone in or out. Any other request is sent to the
sign-in page: no page with data is served without a live token.
"""

from __future__ import annotations

import html
import json
import time
import urllib.parse
from collections.abc import Callable, Iterable
from datetime import date, datetime, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Any

from companion.config import Config
from companion.render import render
from companion.surfaces.site import site_view
from companion.store.core import Store

COOKIE = "flagwise_console"
MAX_FORM = 4096  # bytes of a sign-in form


def _iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def timeline(changes: list[dict[str, Any]], width: int = 640, height: int = 150) -> dict[str, Any]:
    """A step chart of a meter point's flag over time, for the site page's SVG: each change's
    x (by its effective date), level (N low, I middle, A high) and label."""
    levels = {"N": 0, "I": 1, "A": 2}
    pts = [c for c in changes if c.get("flag") in levels and c.get("effective_from")]
    if not pts:
        return {"width": width, "height": height, "steps": [], "path": "", "ticks": []}
    days = [date.fromisoformat(c["effective_from"]).toordinal() for c in pts]
    lo, hi = min(days), max(days)
    span = max(hi - lo, 1)
    left, right, top, bottom = 40, width - 20, 20, height - 30

    def x(d: int) -> float:
        return round(left + (right - left) * (d - lo) / span, 1) if hi > lo else (left + right) / 2

    def y(flag: str) -> float:
        return round(bottom - (bottom - top) * levels[flag] / 2, 1)

    steps = [{"x": x(d), "y": y(c["flag"]), "flag": c["flag"], "date": c["effective_from"],
              "version": c.get("version")} for d, c in zip(days, pts)]
    path = f"M {steps[0]['x']} {steps[0]['y']}"
    for a, b in zip(steps, steps[1:]):
        path += f" H {b['x']} V {b['y']}"
    path += f" H {right}"
    return {"width": width, "height": height, "steps": steps, "path": path,
            "ticks": [{"flag": f, "y": y(f)} for f in ("A", "I", "N")]}


def bearer(environ: dict[str, Any]) -> tuple[bool, str | None]:
    """(whether the request uses Bearer authorisation, its token if one of a sane length)."""
    scheme, _, token = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False, None
    return True, token.strip() if len(token) <= 200 else None


class Console:
    def __init__(self, store: Store, config: Config):
        self.store, self.config = store, config

    # --- auth ------------------------------------------------------------------------------
    @staticmethod
    def _cookie_value(environ: dict[str, Any]) -> str | None:
        for part in str(environ.get("HTTP_COOKIE", "")).split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and value:
                return str(urllib.parse.unquote(value))
        return None

    def _who(self, environ: dict[str, Any]) -> str | None:
        """The token name behind the request: a bearer token (API clients), or the session in
        the cookie. Storage failing raises: the API answers 503."""
        scheme, token = bearer(environ)
        if scheme:
            return self.store.token_name(token) if token else None
        sid = self._cookie_value(environ)
        if not sid or len(sid) > 100:
            return None
        return self.store.session_name(sid)

    @staticmethod
    def same_origin(environ: dict[str, Any]) -> bool:
        """A POST from this console's own pages: its Origin (else its Referer) names this host
        and scheme. Browsers send Origin with every cross-site POST (RFC 6454 §7; Fetch)."""
        host = str(environ.get("HTTP_HOST", ""))
        scheme = str(environ.get("wsgi.url_scheme", "http"))
        origin = environ.get("HTTP_ORIGIN")
        if origin is None:
            referer = str(environ.get("HTTP_REFERER", ""))
            parts = urllib.parse.urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None
        return bool(host) and origin == f"{scheme}://{host}"

    # --- WSGI ------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")[:2000])
        if method == "POST" and not self.same_origin(environ):
            return self._page(start_response, 403, "console_error.html", who=None,
                              message="This form must be sent from the console's own page.")
        if path == "/console/login":
            if method == "POST":
                return self._login(environ, start_response)
            return self._page(start_response, 200, "console_login.html", error=None, who=None)
        if path == "/console/logout" and method == "POST":
            sid = self._cookie_value(environ)
            if sid and len(sid) <= 100:
                self.store.end_session(sid)  # ended on the server, not only forgotten by the browser
            return self._redirect(start_response, "/console/login", cookie=self._cookie(environ, "", 0))
        who = self._who(environ)
        if who is None:
            return self._redirect(start_response, "/console/login")
        if method != "GET":
            return self._page(start_response, 405, "console_error.html", who=who, message="Only GET here.")
        if path in ("/console", "/console/"):
            return self._page(start_response, 200, "console_home.html", who=who, rejections=self._rejections(10))
        if path == "/console/site":
            return self._site(start_response, who, (query.get("mpxn") or [""])[0].strip())
        if path == "/console/rejections":
            return self._page(start_response, 200, "console_rejections.html", who=who,
                              rejections=self._rejections(200), counts=self.store.rejection_counts())
        if path == "/console/keys":
            return self._page(start_response, 200, "console_keys.html", who=who, keys=self._keys())
        if path == "/console/device":
            return self._device(start_response, who, (query.get("eui") or [""])[0].strip()[:40])
        if path == "/console/conflicts":
            return self._conflicts(start_response, who, (query.get("class") or [""])[0].strip()[:60])
        if path == "/console/reports" or path.startswith("/console/reports/"):
            return self._reports(start_response, who, path[len("/console/reports"):].strip("/"))
        return self._page(start_response, 404, "console_error.html", who=who, message="No such page.")

    def _login(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = 0
        if not 0 < size <= MAX_FORM:
            return self._page(start_response, 400, "console_login.html", who=None, error="Give your token.")
        form = urllib.parse.parse_qs(environ["wsgi.input"].read(size).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        session = self.store.start_session(token) if token and len(token) <= 200 else None
        if session is None:
            return self._page(start_response, 401, "console_login.html", who=None,
                              error="That token is not a live one (companion tokens add NAME makes one).")
        return self._redirect(start_response, "/console",
                              cookie=self._cookie(environ, session[0], self.store.SESSION_SECONDS))

    @staticmethod
    def _cookie(environ: dict[str, Any], value: str, max_age: int) -> str:
        secure = "; Secure" if environ.get("wsgi.url_scheme") == "https" else ""
        return (f"{COOKIE}={urllib.parse.quote(value)}; Max-Age={max_age}; Path=/console; HttpOnly; "
                f"SameSite=Strict{secure}")

    # --- pages -----------------------------------------------------------------------------
    def _site(self, start_response: Callable[..., Any], who: str, mpxn: str) -> Iterable[bytes]:
        if not mpxn:
            return self._redirect(start_response, "/console")
        try:
            view = site_view(self.store, mpxn, self.config)
        except ValueError as exc:
            return self._page(start_response, 400, "console_home.html", who=who, rejections=self._rejections(10),
                              error=str(exc), mpxn=mpxn[:20])
        if view is None:
            return self._page(start_response, 404, "console_home.html", who=who, rejections=self._rejections(10),
                              error=f"Nothing is known of {mpxn}: no event names it.", mpxn=mpxn)
        changes = [{**json.loads(body), "version": version, "sent": _iso(at)}
                   for version, body, at in self.store.flag_changes(mpxn)]
        return self._page(start_response, 200, "console_site.html", who=who, view=view, changes=changes,
                          chart=timeline(changes), mpxn=mpxn)

    def _device(self, start_response: Callable[..., Any], who: str, eui: str) -> Iterable[bytes]:
        from companion.service.device_view import view

        try:
            v = view(self.store, eui)
        except ValueError as exc:
            return self._page(start_response, 400, "console_error.html", who=who, message=str(exc))
        if v is None:
            return self._page(start_response, 404, "console_error.html", who=who,
                              message=f"Nothing is known of {eui}: no survey lists it, the DCC's inventory does not "
                                      "name it.")
        return self._page(start_response, 200, "console_device.html", who=who, d=v)

    def _conflicts(self, start_response: Callable[..., Any], who: str, chosen: str) -> Iterable[bytes]:
        from companion.service.dcc_view import conflicts
        from companion.sources import CLASSES

        if chosen and chosen not in CLASSES:
            return self._page(start_response, 400, "console_error.html", who=who,
                              message=f"No conflict class {chosen!r}.")
        found = [c.as_dict() for c in conflicts(self.store, self.config, chosen or None)]
        counts: dict[str, int] = {}
        for c in found:
            counts[c["class"]] = counts.get(c["class"], 0) + 1
        return self._page(start_response, 200, "console_conflicts.html", who=who, conflicts=found, counts=counts,
                          classes=CLASSES, chosen=chosen)

    def _rejections(self, limit: int) -> list[dict[str, Any]]:
        rows = self.store.recent_rejections(limit)
        return [{"device_id": r[0] or "unknown", "reason": r[1], "detail": r[2], "size": r[3], "at": _iso(r[4])}
                for r in rows]

    def _keys(self) -> list[dict[str, Any]]:
        last = self.store.last_event_times()
        now = time.time()
        out = []
        for k in self.store.keys():
            status = "active" if k.revoked_at is None else ("revoked (hard)" if k.hard else
                                                           "revoked" if k.revoked_at <= now else "revoking")
            out.append({"device_id": k.device_id, "status": status, "added": _iso(k.added_at),
                        "revoked": _iso(k.revoked_at), "last_event": _iso(last.get(k.device_id))})
        return out

    def _reports(self, start_response: Callable[..., Any], who: str, name: str) -> Iterable[bytes]:
        folder = Path(self.config.reports) if self.config.reports else None
        reports = []
        if folder is not None and folder.is_dir():
            for d in sorted(folder.iterdir()):
                s = d / "summary.json"
                if d.is_dir() and s.is_file() and (d / "report.html").is_file():
                    try:
                        reports.append({"name": d.name, **json.loads(s.read_text())})
                    except ValueError:
                        continue
        if not name:
            return self._page(start_response, 200, "console_reports.html", who=who, reports=reports,
                              folder=str(folder) if folder else None)
        match = next((r for r in reports if r["name"] == name), None)  # only a listed report: no path from the URL
        if match is None or folder is None:
            return self._page(start_response, 404, "console_error.html", who=who, message="No such report.")
        body = (folder / match["name"] / "report.html").read_bytes()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
                                  *_SECURITY])
        return [body]

    # --- responses -------------------------------------------------------------------------
    @staticmethod
    def _page(start_response: Callable[..., Any], status: int, template: str, **context: Any) -> list[bytes]:
        context.setdefault("error", None)
        context.setdefault("mpxn", "")
        body = render(template, **context).encode()
        start_response(f"{status} {HTTPStatus(status).phrase}", [("Content-Type", "text/html; charset=utf-8"),
                                               ("Content-Length", str(len(body))), *_SECURITY])
        return [body]

    @staticmethod
    def _redirect(start_response: Callable[..., Any], to: str, cookie: str | None = None) -> list[bytes]:
        body = f'<a href="{html.escape(to)}">{html.escape(to)}</a>'.encode()
        headers = [("Location", to), ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
                   *_SECURITY]
        if cookie is not None:
            headers.append(("Set-Cookie", cookie))
        start_response("303 See Other", headers)
        return [body]


# No script, no frame, no outside resource: the pages need none (inline CSS and SVG only).
# Referrer-Policy same-origin, not no-referrer: under no-referrer a browser sends `Origin: null`
# with the console's own forms, and the POST origin check (same_origin) would refuse them.
_SECURITY = [("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
              "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
             ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"), ("Cache-Control", "no-store")]
