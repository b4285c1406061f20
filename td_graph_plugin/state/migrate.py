"""Move a single-node SQLite state into PostgreSQL (``td-graph state migrate``).

Everything that makes collection resume where it stopped is copied, in ONE PostgreSQL
transaction (all or nothing): cursors (with last success and newest event), dedup keys,
object hashes, source statuses, query shapes, the isolation audit records (from the separate
isolation file, their row ids kept: the isolation feed's cursor is a row id) and, when a
replica is named, the file output's committed position for that replica.

The SQLite state is opened with its one-process lock held for the whole copy: a running
collector refuses the migration (``StateLocked``), and no collector can start mid-copy.  The
target must hold no td-graph state unless ``force``, which empties the state tables first
(in the same transaction; the cluster's ``replicas``/``leases`` rows are left alone).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import psycopg

from ..errors import StateError
from .pgschema import SCHEMA as S
from .pgschema import describe_url, mask, migrate
from .pgconnect import connect_once
from .store import StateStore

__all__ = ["MigrationResult", "migrate_sqlite_to_postgres", "STATE_TABLES"]

# The tables that hold state (not the cluster's coordination): "empty" means empty here.
STATE_TABLES = ("checkpoints", "streams", "seen", "objects", "outputs", "source_status", "query_shapes", "isolations",
                "tenant_cache")


@dataclass
class MigrationResult:
    target: str
    counts: dict[str, int] = field(default_factory=dict)


def migrate_sqlite_to_postgres(
    state_path: str, url: str, *, isolation_path: str | None = None, replica: str | None = None,
    force: bool = False,
) -> MigrationResult:
    """Copy ``state_path`` (and ``isolation_path`` when it exists) into the database at ``url``."""
    if not os.path.exists(state_path):
        raise StateError(f"state file {state_path} does not exist (nothing to migrate)")
    where = describe_url(url)
    source = StateStore(state_path)  # the one-process lock: refuses a running collector
    iso = None
    try:
        if isolation_path and os.path.exists(isolation_path):
            iso = StateStore(isolation_path, exclusive=False)
        conn = connect_once(url, "td-graph:migrate")
        try:
            migrate(conn, where)
            with conn.transaction():
                _prepare_target(conn, where, force)
                counts = _copy(conn, source, iso, replica)
        except psycopg.Error as exc:
            raise StateError(f"migration into {where} failed, nothing was written: {mask(str(exc), url)}") from None
        finally:
            conn.close()
    finally:
        if iso is not None:
            iso.close()
        source.close()
    return MigrationResult(where, counts)


def _prepare_target(conn: psycopg.Connection, where: str, force: bool) -> None:
    used = [t for t in STATE_TABLES if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {S}.{t})").fetchone()[0]]
    if not used:
        return
    if not force:
        raise StateError(
            f"{where} already holds td-graph state (tables: {', '.join(used)}); migrate into an empty "
            "database, or pass --force to replace that state (stop every replica first)"
        )
    conn.execute(f"TRUNCATE {', '.join(f'{S}.{t}' for t in STATE_TABLES)} RESTART IDENTITY")


def _rows(store: StateStore, sql: str) -> list[tuple[Any, ...]]:
    return store._db.execute(sql).fetchall()  # same package: the migration reads SQLite directly


def _copy_rows(conn: psycopg.Connection, table: str, columns: str, rows: Iterable[tuple[Any, ...]]) -> int:
    n = 0
    with conn.cursor().copy(f"COPY {S}.{table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def _copy(
    conn: psycopg.Connection, source: StateStore, iso: StateStore | None, replica: str | None
) -> dict[str, int]:
    counts: dict[str, int] = {}
    counts["checkpoints"] = _copy_rows(
        conn, "checkpoints", "tenant, source, cursor, updated_at, last_success, newest_event",
        _rows(source, "SELECT tenant, source, cursor, updated_at, last_success, newest_event FROM checkpoints"),
    )
    # stream ids are kept: the dedup keys refer to them
    streams = _rows(source, "SELECT id, tenant, source FROM streams")
    _copy_rows(conn, "streams", "id, tenant, source", streams)
    if streams:
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{S}.streams', 'id'), %s)", (max(r[0] for r in streams),))
    counts["dedup keys"] = _copy_rows(
        conn, "seen", "stream, event_time, key", _rows(source, "SELECT stream, event_time, key FROM seen")
    )
    counts["object hashes"] = _copy_rows(
        conn, "objects", "tenant, source, id, hash, gen", _rows(source, "SELECT tenant, source, id, hash, gen FROM objects")
    )
    counts["source statuses"] = _copy_rows(
        conn, "source_status", "tenant, source, state, reason, since, next_check",
        _rows(source, "SELECT tenant, source, state, reason, since, next_check FROM source_status"),
    )
    counts["query shapes"] = _copy_rows(
        conn, "query_shapes", "tenant, source, shape, reason, since",
        _rows(source, "SELECT tenant, source, shape, reason, since FROM query_shapes"),
    )
    # Discovery documents: only a cache, carried over so the first run on PostgreSQL reuses them.
    counts["cached documents"] = _copy_rows(
        conn, "tenant_cache", "tenant, kind, at, payload", _rows(source, "SELECT tenant, kind, at, payload FROM tenant_cache")
    )
    # The audit records live in the isolation file (Config.isolation_state_path), the store the
    # isolation feed reads; their ids are kept because the feed's cursor is a row id.
    records: dict[int, tuple[Any, ...]] = {}
    if iso is not None:
        for row in _rows(iso, "SELECT id, tenant, user_id, action, at, record FROM isolations"):
            records[row[0]] = row
    counts["isolation records"] = _copy_rows(
        conn, "isolations", "id, tenant, user_id, action, at, record", (records[k] for k in sorted(records))
    )
    if records:
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{S}.isolations', 'id'), %s)", (max(records),))
    outputs = _rows(source, "SELECT name, position, file FROM outputs") if replica else []
    counts["output positions"] = _copy_rows(
        conn, "outputs", "replica, name, position, file", ((replica, n, p, f) for n, p, f in outputs)
    )
    return counts
