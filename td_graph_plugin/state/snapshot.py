"""What ``td-graph status`` reads from a state, whichever backend holds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["LOCAL", "SourceRow", "StateSnapshot"]

LOCAL = "local"  # the SQLite state's one process owns every tenant


@dataclass(frozen=True)
class SourceRow:
    """What the state holds about one tenant x source (None: never written)."""

    tenant: str
    source: str
    cursor: dict[str, Any] | None = None
    updated_at: float | None = None  # the checkpoint's last write
    last_success: float | None = None  # the last completed pass
    newest_event: float | None = None  # the newest event_time committed
    state: str | None = None  # source_status: ok | unlicensed | forbidden | disabled | failing
    reason: str | None = None
    since: float | None = None  # in this state since
    next_check: float | None = None  # held or failing: when it is tried again
    query_shape: str | None = None  # the query shape in use, once the state records one
    replica: str | None = LOCAL  # the owning replica: "local" (SQLite), the lease owner (PostgreSQL)


@dataclass(frozen=True)
class StateSnapshot:
    path: str  # the SQLite file, or the PostgreSQL database described without its password
    rows: dict[tuple[str, str], SourceRow]
    # PostgreSQL: tenant -> the replica holding its lease (a pair never run still has an owner);
    # None for SQLite, where one process ("local") owns every tenant.
    owners: dict[str, str] | None = None

    def owner(self, tenant: str) -> str | None:
        return LOCAL if self.owners is None else self.owners.get(tenant)
