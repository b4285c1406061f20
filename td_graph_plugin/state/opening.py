"""Which state backend a configuration asks for: the one place that decides.

``state.path`` (the default) is the SQLite store, one process; ``state.url`` the PostgreSQL
store shared by a cluster, where this process is ``cluster.replica``.  The isolation audit
records follow the state: with PostgreSQL they live in the same database (every replica and
the analyst's ``isolate`` see them), with SQLite in the separate isolation file
(``Config.isolation_state_path``) so ``isolate`` works while ``run`` holds the state's lock.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .backend import StateBackend
from .store import StateStore

if TYPE_CHECKING:
    from ..config.model import Config

__all__ = ["open_state", "open_isolation_store", "replica_name", "uses_postgres"]


def uses_postgres(config: Config) -> bool:
    return bool(getattr(config, "state_url", None))


def replica_name(config: Config) -> str:
    """This process's replica name (``cluster.replica``; LOCAL semantics do not apply)."""
    cluster = getattr(config, "cluster", None)
    if cluster is not None:
        return cluster.replica
    from ..config.model import default_replica

    return default_replica()


def open_state(config: Config, *, exclusive: bool = True) -> StateBackend:
    """The collector's state. ``exclusive``: SQLite takes its one-process lock; PostgreSQL
    refuses a second process connected under the same replica name."""
    if uses_postgres(config):
        from .postgres import PostgresStore  # psycopg only when a cluster is configured

        return PostgresStore(
            str(config.state_url), replica=replica_name(config), exclusive=exclusive,
            lease_ttl=config.cluster.lease_ttl if config.cluster else None,
        )
    return StateStore(config.state_path, exclusive=exclusive)


def open_isolation_store(config: Config, *, missing_ok: bool = False) -> StateBackend | None:
    """The isolation audit store, shared by the analyst's CLI and the running collector(s).

    ``missing_ok``: with SQLite, None while no isolation was ever recorded (the file does not
    exist) instead of creating it — what a reader such as the audit feed wants."""
    if uses_postgres(config):
        from .postgres import PostgresStore

        return PostgresStore(str(config.state_url), replica=replica_name(config), exclusive=False)
    path = config.isolation_state_path
    if missing_ok and not os.path.exists(path):
        return None
    return StateStore(path, exclusive=False)
