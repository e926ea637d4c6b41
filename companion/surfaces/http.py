"""The bridge's HTTP servers (waitress): the read API and web console on `http`, and the admin
listener on `admin` (docs/bridge.md). Handed to the bridge by the command line
(Bridge(config, serve_http=serve)), so that the service layer never imports the surfaces."""

from __future__ import annotations

import threading
from typing import Any

from companion.config import host_port
from companion.service.bridge import Bridge
from companion.surfaces.api import Api


def serve(bridge: Bridge) -> list[Any]:
    """The read API (and console) on `http`; liveness, readiness and metrics also on `admin`,
    a listener of its own that the public API's connections cannot starve (a liveness probe
    must not restart a healthy bridge because 2,000 slow clients hold the public port)."""
    from waitress.server import create_server  # type: ignore[import-untyped]

    cfg = bridge.config
    servers: list[Any] = []
    api = Api(bridge.store, cfg, bridge.metrics, bridge.health, bridge.pki)
    proxy = ({"trusted_proxy": cfg.trusted_proxy, "trusted_proxy_headers": {"x-forwarded-proto"},
              "trusted_proxy_count": 1} if cfg.trusted_proxy else {})
    if cfg.http is not None:
        host, port = host_port(cfg.http, "http")
        try:
            # Idle and slow connections cost no worker thread (asyncore), are capped, and time
            # out; poll() instead of select() lifts the 1,024-descriptor ceiling (slowloris).
            http = create_server(api, host=host, port=port, threads=8, connection_limit=2000,
                             channel_timeout=10, cleanup_interval=2, asyncore_use_poll=True,
                             # Bodies: a console sign-in, or a triage request of up to 1,000 alerts.
                             max_request_header_size=8192, max_request_body_size=512 * 1024,
                             ident="flagwise", url_scheme=cfg.url_scheme, **proxy)
        except OSError as exc:
            raise OSError(f"cannot serve the read API on {host}:{port}: {exc.strerror}") from None
        bridge.state.http_url = f"http://{host}:{http.effective_port}"
        servers.append(http)
        # Not joined on stop: closing the server's sockets is what ends it.
        threading.Thread(target=http.run, name="http", daemon=True).start()
    if cfg.admin is not None:
        host, port = host_port(cfg.admin, "admin")
        try:
            admin = create_server(api.admin, host=host, port=port, threads=2, connection_limit=64,
                              channel_timeout=5, cleanup_interval=2, asyncore_use_poll=True,
                              max_request_header_size=4096, max_request_body_size=0,
                              ident="flagwise-admin")
        except OSError as exc:
            raise OSError(f"cannot serve the admin listener on {host}:{port}: {exc.strerror}") from None
        bridge.state.admin_url = f"http://{host}:{admin.effective_port}"
        servers.append(admin)
        threading.Thread(target=admin.run, name="admin", daemon=True).start()
    return servers
