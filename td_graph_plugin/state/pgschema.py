"""The PostgreSQL state's schema, its versioned migrations, and safe descriptions of a URL.

Every table lives in the ``td_graph`` schema (one database can hold other applications'
tables; ``DROP SCHEMA td_graph CASCADE`` removes td-graph's state and nothing else).  Names
are always qualified, never set through ``search_path``: a startup ``options`` parameter does
not survive transaction-pooling proxies (PgBouncer).

Migrations are a list of steps; step N takes the schema from version N to N+1.  They run in
one transaction under ``pg_advisory_xact_lock`` — a transaction-level lock, released by the
COMMIT, so it works behind a pooler (session-level advisory locks do not: the pooler hands
the session to someone else).  Replicas starting together therefore migrate once, and a
database written by a newer td-graph (a version above ours) is refused, never downgraded.

Times copied from the SQLite state (``since``, ``updated_at`` …) stay epoch seconds (double
precision) so both backends return the same values; the cluster's coordination tables
(``replicas``, ``leases``) use ``timestamptz`` and the database's clock (``now()``), so a
replica's wrong clock cannot extend or steal a lease.
"""

from __future__ import annotations

from typing import Any

from ..errors import StateError

__all__ = ["SCHEMA", "PG_SCHEMA_VERSION", "MIGRATIONS", "TABLES", "describe_url", "mask", "migrate"]

SCHEMA = "td_graph"
# A constant key for pg_advisory_xact_lock: "td-graph migrate" (any bigint would do).
MIGRATE_LOCK_KEY = 0x7464677261706801

MIGRATIONS: list[str] = [
    # 0 -> 1: everything the SQLite state holds, plus the cluster's coordination tables.
    f"""
    CREATE TABLE {SCHEMA}.checkpoints (
        tenant TEXT NOT NULL, source TEXT NOT NULL, cursor TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL, last_success DOUBLE PRECISION,
        newest_event DOUBLE PRECISION, PRIMARY KEY (tenant, source));
    CREATE TABLE {SCHEMA}.streams (
        id BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, source TEXT NOT NULL, UNIQUE (tenant, source));
    -- dedup keys ordered by time: one range read per page, one range delete to prune
    CREATE TABLE {SCHEMA}.seen (
        stream BIGINT NOT NULL, event_time DOUBLE PRECISION NOT NULL, key TEXT NOT NULL,
        PRIMARY KEY (stream, event_time, key));
    CREATE TABLE {SCHEMA}.objects (
        tenant TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, hash TEXT NOT NULL,
        gen BIGINT NOT NULL, PRIMARY KEY (tenant, source, id));
    -- each replica writes its own file: its committed position is its own
    CREATE TABLE {SCHEMA}.outputs (
        replica TEXT NOT NULL, name TEXT NOT NULL, position BIGINT NOT NULL, file TEXT,
        PRIMARY KEY (replica, name));
    CREATE TABLE {SCHEMA}.source_status (
        tenant TEXT NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL, reason TEXT,
        since DOUBLE PRECISION NOT NULL, next_check DOUBLE PRECISION, PRIMARY KEY (tenant, source));
    CREATE TABLE {SCHEMA}.query_shapes (
        tenant TEXT NOT NULL, source TEXT NOT NULL, shape TEXT NOT NULL, reason TEXT,
        since DOUBLE PRECISION NOT NULL, PRIMARY KEY (tenant, source));
    -- token: a retried insert whose COMMIT outcome was unknown is not recorded twice
    CREATE TABLE {SCHEMA}.isolations (
        id BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, user_id TEXT NOT NULL, action TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL, record TEXT NOT NULL, token TEXT UNIQUE);
    CREATE INDEX isolations_by_user ON {SCHEMA}.isolations (tenant, user_id, id);
    CREATE TABLE {SCHEMA}.replicas (
        replica TEXT PRIMARY KEY, host TEXT, pid INT, started_at TIMESTAMPTZ, heartbeat_at TIMESTAMPTZ);
    CREATE TABLE {SCHEMA}.leases (
        tenant TEXT PRIMARY KEY, owner TEXT, epoch BIGINT NOT NULL DEFAULT 0,
        expires_at TIMESTAMPTZ, acquired_at TIMESTAMPTZ);
    """,
    # 1 -> 2: a tenant's discovery documents (licences and permissions; its OpenID
    # configuration), so a new process or the replica taking a tenant over reuses them.
    f"""
    CREATE TABLE {SCHEMA}.tenant_cache (
        tenant TEXT NOT NULL, kind TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, payload TEXT NOT NULL,
        PRIMARY KEY (tenant, kind));
    """,
]
PG_SCHEMA_VERSION = len(MIGRATIONS)

