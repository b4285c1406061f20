"""Read-only view of a state database, for ``td-graph status`` while ``run`` holds the state.

The collector keeps an exclusive lock beside its state (``StateStore``); this reader never
touches that lock and never writes: it opens the SQLite file with ``mode=ro`` (a WAL reader
does not block the writer, https://www.sqlite.org/wal.html#concurrency).  When no ``-wal`` file
is there (no collector has the database open, and the last one checkpointed on close) it opens
the file ``immutable`` as well, so a read leaves no ``-wal``/``-shm`` behind.  A missing state
file is not an error: :func:`read_state` returns None (the collector never ran).
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import StateError
from .snapshot import LOCAL, SourceRow, StateSnapshot
from .store import SCHEMA_VERSION

if TYPE_CHECKING:
    from ..config.model import Config

__all__ = ["SourceRow", "StateSnapshot", "read_state", "LOCAL"]


def read_state(source: str | Config) -> StateSnapshot | None:
    """Everything the state says about each tenant x source; None when the state does not exist
    yet. ``source``: a SQLite path, or a config (its ``state.url`` when set, else its path).

    Raises ``StateError`` for a file that is not a td-graph state or has a newer schema.
    """
    if not isinstance(source, str):
        if getattr(source, "state_url", None):
            from .pgreader import read_pg_state

            return read_pg_state(str(source.state_url))
        source = source.state_path
    path = source
    if path == ":memory:" or not os.path.exists(path):
        return None
    db = _connect(path)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise sqlite3.DatabaseError("it has tables but no td-graph meta table")
        if "meta" in tables:
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row and int(row[0]) > SCHEMA_VERSION:
                raise StateError(
                    f"state database {path} has schema version {row[0]}, newer than this td-graph "
                    f"understands ({SCHEMA_VERSION}); run the td-graph that wrote it, or upgrade this one"
                )
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        if "checkpoints" in tables:
            for tenant, source, cursor, updated, success, newest in db.execute(
                "SELECT tenant, source, cursor, updated_at, last_success, newest_event FROM checkpoints"
            ):
                rows.setdefault((tenant, source), {}).update(
                    cursor=_json(cursor), updated_at=updated, last_success=success,
                    newest_event=newest or None,  # the store writes 0 when no event was seen
                )
        if "source_status" in tables:
            for tenant, source, state, reason, since, next_check in db.execute(
                "SELECT tenant, source, state, reason, since, next_check FROM source_status"
            ):
                rows.setdefault((tenant, source), {}).update(
                    state=state, reason=reason, since=since, next_check=next_check
                )
        for key, shape in _query_shapes(db, tables).items():
            rows.setdefault(key, {})["query_shape"] = shape
    except sqlite3.DatabaseError as exc:
        raise StateError(
            f"state database {path} cannot be read ({exc}); `td-graph check -c FILE` says whether "
            "the collector can open it"
        ) from None
    finally:
        db.close()
    return StateSnapshot(path, {k: SourceRow(k[0], k[1], **v) for k, v in rows.items()})


def _connect(path: str) -> sqlite3.Connection:
    """A read-only connection; ``immutable`` when no writer has the database open."""
    uri = "file:" + quote(os.path.abspath(path)) + "?mode=ro"
    if not os.path.exists(path + "-wal"):
        uri += "&immutable=1"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=5)
        db.execute("PRAGMA query_only=1")
    except sqlite3.Error as exc:
        raise StateError(f"cannot open state database {path} read-only: {exc}") from None
    return db


def _json(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _query_shapes(db: sqlite3.Connection, tables: set[str]) -> dict[tuple[str, str], str]:
    """(tenant, source) -> the query shape in use, from a ``query_shapes`` table when the state
    has one (its ``shape`` or ``name`` column); empty otherwise (every source: the default)."""
    if "query_shapes" not in tables:
        return {}
    columns = {r[1] for r in db.execute("PRAGMA table_info(query_shapes)")}
    column = next((c for c in ("shape", "name") if c in columns), None)
    if column is None or not {"tenant", "source"} <= columns:
        return {}
    return {
        (t, s): str(v) for t, s, v in db.execute(f"SELECT tenant, source, {column} FROM query_shapes") if v
    }
