"""``GraphSimulator``: the public object: lifecycle, tenants, request log and knobs.

The pieces it wires together: ``core`` (state and knobs every handler reads), ``transport``
(TLS + HTTP/1.1 keep-alive on loopback, faults at the byte level), ``pipeline`` (login vs
Graph routing and Graph's checks), ``auth`` (tokens), ``handlers`` (paging and delta over
``endpoints`` rows), ``tenant`` (data).  ``stop()`` is prompt: it stops the accept loop,
releases stalled/slow/delayed handlers via one event, and shuts every open connection.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import threading
import uuid
from typing import Iterable

from . import directory_writes  # noqa: F401  (registers the user-isolation routes)
from .core import SimCore
from .records import RequestRecord
from .role_catalogue import role_names
from .tenant import SimTenant
from .tls import make_tls
from .transport import SimServer

__all__ = ["GraphSimulator", "RequestRecord"]


class GraphSimulator(SimCore):
    """A TLS fake of login.microsoftonline.com + graph.microsoft.com on loopback.

    ``GraphSimulator(host="127.0.0.1", port=0, workdir=None)``; ``start()``/``stop()`` or use
    it as a context manager.  See the package docstring for the knobs.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, workdir: str | None = None, verbose: bool = False):
        super().__init__(host=host, port=port, verbose=verbose)
        self._requested_port = port
        self._workdir_arg = workdir
        self._server: SimServer | None = None
        self._thread: threading.Thread | None = None
        self._workdir: str | None = None
        self._own_workdir = False

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

    def role_names(self, extra: Iterable[str] = ()) -> list[str]:
        """Every application permission the simulated Graph exposes (what a tenant can be granted)."""
        return role_names(extra)


def _random_secret() -> str:
    # Entra secrets look like "Abc8Q~..." (40 chars); the shape does not matter, the entropy does.
    return secrets.token_urlsafe(30)[:36] + "~" + secrets.token_urlsafe(3)
