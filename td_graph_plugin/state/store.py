"""SQLite state: cursors, dedup keys, object hashes and the file output's committed offset.

One transaction per committed page holds everything that page changed (cursor, dedup keys,
hashes, output offset and the identity of the file it is in), so after a kill -9 or a power
loss the state and the output agree; ``commit_many`` puts several waiting pages in one
transaction (group commit: one WAL sync for all of them, all or nothing).  WAL mode keeps readers (doctor, tests) from blocking the
collector; ``synchronous=FULL`` makes each commit durable before it returns.  A second td-graph
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

__all__ = ["StateStore", "Commit", "SCHEMA_VERSION", "OutputMark"]

SCHEMA_VERSION = 3
STATE_MODE = 0o600  # cursors and audit records: the owner's only (-wal/-shm inherit it)

# (output name, position, identity of the file the position is in); the short form without
# the identity serves outputs that have none.
OutputMark = tuple[str, int] | tuple[str, int, str | None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    tenant TEXT NOT NULL, source TEXT NOT NULL, cursor TEXT NOT NULL,
    updated_at REAL NOT NULL, last_success REAL, newest_event REAL,
    PRIMARY KEY (tenant, source));
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, source TEXT NOT NULL, UNIQUE (tenant, source));
-- Dedup keys ordered by time: appends are local, lookups are one range per page and pruning
-- is one range delete (v1 keyed by random ids, with a second index, wrote ~10x the WAL).
CREATE TABLE IF NOT EXISTS seen (
    stream INTEGER NOT NULL, event_time REAL NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (stream, event_time, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    tenant TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, hash TEXT NOT NULL,
    gen INTEGER NOT NULL, PRIMARY KEY (tenant, source, id)) WITHOUT ROWID;
-- file: identity (device:inode) of the file the position is an offset in (NULL: the file at
-- the output's path, as stored before identities were).
CREATE TABLE IF NOT EXISTS outputs (name TEXT PRIMARY KEY, position INTEGER NOT NULL, file TEXT);
CREATE TABLE IF NOT EXISTS source_status (
    tenant TEXT NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL, reason TEXT,
    since REAL NOT NULL, next_check REAL, PRIMARY KEY (tenant, source));
CREATE TABLE IF NOT EXISTS isolations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, user_id TEXT NOT NULL,
    action TEXT NOT NULL, at REAL NOT NULL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS isolations_by_user ON isolations (tenant, user_id, id);
-- v3: the query shape a source fell back to (and why), so a restart keeps the healed shape.
CREATE TABLE IF NOT EXISTS query_shapes (
    tenant TEXT NOT NULL, source TEXT NOT NULL, shape TEXT NOT NULL, reason TEXT,
    since REAL NOT NULL, PRIMARY KEY (tenant, source));
"""


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
        db = self._db
        check = db.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check[0] if check else 'no answer'}")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise sqlite3.DatabaseError("it has tables but no td-graph meta table")
        if "meta" in tables:
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"state database {self.path} has schema version {version}, newer than this "
                    f"td-graph understands ({SCHEMA_VERSION}); upgrade td-graph"
                )
            if version == 1:
                self._migrate_v1(db)
        db.executescript("BEGIN;" + _SCHEMA + "COMMIT;")
        if "file" not in {r[1] for r in db.execute("PRAGMA table_info(outputs)")}:
            db.execute("ALTER TABLE outputs ADD COLUMN file TEXT")  # v2 files from before identities
        # v2 -> v3 only adds a table (created above): every row stays; the version moves up.
        db.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (str(SCHEMA_VERSION),),
        )
        self._streams: dict[tuple[str, str], int] = {}

    @staticmethod
    def _migrate_v1(db: sqlite3.Connection) -> None:
        """v1 -> v2: the dedup keys move to the time-ordered table, none is lost."""
        db.executescript(
            "BEGIN;"
            "ALTER TABLE seen RENAME TO seen_v1;"
            "DROP INDEX IF EXISTS seen_by_time;"
            + _SCHEMA
            + "INSERT OR IGNORE INTO streams(tenant, source) SELECT DISTINCT tenant, source FROM seen_v1;"
            "INSERT OR IGNORE INTO seen(stream, event_time, key) SELECT s.id, v.event_time, v.key "
            "FROM seen_v1 v JOIN streams s ON s.tenant=v.tenant AND s.source=v.source;"
            "DROP TABLE seen_v1;"
            "UPDATE meta SET value='2' WHERE key='schema_version';"
            "COMMIT;"
        )

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
        with self._lock:
            try:
                self._db.close()
            finally:
                self._release_process_lock()

    # --- reads ---------------------------------------------------------------------------
    def cursor(self, tenant: str, source: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT cursor FROM checkpoints WHERE tenant=? AND source=?", (tenant, source)
            ).fetchone()
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
        with self._lock:
            sid = self._stream(tenant, source)
            rows = self._db.execute(
                "SELECT event_time, key FROM seen WHERE stream=? AND event_time BETWEEN ? AND ?",
                (sid, lo, hi),
            ).fetchall()
        return {k for t, k in rows if (t, k) in wanted}

    def object_hashes(self, tenant: str, source: str, ids: Iterable[str]) -> dict[str, str]:
        ids = list(ids)
        out: dict[str, str] = {}
        with self._lock:
            for i in range(0, len(ids), 900):
                chunk = ids[i : i + 900]
                marks = ",".join("?" * len(chunk))
                out.update(
                    self._db.execute(
                        f"SELECT id, hash FROM objects WHERE tenant=? AND source=? AND id IN ({marks})",
                        (tenant, source, *chunk),
                    ).fetchall()
                )
        return out

    def stale_objects(self, tenant: str, source: str, gen: int, limit: int = 1000) -> list[str]:
        """Objects not seen by snapshot generation ``gen`` (gone since the last full read)."""
        with self._lock:
            return [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM objects WHERE tenant=? AND source=? AND gen<? ORDER BY id LIMIT ?",
                    (tenant, source, gen, limit),
                )
            ]

    def output_position(self, name: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT position FROM outputs WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else None

    def output_mark(self, name: str) -> tuple[int, str | None] | None:
        """(committed position, identity of the file it is in) of an output, None if never set."""
        with self._lock:
            row = self._db.execute("SELECT position, file FROM outputs WHERE name=?", (name,)).fetchone()
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
        with self._lock:
            row = self._db.execute(
                "SELECT state, reason, since, next_check FROM source_status WHERE tenant=? AND source=?",
                (tenant, source),
            ).fetchone()
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
        with self._lock:
            row = self._db.execute(
                "SELECT shape FROM query_shapes WHERE tenant=? AND source=?", (tenant, source)
            ).fetchone()
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

    # --- isolation audit -----------------------------------------------------------------
    def add_isolation(self, tenant: str, user_id: str, action: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO isolations(tenant, user_id, action, at, record) VALUES (?,?,?,?,?)",
                (tenant, user_id, action, time.time(), json.dumps(record, sort_keys=True)),
            )

    def isolations(self, tenant: str, user_id: str) -> Iterator[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT action, at, record FROM isolations WHERE tenant=? AND user_id=? ORDER BY id",
                (tenant, user_id),
            ).fetchall()
        for action, at, record in rows:
            yield {"action": action, "at": at, **json.loads(record)}

    def isolation_rows(self, tenant: str, after: int, limit: int = 500) -> list[tuple[int, dict[str, Any]]]:
        """Audit records stored after row ``after`` (the collector's feed into the pipeline)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, record FROM isolations WHERE tenant=? AND id>? ORDER BY id LIMIT ?",
                (tenant, after, limit),
            ).fetchall()
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
