"""What the bridge's workers share: its state (read by /healthz and /readyz) and how a worker
reports a store that is failing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from companion.service.logs import log


@dataclass
class BridgeState:
    connected: bool = False
    subscribed: bool = True
    protocol: str = ""
    broker_url: str = ""
    http_url: str | None = None
    admin_url: str | None = None
    started_at: float = field(default_factory=time.time)
    storage_error: str | None = None  # the store's last failure, until a batch goes through
    fatal: str | None = None  # why the bridge stopped itself (another replica with our client id)

    def storage_trouble(self, doing: str, exc: BaseException) -> None:
        self.storage_error = f"{type(exc).__name__}: {str(exc).strip()[:120]}"
        log.error(f"the store failed while {doing}; retrying", extra={"fields": {"error": self.storage_error}})
