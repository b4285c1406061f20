"""The SQLite state's tables and their versions: created on first use, older files upgraded in
place (every row kept), a newer one refused.  ``store.StateStore`` opens through ``init_schema``.
"""

from __future__ import annotations

import sqlite3

from ..errors import StateError

__all__ = ["SCHEMA_VERSION", "init_schema"]

SCHEMA_VERSION = 4

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
-- v4: a tenant's discovery documents (licences and permissions, its OpenID configuration), so
-- a new process reuses them for their lifetime (plan.TenantPlanner, graph.auth).
CREATE TABLE IF NOT EXISTS tenant_cache (
    tenant TEXT NOT NULL, kind TEXT NOT NULL, at REAL NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (tenant, kind));
"""


def init_schema(db: sqlite3.Connection, path: str) -> None:
    """Check the file, upgrade an older schema, create what is missing.  A damaged file or a
    foreign database raises ``sqlite3.DatabaseError`` (the store names it), a newer schema
    ``StateError``."""
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
                f"state database {path} has schema version {version}, newer than this "
                f"td-graph understands ({SCHEMA_VERSION}); upgrade td-graph"
            )
        if version == 1:
            _migrate_v1(db)
    db.executescript("BEGIN;" + _SCHEMA + "COMMIT;")
    if "file" not in {r[1] for r in db.execute("PRAGMA table_info(outputs)")}:
        db.execute("ALTER TABLE outputs ADD COLUMN file TEXT")  # v2 files from before identities
    # v2 -> v3 and v3 -> v4 only add a table (created above): every row stays; the version moves up.
    db.execute(
        "INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (str(SCHEMA_VERSION),),
    )


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
