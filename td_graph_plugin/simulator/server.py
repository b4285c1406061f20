"""``GraphSimulator``: the public object: lifecycle, tenants, request log and knobs.

The pieces it wires together: ``transport`` (TLS + HTTP/1.1 keep-alive on loopback, faults
at the byte level), ``pipeline`` (login vs Graph routing and Graph's checks), ``auth``
(tokens), ``handlers`` (paging and delta over ``endpoints`` rows), ``tenant`` (data).
``stop()`` is prompt: it stops the accept loop, releases stalled/slow/delayed handlers via
one event, and shuts every open connection.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
import uuid

from . import auth
from .faults import Budgets, Knobs, parse_fault_kind
from .graph_routes import DownloadStore
from .handlers import SnapshotCache
from .odata import TokenCodec
from .tenant import SimTenant
from .tls import make_tls
from .transport import RequestRecord, SimServer

__all__ = ["GraphSimulator", "RequestRecord"]

_LOOPBACK = ("127.0.0.1", "localhost")


class GraphSimulator:
    """A TLS fake of login.microsoftonline.com + graph.microsoft.com on loopback.

    ``GraphSimulator(host="127.0.0.1", port=0, workdir=None)``; ``start()``/``stop()`` or use
    it as a context manager.  See the package docstring for the knobs.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, workdir: str | None = None, verbose: bool = False):
        if host not in _LOOPBACK:
            raise ValueError("the simulator listens on loopback only (127.0.0.1 or localhost)")
        self.host = "127.0.0.1"
        self._requested_port = port
        self._workdir_arg = workdir
        self.verbose = verbose
        self.token_lifetime: float = 3599
        self.page_delay: float = 0.0
        self.enforce_budgets: bool = False
        self.clock_offset: float = 0.0
        self.tokens = auth.TokenStore()
        self._tenants: dict[str, SimTenant] = {}
        self._tenant_lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._requests_lock = threading.Lock()
        self._knobs = Knobs()
        self._budgets = Budgets()
        self._snapshots = SnapshotCache()
        self._codec = TokenCodec(secrets.token_bytes(32))
        self._page_sizes: dict[str, int] = {}
        self._downloads = DownloadStore()  # usage reports' pre-authenticated CSV links
        self._stop_event = threading.Event()
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        self._server: SimServer | None = None
        self._thread: threading.Thread | None = None
        self._workdir: str | None = None
        self._own_workdir = False
        self._ssl_ctx = None
        self.ca_path: str | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "GraphSimulator":
        if self._server is not None:
            return self
        if self._workdir_arg is None:
            self._workdir = tempfile.mkdtemp(prefix="td-graph-sim-")
            self._own_workdir = True
        else:
            self._workdir = self._workdir_arg
            os.makedirs(self._workdir, exist_ok=True)
        self._ssl_ctx, self.ca_path = make_tls(self._workdir)
        self._stop_event.clear()
        self._server = SimServer((self.host, self._requested_port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"graph-sim-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; prompt even with stalled requests or open keep-alive connections."""
        server = self._server
        if server is None:
            return
        self._stop_event.set()
        server.shutdown()
        server.server_close()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._server = None
        self._thread = None
        if self._own_workdir and self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> "GraphSimulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the simulator is not started; call start() first")
        return f"https://{self.host}:{self.port}"

    def now(self) -> float:
        """The simulator's clock (wall clock + ``clock_offset``): visibility, token expiry."""
        return time.time() + self.clock_offset

    # ------------------------------------------------------------------ tenants
    def add_tenant(self, profile: str = "e5", tenant_id: str | None = None, client_id: str | None = None,
                   client_secret: str | None = None, certificate_pem: str | bytes | None = None, seed: int = 0,
                   volumes: dict | None = None, permissions=None) -> SimTenant:
        """A tenant with an app registration (secret and optional certificate) and generated data.

        ``profile``: a licence profile of ``profiles.PROFILES`` (``all`` = every capability,
        ``e5`` = realistic E5, ``restricted`` = E5 with two permissions not granted, ``p1``,
        ``free``).  ``permissions``: the app permissions granted (an iterable of names); None =
        all of them (or, for ``restricted``, all but the withheld ones).  ``volumes``: object
        counts, see ``tenant.DEFAULT_VOLUMES``.
        """
        with self._tenant_lock:
            tid = tenant_id or str(uuid.uuid4())
            if tid.lower() in self._tenants:
                raise ValueError(f"tenant {tid} already exists")
            tenant = SimTenant(
                self, profile=profile, tenant_id=tid, client_id=client_id or str(uuid.uuid4()),
                client_secret=client_secret or _random_secret(), certificate_pem=certificate_pem, seed=seed,
                index=len(self._tenants), permissions=permissions,
            )
            tenant.populate(volumes)
            self._tenants[tid.lower()] = tenant
        return tenant

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
        if status not in (429, 500, 502, 503, 504):
            raise ValueError("status must be 429, 500, 502, 503 or 504")
        self._knobs.throttles.add(path_prefix, count, (status, retry_after))

    def fault(self, path_prefix: str, kind: str, count: int = 1) -> None:
        """The next ``count`` requests (login or Graph) under ``path_prefix`` misbehave.

        ``kind``: reset, truncated, short_read, not_json, stall, or ``slow:<seconds>``.
        """
        self._knobs.faults.add(path_prefix, count, parse_fault_kind(kind))

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
        self._knobs.clear()
        self._budgets.reset()
        self._page_sizes.clear()
        self.page_delay = 0.0


def _random_secret() -> str:
    # Entra secrets look like "Abc8Q~..." (40 chars); the shape does not matter, the entropy does.
    return secrets.token_urlsafe(30)[:36] + "~" + secrets.token_urlsafe(3)
