"""Who asked: per authenticated Graph request, the client identity (the token's ``client_id``)
and the User-Agent, with when the request arrived and when its answer was ready.

A cluster replica names itself in its User-Agent (``td-graph/x (replica NAME)``), so a test
can prove from this log that no tenant was collected by two replicas at once.  Off unless a
test attaches it (``attach(sim)``); nothing secret is kept (no token, no query, no body).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .core import SimCore

__all__ = ["ClientRequest", "ClientLog", "attach", "note", "replica_of"]

_REPLICA = re.compile(r"\(replica ([^)]+)\)")


@dataclass(frozen=True)
class ClientRequest:
    tenant_id: str
    client_id: str
    user_agent: str
    path: str
    status: int
    started: float  # time.time() when the request reached the Graph pipeline
    finished: float  # time.time() when its answer was ready

    @property
    def replica(self) -> str | None:
        return replica_of(self.user_agent)


def replica_of(user_agent: str) -> str | None:
    m = _REPLICA.search(user_agent or "")
    return m.group(1) if m else None


class ClientLog:
    def __init__(self) -> None:
        self._rows: list[ClientRequest] = []
        self._lock = threading.Lock()

    def add(self, row: ClientRequest) -> None:
        with self._lock:
            self._rows.append(row)

    def rows(self) -> list[ClientRequest]:
        with self._lock:
            return list(self._rows)


def attach(sim: "SimCore") -> ClientLog:
    """Start recording on ``sim`` (idempotent); returns the log."""
    log = getattr(sim, "client_log", None)
    if log is None:
        log = ClientLog()
        sim.client_log = log  # type: ignore[attr-defined]
    return log


def note(sim: "SimCore", tenant: Any, client_id: str, headers: Any, path: str, status: int, started: float) -> None:
    """The pipeline's hook: one authenticated Graph request (a no-op unless attached)."""
    log = getattr(sim, "client_log", None)
    if log is None:
        return
    log.add(ClientRequest(tenant.tenant_id, client_id, headers.get("User-Agent") or "", path, status, started, time.time()))
