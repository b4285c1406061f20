"""PostgreSQL state: what the SQLite store holds, shared by a cluster of replicas.

The guarantees are SQLite's: one transaction per committed page holds the cursor, the dedup
keys, the object hashes and deletions and the output's position, and ``commit()`` returns only
after the server acknowledged COMMIT (synchronous_commit as the server is configured: ``on``
by default, durable).  Tables live in the ``td_graph`` schema (``pgschema``).

Connection errors (a restarted server, ``pg_terminate_backend``, a failover) are retried
transparently, with backoff, for up to ``retry_seconds``.  A retry re-runs the whole
transaction.  That is safe even when the connection broke during COMMIT (the one ambiguous
case: the server may or may not have committed) because every write is idempotent: upserts
that set the same values, ``INSERT … ON CONFLICT DO NOTHING`` for dedup keys, deletes, the
greatest ``newest_event``, and an isolation record carries a token generated once before the
first attempt.  Re-running a committed page therefore changes nothing.

``commit_many`` (group commit) writes several pages in one transaction, in order, all or
nothing - except a page whose tenant's fence fails: that page alone is left out (``LeaseLost``
in its slot of the result), the others are written.

Fencing (``set_fencing``): with a provider set, a commit for tenant T first locks T's lease row
``FOR SHARE`` inside the same transaction, checking owner, epoch and expiry against the
database's clock; a replica that lost the tenant gets ``LeaseLost`` and writes nothing.  The
share lock makes a concurrent takeover (``UPDATE leases``) wait for this commit, so a commit
can never land after another replica took the tenant over.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import LeaseLost, StateError
from .backend import Fence, FenceProvider  # noqa: F401  (Fence: the provider's answer)
from .pgconnect import RETRYABLE, connect_once
from .pgschema import SCHEMA, describe_url, mask, migrate, session_options
from .store import Commit, OutputMark

__all__ = ["PostgresStore", "connect_once", "RETRYABLE"]  # the last two: pgconnect's, kept importable

T = TypeVar("T")
S = SCHEMA
class PostgresStore:
    """The state of a cluster in PostgreSQL. ``replica`` names this process: its file output
    positions are its own, its connections are ``application_name = td-graph:<replica>``.
    ``exclusive``: refuse to start while another process is connected as the same replica
    (two processes under one name would share an output position). ``lease_ttl``: this store
    commits under tenant leases of that TTL (see ``session_options``)."""

    def __init__(
        self, url: str, *, replica: str, exclusive: bool = True, retry_seconds: float = 30.0,
        pool_max: int = 8, lease_ttl: float | None = None,
    ) -> None:
        self.url = url
        self.replica = replica
        self.where = describe_url(url)
        self.retry_seconds = retry_seconds
        # A shared (non-exclusive) store — the analyst's isolate, status — is named apart so it
        # never counts as the replica itself (twin check, pg_terminate_backend by name).
        self.application_name = f"td-graph:{replica}" if exclusive else f"td-graph:{replica}:shared"
        self._fencing: FenceProvider | None = None
        self._streams: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        probe = connect_once(url, self.application_name)
        try:
            if exclusive:
                self._refuse_twin(probe)
            migrate(probe, self.where)
        except psycopg.Error as exc:
            raise StateError(f"cannot prepare {self.where}: {mask(str(exc), url)}") from None
        finally:
            probe.close()
        self._pool = ConnectionPool(
            url, min_size=1, max_size=pool_max, timeout=5.0, open=True, name=f"td-graph-{replica}",
            # lease_ttl (a cluster replica): a session frozen inside a fenced commit is ended
            # by the server, so the lease row it locks can be taken over (session_options).
            kwargs={"autocommit": True, "application_name": self.application_name,
                    **({"options": session_options(lease_ttl)} if lease_ttl else {})},
            reconnect_timeout=max(60.0, retry_seconds * 2),
        )
        try:  # connected before the constructor returns: this replica is visible by its name
            self._pool.wait(timeout=10.0)
        except PoolTimeout:
            self._pool.close()
            raise StateError(f"cannot open connections to {self.where} (the first one worked): check "
                             "max_connections and the server's log") from None

    def _refuse_twin(self, conn: psycopg.Connection, wait: float = 3.0) -> None:
        """Best effort (behind a pooler the names may be the pooler's): refuse while another
        process is connected under this replica's name. A replica restarted right after a
        kill -9 waits ``wait`` seconds for the server to notice the dead one's sockets."""
        deadline = time.monotonic() + wait
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = %s AND pid <> pg_backend_pid()",
                (self.application_name,),
            ).fetchone()
            if not (row and row[0]) or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if row and row[0]:
            raise StateError(
                f"replica {self.replica} is already connected to {self.where} (another td-graph "
                "process runs under this cluster.replica name); give each process its own "
                "cluster.replica"
            )

    # --- plumbing ----------------------------------------------------------------------
    def _run(self, fn: Callable[[psycopg.Connection], T], what: str) -> T:
        """``fn(conn)`` on a pooled connection, re-run on a new one after a connection error
        (see the module docstring for why re-running a write is safe)."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.05
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._pool.connection() as conn:
                    return fn(conn)
            except RETRYABLE as exc:
                if time.monotonic() >= deadline:
                    detail = mask(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, self.url)
                    raise StateError(
                        f"cannot {what} in {self.where} after {attempt} attempts over "
                        f"{self.retry_seconds:.0f}s: {detail}"
                    ) from None
                if attempt > 1:  # the first retry is immediate: the pool's next connection is fresh
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                self._pool.check()  # drop every connection the server closed
            except psycopg.Error as exc:
                raise StateError(f"cannot {what} in {self.where}: {mask(str(exc), self.url)}") from None

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._run(lambda conn: conn.execute(sql, params).fetchall(), "read the state")

    def _stream(self, tenant: str, source: str) -> int:
        """The integer id of (tenant, source) for the dedup table (created on first use, in its
        own statement so a rolled-back page cannot leave a cached id that does not exist)."""
        key = (tenant, source)
        sid = self._streams.get(key)
        if sid is None:
            def get(conn: psycopg.Connection) -> int:
                conn.execute(
                    f"INSERT INTO {S}.streams(tenant, source) VALUES (%s, %s) ON CONFLICT DO NOTHING", key
                )
                return conn.execute(f"SELECT id FROM {S}.streams WHERE tenant=%s AND source=%s", key).fetchone()[0]

            sid = self._run(get, "write the state")
            self._streams[key] = sid
        return sid

    def _check_fence(self, conn: psycopg.Connection, tenant: str) -> None:
        """Inside the transaction: hold the lease row (FOR SHARE) or raise ``LeaseLost``."""
        if self._fencing is None:
            return
        fence = self._fencing(tenant)
        if fence is None:
            raise LeaseLost(tenant, self.replica, None)
        row = conn.execute(
            f"SELECT 1 FROM {S}.leases WHERE tenant=%s AND owner=%s AND epoch=%s AND expires_at > now() FOR SHARE",
            (fence.tenant, fence.owner, fence.epoch),
        ).fetchone()
        if row is None:
            raise LeaseLost(tenant, self.replica, fence.epoch)

    def set_fencing(self, provider: FenceProvider | None) -> None:
        """Make every commit (and source status write) conditional on the tenant's lease."""
        self._fencing = provider

    def close(self) -> None:
        self._pool.close()

    # --- reads ---------------------------------------------------------------------------
    def cursor(self, tenant: str, source: str) -> dict[str, Any] | None:
        rows = self._read(f"SELECT cursor FROM {S}.checkpoints WHERE tenant=%s AND source=%s", (tenant, source))
        return json.loads(rows[0][0]) if rows else None

    def seen_keys(self, tenant: str, source: str, keys: Iterable[tuple[str, float]]) -> set[str]:
        """Which (key, event_time) pairs were already committed: one range read per page."""
        wanted = {(float(t), k) for k, t in keys}
        if not wanted:
            return set()
        lo = min(t for t, _ in wanted)
        hi = max(t for t, _ in wanted)
        rows = self._read(
            f"SELECT event_time, key FROM {S}.seen WHERE stream=%s AND event_time BETWEEN %s AND %s",
            (self._stream(tenant, source), lo, hi),
        )
        return {k for t, k in rows if (t, k) in wanted}

    def object_hashes(self, tenant: str, source: str, ids: Iterable[str]) -> dict[str, str]:
        ids = list(ids)
        if not ids:
            return {}
        rows = self._read(
            f"SELECT id, hash FROM {S}.objects WHERE tenant=%s AND source=%s AND id = ANY(%s)", (tenant, source, ids)
        )
        return dict(rows)

    def stale_objects(self, tenant: str, source: str, gen: int, limit: int = 1000) -> list[str]:
        rows = self._read(
            f"SELECT id FROM {S}.objects WHERE tenant=%s AND source=%s AND gen<%s ORDER BY id LIMIT %s",
            (tenant, source, gen, limit),
        )
        return [r[0] for r in rows]

    def output_position(self, name: str) -> int | None:
        mark = self.output_mark(name)
        return mark[0] if mark else None

    def output_mark(self, name: str) -> tuple[int, str | None] | None:
        """This replica's committed position in its own output (and that file's identity)."""
        rows = self._read(
            f"SELECT position, file FROM {S}.outputs WHERE replica=%s AND name=%s", (self.replica, name)
        )
        return (int(rows[0][0]), rows[0][1]) if rows else None

    # --- writes --------------------------------------------------------------------------
    def commit(self, c: Commit, *, output: OutputMark | None = None) -> None:
        """Write one page's state (and this replica's output position) in one transaction."""
        lost = self.commit_many([(c, output)])[0]
        if lost is not None:
            raise lost

    def commit_many(self, commits: Sequence[tuple[Commit, OutputMark | None]]) -> list[LeaseLost | None]:
        """Group commit: the pages in ONE transaction (one COMMIT, one WAL flush), in the order
        given; returns one entry per page: None (written) or the ``LeaseLost`` of a page whose
        tenant this replica no longer holds, which wrote nothing while the batch's other pages
        were written (the fences are read first, in the transaction, so a failed check neither
        writes nor aborts it).  Any other error: nothing of the batch is written (StateError)."""
        now = time.time()
        pages = []
        for c, output in commits:
            sid = self._stream(c.tenant, c.source) if (c.seen or c.prune_seen_before is not None) else None
            upserts = list({i: (i, h, g) for i, h, g in c.upsert_objects}.values())  # one row per id
            pages.append((c, output, sid, upserts, json.dumps(c.cursor, separators=(",", ":"), sort_keys=True)))

        def write(conn: psycopg.Connection) -> list[LeaseLost | None]:
            with conn.transaction():
                # The fences are read in their own round trip, outside the pipeline: a result
                # fetched inside a pipeline leaves the session "active" (no Sync, no
                # ReadyForQuery), so idle_in_transaction_session_timeout would never end a
                # replica frozen right after it while it holds the lease rows FOR SHARE (a
                # chaos-test run saw no takeover for 60 s).
                lost = self._check_fences(conn, [c.tenant for c, *_ in pages])
                with conn.pipeline():  # the batch's writes go out together
                    for c, output, sid, upserts, cursor_json in pages:
                        if c.tenant not in lost:
                            self._write_commit(conn, c, output, sid, upserts, cursor_json, now)
            return [lost.get(c.tenant) for c, *_ in pages]

        if not pages:
            return []
        first = pages[0][0]
        more = f" and {len(pages) - 1} more pages" if len(pages) > 1 else ""
        return self._run(write, f"commit {first.tenant}/{first.source}{more}")

    def _check_fences(self, conn: psycopg.Connection, tenants: list[str]) -> dict[str, LeaseLost]:
        """Inside the transaction: lock the held tenants' lease rows (FOR SHARE, one query for
        the batch); the tenants not held (no fence, another owner or epoch, expired) -> LeaseLost."""
        if self._fencing is None:
            return {}
        fences = {t: self._fencing(t) for t in dict.fromkeys(tenants)}
        lost = {t: LeaseLost(t, self.replica, None) for t, f in fences.items() if f is None}
        held = [f for f in fences.values() if f is not None]
        if held:
            rows = conn.execute(
                f"SELECT tenant FROM {S}.leases WHERE (tenant, owner, epoch) IN (SELECT * FROM "
                "unnest(%s::text[], %s::text[], %s::int8[])) AND expires_at > now() ORDER BY tenant FOR SHARE",
                ([f.tenant for f in held], [f.owner for f in held], [f.epoch for f in held]),
            ).fetchall()
            ok = {r[0] for r in rows}
            lost.update((f.tenant, LeaseLost(f.tenant, self.replica, f.epoch)) for f in held if f.tenant not in ok)
        return lost

    def _write_commit(self, conn: psycopg.Connection, c: Commit, output: OutputMark | None, sid: int | None,
                      upserts: list[tuple[str, str, int]], cursor_json: str, now: float) -> None:
        conn.execute(
            f"INSERT INTO {S}.checkpoints AS cp(tenant, source, cursor, updated_at, last_success, newest_event) "
            "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (tenant, source) DO UPDATE SET "
            "cursor=excluded.cursor, updated_at=excluded.updated_at, "
            "last_success=COALESCE(excluded.last_success, cp.last_success), "
            "newest_event=GREATEST(COALESCE(cp.newest_event, 0), COALESCE(excluded.newest_event, 0))",
            (c.tenant, c.source, cursor_json, now, now if c.success else None, c.newest_event),
        )
        with conn.cursor() as cur:
            if c.seen:  # one statement for the page's keys (arrays): no round trip per key
                cur.execute(
                    f"INSERT INTO {S}.seen(stream, event_time, key) "
                    "SELECT %s, t, k FROM unnest(%s::float8[], %s::text[]) AS u(t, k) ON CONFLICT DO NOTHING",
                    (sid, [float(t) for _, t in c.seen], [k for k, _ in c.seen]),
                )
            if c.prune_seen_before is not None:
                cur.execute(f"DELETE FROM {S}.seen WHERE stream=%s AND event_time<%s", (sid, c.prune_seen_before))
            if upserts:
                cur.execute(
                    f"INSERT INTO {S}.objects(tenant, source, id, hash, gen) "
                    "SELECT %s, %s, i, h, g FROM unnest(%s::text[], %s::text[], %s::int8[]) AS u(i, h, g) "
                    "ON CONFLICT (tenant, source, id) DO UPDATE SET hash=excluded.hash, gen=excluded.gen",
                    (c.tenant, c.source, *map(list, zip(*upserts))),
                )
            if c.delete_objects:
                cur.execute(
                    f"DELETE FROM {S}.objects WHERE tenant=%s AND source=%s AND id = ANY(%s)",
                    (c.tenant, c.source, list(c.delete_objects)),
                )
        if output is not None:
            self._write_output(conn, *output)

    def set_output_position(self, name: str, position: int, file: str | None = None) -> None:
        self._run(lambda conn: self._write_output(conn, name, position, file), "write the output position")

    def _write_output(self, conn: psycopg.Connection, name: str, position: int, file: str | None = None) -> None:
        conn.execute(
            f"INSERT INTO {S}.outputs(replica, name, position, file) VALUES (%s,%s,%s,%s) "
            "ON CONFLICT (replica, name) DO UPDATE SET position=excluded.position, file=excluded.file",
            (self.replica, name, position, file),
        )

    def reset_source(self, tenant: str, source: str) -> None:
        """Forget a source's cursor, keys, hashes, status and shape (operator action only)."""
        sid = self._stream(tenant, source)

        def reset(conn: psycopg.Connection) -> None:
            with conn.transaction():
                for table in ("checkpoints", "objects", "source_status", "query_shapes"):
                    conn.execute(f"DELETE FROM {S}.{table} WHERE tenant=%s AND source=%s", (tenant, source))
                conn.execute(f"DELETE FROM {S}.seen WHERE stream=%s", (sid,))

        self._run(reset, f"reset {tenant}/{source}")

    # --- source status ---------------------------------------------------------------------
    def source_status(self, tenant: str, source: str) -> dict[str, Any] | None:
        rows = self._read(
            f"SELECT state, reason, since, next_check FROM {S}.source_status WHERE tenant=%s AND source=%s",
            (tenant, source),
        )
        if not rows:
            return None
        state, reason, since, next_check = rows[0]
        return {"state": state, "reason": reason, "since": since, "next_check": next_check}

    def set_source_status(
        self, tenant: str, source: str, state: str, reason: str | None, next_check: float | None
    ) -> None:
        now = time.time()

        def write(conn: psycopg.Connection) -> None:
            with conn.transaction():
                self._check_fence(conn, tenant)
                conn.execute(
                    f"INSERT INTO {S}.source_status AS ss(tenant, source, state, reason, since, next_check) "
                    "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (tenant, source) DO UPDATE SET "
                    "since=CASE WHEN ss.state=excluded.state THEN ss.since ELSE excluded.since END, "
                    "state=excluded.state, reason=excluded.reason, next_check=excluded.next_check",
                    (tenant, source, state, reason, now, next_check),
                )

        self._run(write, f"write the status of {tenant}/{source}")

    # --- query shapes ------------------------------------------------------------------------
    def query_shape(self, tenant: str, source: str) -> str | None:
        rows = self._read(f"SELECT shape FROM {S}.query_shapes WHERE tenant=%s AND source=%s", (tenant, source))
        return rows[0][0] if rows else None

    def set_query_shape(self, tenant: str, source: str, shape: str | None, reason: str | None) -> None:
        """Remember (or, with None, forget) the query shape a source settled on."""
        if shape is None:
            sql, params = f"DELETE FROM {S}.query_shapes WHERE tenant=%s AND source=%s", (tenant, source)
        else:
            sql = (
                f"INSERT INTO {S}.query_shapes AS q(tenant, source, shape, reason, since) VALUES (%s,%s,%s,%s,%s) "
                "ON CONFLICT (tenant, source) DO UPDATE SET reason=excluded.reason, "
                "since=CASE WHEN q.shape=excluded.shape THEN q.since ELSE excluded.since END, shape=excluded.shape"
            )
            params = (tenant, source, shape, reason, time.time())
        self._run(lambda conn: conn.execute(sql, params) and None, f"write the query shape of {tenant}/{source}")

    # --- per-tenant cache (discovery documents) -------------------------------------------------
    def cached(self, tenant: str, kind: str) -> tuple[float, str] | None:
        """(time it was read from Graph, payload) of a tenant's cached document, None if absent."""
        rows = self._read(f"SELECT at, payload FROM {S}.tenant_cache WHERE tenant=%s AND kind=%s", (tenant, kind))
        return (float(rows[0][0]), rows[0][1]) if rows else None

    def set_cached(self, tenant: str, kind: str, at: float, payload: str) -> None:
        """Store (replace) a tenant's cached document: a cache, not a checkpoint (no fence)."""
        sql = (
            f"INSERT INTO {S}.tenant_cache(tenant, kind, at, payload) VALUES (%s,%s,%s,%s) "
            "ON CONFLICT (tenant, kind) DO UPDATE SET at=excluded.at, payload=excluded.payload"
        )
        params = (tenant, kind, float(at), payload)
        self._run(lambda conn: conn.execute(sql, params) and None, f"write the cached {kind} of {tenant}")

    # --- isolation audit -----------------------------------------------------------------------
    def add_isolation(self, tenant: str, user_id: str, action: str, record: dict[str, Any]) -> None:
        """One audit record; its token makes a retry after an ambiguous COMMIT a no-op."""
        params = (tenant, user_id, action, time.time(), json.dumps(record, sort_keys=True), uuid.uuid4().hex)
        self._run(
            lambda conn: conn.execute(
                f"INSERT INTO {S}.isolations(tenant, user_id, action, at, record, token) "
                "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (token) DO NOTHING",
                params,
            )
            and None,
            "write the isolation audit record",
        )

    def isolations(self, tenant: str, user_id: str) -> Iterator[dict[str, Any]]:
        rows = self._read(
            f"SELECT action, at, record FROM {S}.isolations WHERE tenant=%s AND user_id=%s ORDER BY id",
            (tenant, user_id),
        )
        for action, at, record in rows:
            yield {"action": action, "at": at, **json.loads(record)}

    def isolation_rows(self, tenant: str, after: int, limit: int = 500) -> list[tuple[int, dict[str, Any]]]:
        """Audit records stored after row ``after`` (the collector's feed into the pipeline)."""
        rows = self._read(
            f"SELECT id, record FROM {S}.isolations WHERE tenant=%s AND id>%s ORDER BY id LIMIT %s",
            (tenant, after, limit),
        )
        return [(int(i), json.loads(r)) for i, r in rows]

    def count(self, table: str, tenant: str, source: str) -> int:
        """Row count for tests and doctor (table is one of seen, objects)."""
        if table not in ("seen", "objects"):
            raise ValueError(table)
        if table == "seen":
            return int(self._read(f"SELECT COUNT(*) FROM {S}.seen WHERE stream=%s", (self._stream(tenant, source),))[0][0])
        return int(
            self._read(f"SELECT COUNT(*) FROM {S}.objects WHERE tenant=%s AND source=%s", (tenant, source))[0][0]
        )
