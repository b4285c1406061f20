"""``SimCore``: the simulator's state every request handler reads, without the server around it.

Tenants, the request log, the clock, the knobs (throttles, faults, request triggers, empty
pages, page sizes), throttling budgets, issued tokens, paging snapshots and report downloads.
``GraphSimulator`` (server.py) extends it with the lifecycle (TLS, the listening socket,
``start``/``stop``) and ``add_tenant``.  The transport, pipeline, login service and routes
are typed against this class, so they never import the server: no import cycle.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Callable

from .downloads import DownloadStore
from .faults import Budgets, Knobs, Triggers, parse_fault_kind
from .request_base import SnapshotCache
from .odata import TokenCodec
from .records import RequestRecord
from .tenant import SimTenant
from .tokens import TokenStore

__all__ = ["SimCore", "LOOPBACK"]

LOOPBACK = ("127.0.0.1", "localhost")
_THROTTLE_STATUSES = (429, 500, 502, 503, 504)


class SimCore:
    """State and knobs of a simulator (see ``GraphSimulator`` for the public constructor)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False):
        if host not in LOOPBACK:
            raise ValueError("the simulator listens on loopback only (127.0.0.1 or localhost)")
        self.host = "127.0.0.1"
        self.verbose = verbose
        self.token_lifetime: float = 3599
        self.page_delay: float = 0.0
        self.enforce_budgets: bool = False
        self.clock_offset: float = 0.0
        self.tokens = TokenStore()
        self._tenants: dict[str, SimTenant] = {}
        self._tenant_lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._requests_lock = threading.Lock()
        self._knobs = Knobs()
        self._triggers = Triggers()
        self._budgets = Budgets()
        self._snapshots = SnapshotCache()
        self._codec = TokenCodec(secrets.token_bytes(32))
        self._page_sizes: dict[str, int] = {}
        self._downloads = DownloadStore()  # usage reports' pre-authenticated CSV links
        self._stop_event = threading.Event()
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        self._ssl_ctx = None
        self.ca_path: str | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the simulator is not started; call start() first")
        return f"https://{self.host}:{self.port}"

    def now(self) -> float:
        """The simulator's clock (wall clock + ``clock_offset``): visibility, token expiry."""
        return time.time() + self.clock_offset

    # ------------------------------------------------------------------ tenants
    def tenant(self, tenant_id: str) -> SimTenant:
        t = self._tenants.get(tenant_id.lower())
        if t is None:
            raise KeyError(tenant_id)
        return t

    @property
    def tenants(self) -> list[SimTenant]:
        return list(self._tenants.values())

    def find_tenant(self, segment: str) -> SimTenant | None:
        """By tenant id or by its ``*.onmicrosoft.com`` domain, as the login service accepts both."""
        key = segment.lower()
        t = self._tenants.get(key)
        if t is not None:
            return t
        for t in self._tenants.values():
            if t.domain == key:
                return t
        return None

    # ------------------------------------------------------------------ request log
    @property
    def requests(self) -> list[RequestRecord]:
        with self._requests_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    def _record(self, rec: RequestRecord) -> None:
        with self._requests_lock:
            self._requests.append(rec)

    def _track(self, conn, opened: bool) -> None:
        with self._conns_lock:
            if opened:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    # ------------------------------------------------------------------ knobs
    def throttle(self, path_prefix: str, count: int, retry_after: float | None = 2.0, status: int = 429) -> None:
        """The next ``count`` Graph requests under ``path_prefix`` answer ``status`` (429/500/503/504)."""
        if status not in _THROTTLE_STATUSES:
            raise ValueError("status must be 429, 500, 502, 503 or 504")
        self._knobs.throttles.add(path_prefix, count, (status, retry_after))

    def fault(self, path_prefix: str, kind: str, count: int = 1) -> None:
        """The next ``count`` requests (login or Graph) under ``path_prefix`` misbehave.

        ``kind``: reset, truncated, short_read, not_json, stall, or ``slow:<seconds>``.
        """
        self._knobs.faults.add(path_prefix, count, parse_fault_kind(kind))

    def at_request(self, path_prefix: str, n: int, action: Callable[[], object]) -> None:
        """Run ``action()`` when the ``n``-th request under ``path_prefix`` (counted from now) arrives.

        It runs synchronously in that request's handler, before the request is looked at: a
        knob it arms (``throttle``, ``fault``), a ``revoke_tokens()`` or a licence change
        applies to request ``n`` itself.  This is how a test injects a fault mid-paging
        deterministically, instead of a thread polling ``requests`` and racing the client.
        """
        self._triggers.add(path_prefix, n, action)

    def fail_at(self, path_prefix: str, n: int, fault: str | int, count: int = 1,
                retry_after: float | None = 2.0) -> None:
        """Requests ``n`` .. ``n + count - 1`` under ``path_prefix`` (counted from now) fail.

        ``fault``: a fault kind of ``fault()`` (``"reset"``, ``"slow:3"``, ...) or an HTTP status
        of ``throttle()`` (429/5xx, with ``retry_after``).  Checked now, armed at request ``n``.
        """
        if isinstance(fault, int):
            if fault not in _THROTTLE_STATUSES:
                raise ValueError("status must be 429, 500, 502, 503 or 504")
            self.at_request(path_prefix, n, lambda: self.throttle(path_prefix, count, retry_after, fault))
        else:
            parse_fault_kind(fault)
            self.at_request(path_prefix, n, lambda: self.fault(path_prefix, fault, count))

    def inject_empty_pages(self, path_prefix: str, count: int = 1) -> None:
        """The next ``count`` pages under ``path_prefix`` are empty but carry a nextLink (legal)."""
        self._knobs.empty_pages.add(path_prefix, count, True)

    def set_page_size(self, path: str, size: int | None) -> None:
        """Default page size (when the client sends no $top) for an endpoint path, e.g. "/users/delta".

        Paged routes use a key without ids: "/servicePrincipals/appRoleAssignments",
        "/security/incidents/alerts"."""
        key = path.lower()
        if size is None:
            self._page_sizes.pop(key, None)
        else:
            if size < 1:
                raise ValueError("size must be positive")
            self._page_sizes[key] = size

    def clear_knobs(self) -> None:
        """Drop every armed knob and pending request trigger, reset budgets and page sizes."""
        self._knobs.clear()
        self._triggers.clear()
        self._budgets.reset()
        self._page_sizes.clear()
        self.page_delay = 0.0
