"""What every state backend offers: the SQLite store (one process) and the PostgreSQL store
(a cluster of replicas) keep the same guarantees behind the same methods, so the collector,
the sink and the isolation service never know which one they write to.

``Fence`` is the lease a replica holds for a tenant: with fencing set (PostgreSQL only), a
commit for a tenant is written only if the database still says this replica owns the tenant
at this epoch — a replica that was frozen past its lease can no longer overwrite the new
owner's checkpoint (``LeaseLost``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol, runtime_checkable

from .store import Commit, OutputMark

__all__ = ["StateBackend", "Fence", "FenceProvider"]


@dataclass(frozen=True)
class Fence:
    """The lease this replica believes it holds for ``tenant``: ``owner`` at ``epoch``."""

    tenant: str
    owner: str
    epoch: int


# tenant -> the fence to commit under, or None when this replica does not hold the tenant.
FenceProvider = Callable[[str], "Fence | None"]


@runtime_checkable
class StateBackend(Protocol):
    """The durable state of a collector. Every write that matters goes through ``commit``:
    one transaction per delivered page, returning only once it is durable."""

    # reads
    def cursor(self, tenant: str, source: str) -> dict[str, Any] | None: ...
    def seen_keys(self, tenant: str, source: str, keys: Iterable[tuple[str, float]]) -> set[str]: ...
    def object_hashes(self, tenant: str, source: str, ids: Iterable[str]) -> dict[str, str]: ...
    def stale_objects(self, tenant: str, source: str, gen: int, limit: int = 1000) -> list[str]: ...
    def output_position(self, name: str) -> int | None: ...
    def output_mark(self, name: str) -> tuple[int, str | None] | None: ...

    # writes
    def commit(self, c: Commit, *, output: OutputMark | None = None) -> None: ...
    def set_output_position(self, name: str, position: int, file: str | None = None) -> None: ...
    def reset_source(self, tenant: str, source: str) -> None: ...

    # source status (licence / permission state)
    def source_status(self, tenant: str, source: str) -> dict[str, Any] | None: ...
    def set_source_status(
        self, tenant: str, source: str, state: str, reason: str | None, next_check: float | None
    ) -> None: ...

    # query shapes (a source's healed query)
    def query_shape(self, tenant: str, source: str) -> str | None: ...
    def set_query_shape(self, tenant: str, source: str, shape: str | None, reason: str | None) -> None: ...

    # a tenant's discovery documents (kind "discovery": licences and permissions; "openid": its
    # OpenID configuration), JSON text a new process reuses; the callers judge freshness
    def cached(self, tenant: str, kind: str) -> tuple[float, str] | None:
        """(stored_at epoch seconds, payload text) of a tenant's cached discovery document, None if absent."""
        ...

    def set_cached(self, tenant: str, kind: str, at: float, payload: str) -> None:
        """Store (upsert) the payload; ``at`` is the time the document was read from Graph (caller's clock)."""
        ...

    # isolation audit
    def add_isolation(self, tenant: str, user_id: str, action: str, record: dict[str, Any]) -> None: ...
    def isolations(self, tenant: str, user_id: str) -> Iterator[dict[str, Any]]: ...
    def isolation_rows(self, tenant: str, after: int, limit: int = 500) -> list[tuple[int, dict[str, Any]]]: ...

    # cluster (a no-op on SQLite: one process owns every tenant)
    def set_fencing(self, provider: FenceProvider | None) -> None: ...

    # tests and doctor
    def count(self, table: str, tenant: str, source: str) -> int: ...
    def close(self) -> None: ...
