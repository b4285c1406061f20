"""SQLite state: cursors, dedup keys, object hashes and the file output's committed offset.

One transaction per committed page holds everything that page changed (cursor, dedup keys,
hashes, output offset and the identity of the file it is in), so after a kill -9 or a power
loss the state and the output agree; ``commit_many`` puts several waiting pages in one
transaction (group commit: one WAL sync for all of them, all or nothing).  WAL mode lets readers
(``sqlite_readers``: the workers' own reads; doctor, status) run beside the one writer instead of
behind its commits; ``synchronous=FULL`` makes each commit durable before it returns.  The
tables and their upgrades: ``sqlite_schema``.  A second td-graph
on the same file (through a symlink too: the lock is on the real path), a corrupt file or a
newer schema is a clear ``StateError`` — never a silent reset.  The files are the owner's only
(0600): they hold every source's cursor.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

from ..errors import StateError, StateLocked
from .sqlite_readers import ReaderPool
from .sqlite_schema import SCHEMA_VERSION, init_schema

__all__ = ["StateStore", "Commit", "SCHEMA_VERSION", "OutputMark"]

STATE_MODE = 0o600  # cursors and audit records: the owner's only (-wal/-shm inherit it)

# (output name, position, identity of the file the position is in); the short form without
# the identity serves outputs that have none.
OutputMark = tuple[str, int] | tuple[str, int, str | None]




@dataclass
class Commit:
    """Everything one delivered page changes, written in one transaction."""

    tenant: str
    source: str
    cursor: dict[str, Any]
    seen: Sequence[tuple[str, float]] = ()
    prune_seen_before: float | None = None
    upsert_objects: Sequence[tuple[str, str, int]] = ()
    delete_objects: Sequence[str] = ()
    newest_event: float | None = None
    success: bool = False


class StateStore:
    """``exclusive``: hold the one-process lock (the collector's state). The isolation audit
    store is shared (``exclusive=False``): the analyst's CLI writes while the collector reads."""

    def __init__(self, path: str, *, exclusive: bool = True) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._lockfile: int | None = None
        self._readers = ReaderPool(path) if path != ":memory:" else None  # reads beside the writer
        if path != ":memory:" and exclusive:
            self._acquire_process_lock(path)
        elif path != ":memory:":
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise StateError(f"state path {path}: folder {folder} does not exist")
        try:
            if path != ":memory:":
                self._create_private(path)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: in WAL mode the WAL is synced at every commit, so a committed checkpoint
            # survives a power loss; NORMAL may roll the last commits back, and the output
            # (synced before each commit) would then hold pages the state forgot
            # (https://www.sqlite.org/pragma.html#pragma_synchronous).
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            self._release_process_lock()
            if "locked" in str(exc):
                raise StateError(f"state database {path} is locked by another process: {exc}") from None
            raise StateError(
                f"state database {path} is corrupt or not a td-graph state file ({exc}); "
                "move it aside to start afresh (collection restarts from each source's lookback)"
            ) from None
        except BaseException:  # a newer schema, an unwritable folder: the lock goes with it
            self._release_process_lock()
            raise

    # --- lifecycle -----------------------------------------------------------------------
    def _acquire_process_lock(self, path: str) -> None:
        """One collector per state: the lock is taken on the real path, so a symlink to the
        same database cannot open a second writer."""
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise StateError(f"state.path {path}: folder {folder} does not exist")
        lock_path = os.path.realpath(path) + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, STATE_MODE)
        except OSError as exc:
            raise StateError(f"cannot open state lock {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StateLocked(path, owner) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lockfile = fd

    def _release_process_lock(self) -> None:
        if self._lockfile is not None:
            try:
                fcntl.flock(self._lockfile, fcntl.LOCK_UN)
            finally:
                os.close(self._lockfile)
                self._lockfile = None

    @staticmethod
    def _create_private(path: str) -> None:
        """Create a new database file 0600 before SQLite does (it would use 0644); SQLite gives
        its -wal and -shm files the database file's mode."""
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, STATE_MODE))
        except FileExistsError:
            pass
        except OSError as exc:
            raise StateError(f"cannot create state database {path}: {exc.strerror}") from None

    def _init_schema(self) -> None:
        init_schema(self._db, self.path)
        self._streams: dict[tuple[str, str], int] = {}

    def _stream(self, tenant: str, source: str) -> int:
        """The integer id of (tenant, source) for the dedup table (created on first use)."""
        key = (tenant, source)
        sid = self._streams.get(key)
        if sid is None:
            self._db.execute("INSERT OR IGNORE INTO streams(tenant, source) VALUES (?, ?)", key)
            sid = self._db.execute("SELECT id FROM streams WHERE tenant=? AND source=?", key).fetchone()[0]
            self._streams[key] = sid
        return sid

    def set_fencing(self, provider: Any) -> None:
        """SQLite has one process (the file lock): no other replica can take a tenant over."""

    def close(self) -> None:
        if self._readers is not None:
            self._readers.close()
        with self._lock:
            try:
                self._db.close()
            finally:
                self._release_process_lock()

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Every row of one read: on a pooled reader (``sqlite_readers``), or on the writer under
        its lock for ``:memory:`` (one database per connection).  Errors become ``StateError``."""
        try:
            if self._readers is None:
                with self._lock:
                    return self._db.execute(sql, params).fetchall()
            return self._readers.query(sql, params)
        except sqlite3.Error as exc:
            raise StateError(f"cannot read state database {self.path}: {exc}") from None

    # --- reads ---------------------------------------------------------------------------
    def cursor(self, tenant: str, source: str) -> dict[str, Any] | None:
        rows = self._query("SELECT cursor FROM checkpoints WHERE tenant=? AND source=?", (tenant, source))
        row = rows[0] if rows else None
        return json.loads(row[0]) if row else None

    def seen_keys(self, tenant: str, source: str, keys: Iterable[tuple[str, float]]) -> set[str]:
        """Which (key, event_time) pairs were already emitted (committed) for this source.

        One range read over the page's time span; the pairs are matched exactly, so the time a
        key is looked up with must be the time it was stored with (the collector's job).
        """
        wanted = {(float(t), k) for k, t in keys}
        if not wanted:
            return set()
        lo = min(t for t, _ in wanted)
        hi = max(t for t, _ in wanted)
        # The stream's committed id (the writer's cache may hold one of a transaction in
        # progress); none yet: nothing was committed for it.
        rows = self._query(
            "SELECT event_time, key FROM seen WHERE stream=(SELECT id FROM streams WHERE tenant=? AND source=?) "
            "AND event_time BETWEEN ? AND ?",
            (tenant, source, lo, hi),
        )
        return {k for t, k in rows if (t, k) in wanted}

    def object_hashes(self, tenant: str, source: str, ids: Iterable[str]) -> dict[str, str]:
        ids = list(ids)
        out: dict[str, str] = {}
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            marks = ",".join("?" * len(chunk))
            out.update(self._query(f"SELECT id, hash FROM objects WHERE tenant=? AND source=? AND id IN ({marks})",
                                   (tenant, source, *chunk)))
        return out

    def stale_objects(self, tenant: str, source: str, gen: int, limit: int = 1000) -> list[str]:
        """Objects not seen by snapshot generation ``gen`` (gone since the last full read)."""
        return [r[0] for r in self._query(
            "SELECT id FROM objects WHERE tenant=? AND source=? AND gen<? ORDER BY id LIMIT ?", (tenant, source, gen, limit)
        )]

    def output_position(self, name: str) -> int | None:
        rows = self._query("SELECT position FROM outputs WHERE name=?", (name,))
        row = rows[0] if rows else None
        return int(row[0]) if row else None

    def output_mark(self, name: str) -> tuple[int, str | None] | None:
        """(committed position, identity of the file it is in) of an output, None if never set."""
        rows = self._query("SELECT position, file FROM outputs WHERE name=?", (name,))
        row = rows[0] if rows else None
        return (int(row[0]), row[1]) if row else None

    # --- writes --------------------------------------------------------------------------
    def commit(self, c: Commit, *, output: OutputMark | None = None) -> None:
        """Write one page's state (and the output's offset and file) atomically."""
        self.commit_many([(c, output)])

    def commit_many(self, commits: Sequence[tuple[Commit, OutputMark | None]]) -> list[None]:
        """Group commit: the pages in ONE transaction (one WAL sync), in the order given; all or
        nothing.  One None per page (no fences here; PostgreSQL may return a ``LeaseLost``)."""
        now = time.time()
        rows = [(c, json.dumps(c.cursor, separators=(",", ":"), sort_keys=True), out) for c, out in commits]
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                for c, cursor_json, output in rows:
                    self._write_commit(c, cursor_json, output, now)
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                self._streams.clear()  # ids created by the rolled-back transaction do not exist
                if isinstance(exc, sqlite3.Error):
                    raise StateError(f"cannot write state database {self.path}: {exc}") from None
                raise
        return [None] * len(rows)

    def _write_commit(self, c: Commit, cursor_json: str, output: OutputMark | None, now: float) -> None:
        db = self._db
        db.execute(
            "INSERT INTO checkpoints(tenant, source, cursor, updated_at, last_success, newest_event) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT(tenant, source) DO UPDATE SET "
            "cursor=excluded.cursor, updated_at=excluded.updated_at, "
            "last_success=COALESCE(excluded.last_success, checkpoints.last_success), "
            "newest_event=MAX(COALESCE(checkpoints.newest_event, 0), COALESCE(excluded.newest_event, 0))",
            (c.tenant, c.source, cursor_json, now, now if c.success else None, c.newest_event),
        )
        if c.seen or c.prune_seen_before is not None:
            sid = self._stream(c.tenant, c.source)
        if c.seen:
            db.executemany(
                "INSERT OR IGNORE INTO seen(stream, event_time, key) VALUES (?,?,?)",
                [(sid, float(t), k) for k, t in c.seen],
            )
        if c.prune_seen_before is not None:
            db.execute("DELETE FROM seen WHERE stream=? AND event_time<?", (sid, c.prune_seen_before))
        if c.upsert_objects:
            db.executemany(
                "INSERT INTO objects(tenant, source, id, hash, gen) VALUES (?,?,?,?,?) "
                "ON CONFLICT(tenant, source, id) DO UPDATE SET hash=excluded.hash, gen=excluded.gen",
                [(c.tenant, c.source, i, h, g) for i, h, g in c.upsert_objects],
            )
        if c.delete_objects:
            db.executemany("DELETE FROM objects WHERE tenant=? AND source=? AND id=?",
                           [(c.tenant, c.source, i) for i in c.delete_objects])
        if output is not None:
            self._write_output(*output)

    def set_output_position(self, name: str, position: int, file: str | None = None) -> None:
        with self._lock:
            self._write_output(name, position, file)

    def _write_output(self, name: str, position: int, file: str | None = None) -> None:
        self._db.execute(
            "INSERT INTO outputs(name, position, file) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET position=excluded.position, file=excluded.file",
            (name, position, file),
        )

    def reset_source(self, tenant: str, source: str) -> None:
        """Forget a source's cursor, keys and hashes (explicit operator action only)."""
        with self._lock:
            for table in ("checkpoints", "objects", "source_status", "query_shapes"):
                self._db.execute(f"DELETE FROM {table} WHERE tenant=? AND source=?", (tenant, source))
            self._db.execute("DELETE FROM seen WHERE stream=?", (self._stream(tenant, source),))

    # --- source status (licence / permission state) -------------------------------------
    def source_status(self, tenant: str, source: str) -> dict[str, Any] | None:
        rows = self._query("SELECT state, reason, since, next_check FROM source_status WHERE tenant=? AND source=?",
                (tenant, source),)
        row = rows[0] if rows else None
        if not row:
            return None
        return {"state": row[0], "reason": row[1], "since": row[2], "next_check": row[3]}

    def set_source_status(
        self, tenant: str, source: str, state: str, reason: str | None, next_check: float | None
    ) -> None:
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO source_status(tenant, source, state, reason, since, next_check) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT(tenant, source) DO UPDATE SET "
                "since=CASE WHEN source_status.state=excluded.state THEN source_status.since ELSE excluded.since END, "
                "state=excluded.state, reason=excluded.reason, next_check=excluded.next_check",
                (tenant, source, state, reason, now, next_check),
            )

    # --- query shapes (a source's healed query) ---------------------------------------
    def query_shape(self, tenant: str, source: str) -> str | None:
        """The query shape a source settled on (None: the spec's default shape)."""
        rows = self._query("SELECT shape FROM query_shapes WHERE tenant=? AND source=?", (tenant, source))
        row = rows[0] if rows else None
        return row[0] if row else None

    def set_query_shape(self, tenant: str, source: str, shape: str | None, reason: str | None) -> None:
        """Remember (or, with None, forget) the shape so a restart does not relearn it."""
        with self._lock:
            if shape is None:
                self._db.execute("DELETE FROM query_shapes WHERE tenant=? AND source=?", (tenant, source))
                return
            self._db.execute(
                "INSERT INTO query_shapes(tenant, source, shape, reason, since) VALUES (?,?,?,?,?) "
                "ON CONFLICT(tenant, source) DO UPDATE SET reason=excluded.reason, "
                "since=CASE WHEN query_shapes.shape=excluded.shape THEN query_shapes.since ELSE excluded.since END, "
                "shape=excluded.shape",
                (tenant, source, shape, reason, time.time()),
            )

    # --- per-tenant cache (discovery documents) ----------------------------------------
    def cached(self, tenant: str, kind: str) -> tuple[float, str] | None:
        """(time it was read from Graph, payload) of a tenant's cached document, None if absent."""
        rows = self._query("SELECT at, payload FROM tenant_cache WHERE tenant=? AND kind=?", (tenant, kind))
        row = rows[0] if rows else None
        return (float(row[0]), row[1]) if row else None

    def set_cached(self, tenant: str, kind: str, at: float, payload: str) -> None:
        """Store (replace) a tenant's cached document."""
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO tenant_cache(tenant, kind, at, payload) VALUES (?,?,?,?) "
                    "ON CONFLICT(tenant, kind) DO UPDATE SET at=excluded.at, payload=excluded.payload",
                    (tenant, kind, float(at), payload),
                )
        except sqlite3.Error as exc:
            raise StateError(f"cannot write state database {self.path}: {exc}") from None

    # --- isolation audit -----------------------------------------------------------------
    def add_isolation(self, tenant: str, user_id: str, action: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO isolations(tenant, user_id, action, at, record) VALUES (?,?,?,?,?)",
                (tenant, user_id, action, time.time(), json.dumps(record, sort_keys=True)),
            )

    def isolations(self, tenant: str, user_id: str) -> Iterator[dict[str, Any]]:
        rows = self._query("SELECT action, at, record FROM isolations WHERE tenant=? AND user_id=? ORDER BY id",
                (tenant, user_id),)
        for action, at, record in rows:
            yield {"action": action, "at": at, **json.loads(record)}

    def isolation_rows(self, tenant: str, after: int, limit: int = 500) -> list[tuple[int, dict[str, Any]]]:
        """Audit records stored after row ``after`` (the collector's feed into the pipeline)."""
        rows = self._query("SELECT id, record FROM isolations WHERE tenant=? AND id>? ORDER BY id LIMIT ?",
                (tenant, after, limit),)
        return [(row_id, json.loads(record)) for row_id, record in rows]

    def count(self, table: str, tenant: str, source: str) -> int:
        """Row count for tests and doctor (table is one of seen, objects)."""
        if table not in ("seen", "objects"):
            raise ValueError(table)
        with self._lock:
            if table == "seen":
                return self._db.execute(
                    "SELECT COUNT(*) FROM seen WHERE stream=?", (self._stream(tenant, source),)
                ).fetchone()[0]
            return self._db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE tenant=? AND source=?", (tenant, source)
            ).fetchone()[0]