# Every table, in an order that copying and emptiness checks can use.
TABLES = (
    "checkpoints", "streams", "seen", "objects", "outputs", "source_status", "query_shapes",
    "isolations", "replicas", "leases", "tenant_cache",
)


def _conninfo(url: str) -> dict[str, Any]:
    """psycopg's reading of a connection URL.  Imported here, not at module level: importing
    psycopg costs ~0.1 s, and every ``td-graph run`` imports this module (the cluster side is
    a no-op on SQLite) while only a ``state.url`` needs it."""
    from psycopg.conninfo import conninfo_to_dict

    return conninfo_to_dict(url)


def mask(text: str, url: str) -> str:
    """``text`` with the URL's password (if any) replaced by ``***``: no message leaks it."""
    try:
        password = _conninfo(url).get("password")
    except Exception:  # an unparsable URL: mask whatever sits between ':' and '@'
        password = None
    out = text
    if password:
        out = out.replace(str(password), "***")
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, _, tail = rest.rpartition("@")
        if ":" in creds:
            user, _, secret = creds.partition(":")
            out = out.replace(secret, "***") if secret else out
    return out


def describe_url(url: str) -> str:
    """``database D on HOST:PORT as USER``: what an operator needs to find the server; never
    the password."""
    try:
        info: dict[str, Any] = _conninfo(url)
    except Exception:
        return "the PostgreSQL database in state.url (the URL cannot be parsed)"
    host = info.get("host") or info.get("hostaddr") or "localhost"
    port = info.get("port") or "5432"
    db = info.get("dbname") or info.get("user") or "(default)"
    user = f" as {info['user']}" if info.get("user") else ""
    return f"PostgreSQL database {db} on {host}:{port}{user}"


def schema_version(cur: Any) -> int | None:
    """The stored version, None when td-graph has never written this database."""
    cur.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.meta",))
    if cur.fetchone()[0] is None:
        return None
    cur.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key='schema_version'")
    row = cur.fetchone()
    return int(row[0]) if row else 0


def newer_schema_error(where: str, version: int) -> StateError:
    return StateError(
        f"{where} has td-graph schema version {version}, newer than this td-graph understands "
        f"({PG_SCHEMA_VERSION}); upgrade td-graph (every replica) before pointing it at this database"
    )


def migrate(conn: Any, where: str) -> int:
    """Bring the schema to ``PG_SCHEMA_VERSION`` in one transaction; returns the old version.
    Raises ``StateError`` for a newer schema (nothing is changed)."""
    with conn.transaction():
        cur = conn.cursor()
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK_KEY,))
        version = schema_version(cur)
        if version is not None and version > PG_SCHEMA_VERSION:
            raise newer_schema_error(where, version)
        if version is None:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            cur.execute(f"CREATE TABLE {SCHEMA}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            version = 0
        for step in MIGRATIONS[version:]:
            cur.execute(step)
        cur.execute(
            f"INSERT INTO {SCHEMA}.meta(key, value) VALUES ('schema_version', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(PG_SCHEMA_VERSION),),
        )
        return version


def session_options(ttl: float) -> str:
    """Server-side settings every connection of a replica needs (libpq ``options``).

    A replica frozen *inside* a commit transaction (SIGSTOP between the fence check, which
    holds the lease row ``FOR SHARE``, and COMMIT) would keep that row locked for as long as it
    is frozen — its socket stays open — and ``FOR UPDATE SKIP LOCKED`` would skip the tenant
    forever.  The server ends such a session after a third of the TTL idle in a transaction,
    which releases the lock; when the replica wakes, its commit fails and the retry meets the
    fence (``LeaseLost``)."""
    return f"-c idle_in_transaction_session_timeout={max(1000, int(ttl * 1000 / 3))}"
