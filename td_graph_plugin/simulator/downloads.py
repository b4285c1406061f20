"""The usage reports' pre-authenticated CSV links: token -> (tenant, bytes, expiry).

Apart from graph_routes.py (which serves them) so the simulator's state (core.py) can hold
the store without importing the routes.
"""

from __future__ import annotations

import threading
import time

__all__ = ["DOWNLOAD_PREFIX", "REPORT_LINK_TTL", "DownloadStore"]

DOWNLOAD_PREFIX = "/_download/reports/"
REPORT_LINK_TTL = 300.0  # "valid for a few minutes" (graph-facts §7); the exact lifetime is ASSUMED


class DownloadStore:
    """token -> (tenant id, CSV bytes, expiry); expired entries are pruned on insert."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[str, bytes, float]] = {}

    def put(self, token: str, tenant_id: str, data: bytes, expires: float) -> None:
        with self._lock:
            if len(self._items) > 200:
                now = time.time()
                self._items = {k: v for k, v in self._items.items() if v[2] > now - 3600}
            self._items[token] = (tenant_id, data, expires)

    def get(self, token: str) -> tuple[str, bytes, float] | None:
        with self._lock:
            return self._items.get(token)
