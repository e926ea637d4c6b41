"""The read API (WSGI, served by waitress) and the Prometheus endpoint.

GET /v1/sites/{mpxn}         flag, since, reason, devices, event ids   (400 bad MPxN, 404 unknown)
GET /v1/sites/{mpxn}/events  the events behind it, a page at a time (limit, cursor)
POST /v1/alerts/triage       a network operator's alerts: was a SMETS2 system expected (read, dno tokens)
GET /v1/devices/{eui}        one device from both sources: where, condition, why (400, 404)
GET /v1/conflicts            where the field and the DCC's inventory disagree (?class=C)
GET /v1/keys                 the bridge public keys that sign acks and flag updates (open)
GET /healthz                 liveness: {"status": "ok", ...} while the process can work (open; 503 if not)
GET /readyz                  readiness: also the broker link and the store up (open; 503 if not)
GET /metrics                 Prometheus text format (open)
GET /openapi.json            this API's OpenAPI 3.1 description (open; companion/surfaces/openapi.py)
GET|POST /console/...        the operator web console (companion/surfaces/console.py), behind the same tokens

Sites are personal data (a meter point with installer and device data): every /v1/sites
request needs `Authorization: Bearer <token>`, a token made by `companion tokens add`
(stored hashed). 401 without a valid token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from companion.config import Config
from companion.errors import ServiceError
from companion.service.metrics import Metrics
from companion.surfaces.site import events_page, site_view
from companion.store.core import Store


log = logging.getLogger("companion.api")


class Api:
    def __init__(self, store: Store, config: Config, metrics: Metrics, health: Callable[..., dict[str, Any]],
                 pki: Any = None):
        self.store, self.config, self.metrics, self.health = store, config, metrics, health
        self.pki = pki
        self._gauges_at = -1e9
        from companion.surfaces.console import Console

        self.console = Console(store, config)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """An outage (the store down, a service error) is a 503 with a generic message, never
        a 400 with the store's words: the details go to the log and /readyz."""
        outages: tuple[type[BaseException], ...] = (ServiceError, *self.store.db.errors())
        try:
            return self._route(environ, start_response)
        except outages as exc:
            log.error("the store failed while answering a request", extra={"fields": {
                "path": environ.get("PATH_INFO", "")[:80], "error": f"{type(exc).__name__}: {str(exc)[:160]}"}})
            self.store.close()  # a fresh connection next time
            return self._json(start_response, 503, {"error": "the service is unavailable for a moment; try again"},
                              [("Retry-After", "5")])

    GAUGE_SECONDS = 5.0  # the store's counts behind /metrics are read at most this often

    def _store_gauges(self) -> None:
        """The gauges that need the store's counts, read at most every GAUGE_SECONDS whatever
        the scrape rate: a scrape flood costs no query per scrape."""
        import time

        now = time.monotonic()
        if now - self._gauges_at < self.GAUGE_SECONDS:
            return
        self._gauges_at = now
        depth = self.store.outbox_depth()
        self.metrics.outbox_depth.labels("mqtt").set(depth[0])
        self.metrics.outbox_depth.labels("dtc").set(depth[1])
        self.metrics.dtc_files_pending.set(depth[2])
        self.metrics.suspicious_devices.set(self.store.suspicious_devices())

    def admin(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The admin listener's application: /healthz, /readyz and /metrics, nothing else."""
        if environ.get("PATH_INFO", "") not in ("/healthz", "/readyz", "/metrics"):
            return self._json(start_response, 404, {"error": "the admin listener serves /healthz, /readyz, /metrics"})
        return self(environ, start_response)

    def _route(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if path == "/console" or path.startswith("/console/"):
            return self.console(environ, start_response)
        if path == "/v1/alerts/triage":
            return self._triage(environ, start_response, method)
        if method != "GET":
            return self._json(start_response, 405, {"error": "only GET is supported"})
        if path in ("/healthz", "/readyz"):
            h = self.health(ready=path == "/readyz")
            return self._json(start_response, 200 if h.get("status") == "ok" else 503, h)
        if path == "/metrics":
            self._store_gauges()
            body = generate_latest(self.metrics.registry)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/openapi.json":
            from companion.surfaces.openapi import document

            return self._json(start_response, 200, document())
        if path == "/v1/keys":
            keys = self.pki.bridge_public_keys() if self.pki is not None else []
            return self._json(start_response, 200, {"keys": keys})
        if path.startswith("/v1/"):
            role = self._role(environ)
            if role is None:
                return self._json(start_response, 401, {"error": "a valid bearer token is required "
                                                                 "(companion tokens add NAME)"},
                                  [("WWW-Authenticate", 'Bearer realm="flagwise"')])
            if role != "read":
                return self._json(start_response, 403, {"error": "a dno token may only triage alerts "
                                                                 "(POST /v1/alerts/triage)"})
        if path.startswith("/v1/devices/") and path.count("/") == 3:
            return self._device(start_response, path.rsplit("/", 1)[1])
        if path == "/v1/conflicts":
            return self._conflicts(start_response, environ.get("QUERY_STRING", ""))
        parts = path.strip("/").split("/")
        if len(parts) == 4 and parts[:2] == ["v1", "sites"] and parts[3] == "events":
            return self._events(start_response, parts[2], environ.get("QUERY_STRING", ""))
        if len(parts) == 3 and parts[:2] == ["v1", "sites"]:
            mpxn = parts[2]
            try:
                view = site_view(self.store, mpxn, self.config)
            except ValueError as exc:
                return self._json(start_response, 400, {"error": str(exc)})
            if view is None:
                return self._json(start_response, 404, {"error": f"nothing known of {mpxn[:20]}"})
            return self._json(start_response, 200, view)
        return self._json(start_response, 404, {"error": f"no such resource {path[:80]}"})

    def _device(self, start_response: Callable[..., Any], eui: str) -> Iterable[bytes]:
        from companion.service.device_view import view

        try:
            v = view(self.store, eui[:40])
        except ValueError as exc:
            return self._json(start_response, 400, {"error": str(exc)[:300], "field": "eui"})
        if v is None:
            return self._json(start_response, 404, {"error": f"nothing known of {eui[:40]}"})
        return self._json(start_response, 200, v)

    def _conflicts(self, start_response: Callable[..., Any], query: str) -> Iterable[bytes]:
        from urllib.parse import parse_qs

        from companion.errors import CompanionError
        from companion.service.dcc_view import conflicts

        wanted = parse_qs(query[:200]).get("class")
        cls = wanted[0] if wanted else None
        try:
            found = conflicts(self.store, self.config, cls)
        except CompanionError as exc:
            return self._json(start_response, 400, {"error": str(exc)[:300]})
        return self._json(start_response, 200, {"conflicts": [c.as_dict() for c in found]})

    def _events(self, start_response: Callable[..., Any], mpxn: str, query: str) -> Iterable[bytes]:
        """A page of the events (limit, cursor): only that page is read and decoded."""
        import urllib.parse

        q = urllib.parse.parse_qs(query[:500])
        try:
            limit = int((q.get("limit") or ["100"])[0])
        except ValueError:
            return self._json(start_response, 400, {"error": "limit: a whole number"})
        try:
            cursor = q.get("cursor")
            page = events_page(self.store, mpxn, limit, cursor[0] if cursor else None)
        except ValueError as exc:
            return self._json(start_response, 400, {"error": str(exc)})
        if page is None:
            return self._json(start_response, 404, {"error": f"nothing known of {mpxn[:20]}"})
        return self._json(start_response, 200, page)

    def _role(self, environ: dict[str, Any]) -> str | None:
        """The role of the request's live bearer token (read, dno), or None."""
        from companion.surfaces.console import bearer

        _, token = bearer(environ)
        who = self.store.token_role(token) if token is not None else None  # storage failing: a 503
        return who[1] if who else None

    def _triage(self, environ: dict[str, Any], start_response: Callable[..., Any], method: str) -> Iterable[bytes]:
        """POST {"alerts": [...]} (up to 1,000): read and dno tokens (docs/triage.md)."""
        from companion.errors import CompanionError
        from companion.service.triage_run import MAX_REQUEST, TooMany, Triage

        if self._role(environ) is None:
            return self._json(start_response, 401, {"error": "a valid bearer token is required"},
                              [("WWW-Authenticate", 'Bearer realm="flagwise"')])
        if method != "POST":
            return self._json(start_response, 405, {"error": "POST {\"alerts\": [...]} here"})
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = -1
        if size > MAX_REQUEST * 512:
            return self._json(start_response, 413, {"error": f"a request of {size} bytes: at most {MAX_REQUEST} "
                                                             "alerts a request"})
        if size <= 0:
            return self._json(start_response, 400, {"error": 'a JSON body {"alerts": [...]} is required'})
        try:
            body = json.loads(environ["wsgi.input"].read(size))
        except (ValueError, UnicodeDecodeError):
            return self._json(start_response, 400, {"error": "the body is not JSON"})
        try:
            results = Triage(self.store).request(body)
        except TooMany as exc:
            return self._json(start_response, 413, {"error": str(exc)})
        except CompanionError as exc:
            return self._json(start_response, 400, {"error": str(exc)[:300]})
        return self._json(start_response, 200, {"results": results})

    @staticmethod
    def _json(start_response: Callable[..., Any], status: int, body: dict[str, Any],
              headers: list[tuple[str, str]] | None = None) -> list[bytes]:
        data = json.dumps(body, indent=1).encode()
        start_response(f"{status} {HTTPStatus(status).phrase}", [("Content-Type", "application/json"),
                                               ("Content-Length", str(len(data)))] + (headers or []))
        return [data]
