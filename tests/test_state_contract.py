"""One state contract, two backends: the SQLite store and the PostgreSQL store must keep the
same guarantees behind the same methods (issue 15 item 1). PostgreSQL is a real server
(tests/pg_support.py): a missing server is a failure, never a skip."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from td_graph_plugin.errors import LeaseLost, StateError
from td_graph_plugin.state import Commit, Fence, StateBackend, StateStore
from td_graph_plugin.state.pgschema import PG_SCHEMA_VERSION
from td_graph_plugin.state.postgres import PostgresStore
from td_graph_plugin.state.store import SCHEMA_VERSION


@dataclass
class Backend:
    kind: str
    open: Callable[..., Any]  # open(**kw) -> a store on this test's state
    set_version: Callable[[int], None]  # write a schema version behind the store's back
    newest: int  # the schema version this td-graph writes
    opened: list


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    opened: list = []
    if request.param == "sqlite":
        path = str(tmp_path / "state.db")

        def open_(**kw):
            kw.pop("replica", None)
            store = StateStore(path, **kw)
            opened.append(store)
            return store

        def set_version(v: int) -> None:
            db = sqlite3.connect(path)
            db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(v),))
            db.commit()
            db.close()

        b = Backend("sqlite", open_, set_version, SCHEMA_VERSION, opened)
    else:
        server = request.getfixturevalue("pg_server")
        url = server.new_database()
        dbname = url.rsplit("/", 1)[1]

        def open_(**kw):
            kw.setdefault("replica", "r1")
            store = PostgresStore(url, **kw)
            opened.append(store)
            return store

        def set_version(v: int) -> None:
            server.psql(f"UPDATE td_graph.meta SET value='{v}' WHERE key='schema_version'", dbname)

        b = Backend("postgres", open_, set_version, PG_SCHEMA_VERSION, opened)
        b.server, b.url, b.dbname = server, url, dbname  # type: ignore[attr-defined]
    yield b
    for store in opened:
        try:
            store.close()
        except Exception:
            pass


def test_both_stores_implement_the_backend_protocol(backend):
    assert isinstance(backend.open(), StateBackend)


def test_commit_is_atomic_with_output_offset(backend):
    s = backend.open()
    s.commit(Commit("t", "src", cursor={"done": "x"}, seen=[("a", 1.0), ("b", 2.0)]), output=("file:/o", 42, "1:2"))
    assert s.cursor("t", "src") == {"done": "x"}
    assert s.seen_keys("t", "src", [("a", 1.0), ("b", 2.0), ("c", 2.0)]) == {"a", "b"}
    assert s.seen_keys("t", "src", [("a", 2.0)]) == set(), "a key is matched with its event time"
    assert s.output_position("file:/o") == 42
    assert s.output_mark("file:/o") == (42, "1:2")
    s.commit(Commit("t", "src", cursor={"done": "y"}, prune_seen_before=1.5))
    assert s.seen_keys("t", "src", [("a", 1.0), ("b", 2.0)]) == {"b"}
    assert s.count("seen", "t", "src") == 1
    assert s.cursor("other", "src") is None


def test_a_failed_commit_writes_nothing(backend):
    """Atomicity: a page whose transaction fails leaves the previous page's state whole."""
    s = backend.open()
    s.commit(Commit("t", "src", cursor={"n": 1}, seen=[("a", 1.0)]), output=("out", 10))
    # a late statement of the page fails (an id no database can store): all before it rolls back
    bad = Commit("t", "src", cursor={"n": 2}, seen=[("b", 2.0)], upsert_objects=[("o", "h", 1)],
                 delete_objects=["x", object()])  # type: ignore[list-item]
    with pytest.raises(StateError):
        s.commit(bad, output=("out", 20))
    assert s.cursor("t", "src") == {"n": 1}
    assert s.seen_keys("t", "src", [("b", 2.0)]) == set() and s.object_hashes("t", "src", ["o"]) == {}
    assert s.output_position("out") == 10


def _transactions_of_rows(backend, s) -> int:
    """How many transactions wrote the checkpoint rows (PostgreSQL: distinct xmin)."""
    rows = s._read("SELECT count(DISTINCT xmin::text) FROM td_graph.checkpoints")
    return int(rows[0][0])


def test_commit_many_writes_the_batch_in_one_transaction_in_order(backend):
    """Group commit: the pages in one transaction, applied in the order given (the later
    page's cursor and output offset win), one result per page."""
    s = backend.open()
    statements: list[str] = []
    if backend.kind == "sqlite":
        s._db.set_trace_callback(statements.append)
    results = s.commit_many([
        (Commit("t", "src", cursor={"n": 1}, seen=[("a", 1.0)], upsert_objects=[("o", "h1", 1)]), ("out", 10, "1:2")),
        (Commit("u", "src", cursor={"n": 1}, seen=[("x", 1.0)]), None),
        (Commit("t", "src", cursor={"n": 2}, seen=[("b", 2.0)], upsert_objects=[("o", "h2", 2)],
                delete_objects=["gone"]), ("out", 30, "1:2")),
        (Commit("t", "other", cursor={"n": 9}, newest_event=5.0, success=True), ("out", 40, "1:3")),
    ])
    assert results == [None, None, None, None]
    assert s.cursor("t", "src") == {"n": 2} and s.cursor("u", "src") == {"n": 1} and s.cursor("t", "other") == {"n": 9}
    assert s.seen_keys("t", "src", [("a", 1.0), ("b", 2.0)]) == {"a", "b"}
    assert s.seen_keys("u", "src", [("x", 1.0), ("a", 1.0)]) == {"x"}
    assert s.object_hashes("t", "src", ["o"]) == {"o": "h2"}
    assert s.output_mark("out") == (40, "1:3")
    if backend.kind == "sqlite":
        assert sum(st.startswith("BEGIN") for st in statements) == 1
        assert sum(st == "COMMIT" for st in statements) == 1
    else:
        assert _transactions_of_rows(backend, s) == 1
    assert s.commit_many([]) == []


def test_commit_many_is_all_or_nothing(backend):
    """A failing page fails its whole batch: nothing of the batch is written."""
    s = backend.open()
    s.commit(Commit("t", "src", cursor={"n": 1}, seen=[("a", 1.0)]), output=("out", 10))
    bad = Commit("t", "src", cursor={"n": 3}, delete_objects=["x", object()])  # type: ignore[list-item]
    with pytest.raises(StateError):
        s.commit_many([
            (Commit("new", "src", cursor={"n": 2}, seen=[("k", 1.0)]), ("out", 20)),
            (Commit("t", "src", cursor={"n": 2}, seen=[("b", 2.0)]), ("out", 30)),
            (bad, ("out", 40)),
        ])
    assert s.cursor("t", "src") == {"n": 1} and s.cursor("new", "src") is None
    assert s.seen_keys("t", "src", [("b", 2.0)]) == set() and s.output_position("out") == 10
    # the store is whole afterwards: new streams get ids of their own
    s.commit_many([(Commit("other", "src", cursor={}, seen=[("o", 1.0)]), None),
                   (Commit("new", "src", cursor={}, seen=[("k", 1.0)]), ("out", 50))])
    assert s.seen_keys("new", "src", [("k", 1.0), ("o", 1.0)]) == {"k"}
    assert s.seen_keys("other", "src", [("k", 1.0), ("o", 1.0)]) == {"o"}
    assert s.output_position("out") == 50


def test_dedup_keys_are_read_per_page_range_with_exact_times(backend):
    s = backend.open()
    keys = [(f"k{i}", 1_700_000_000.0 + i * 0.001) for i in range(500)]
    s.commit(Commit("t", "src", cursor={}, seen=keys))
    page = keys[100:200] + [("new", 1_700_000_000.15)]
    assert s.seen_keys("t", "src", page) == {k for k, _ in keys[100:200]}
    assert s.seen_keys("t", "other", page) == set(), "keys are per source"
    s.commit(Commit("t", "src", cursor={}, seen=keys[:10]))  # re-committing a key is harmless
    assert s.count("seen", "t", "src") == 500


def test_object_hashes_and_stale_objects(backend):
    s = backend.open()
    s.commit(Commit("t", "users", cursor={"gen": 1}, upsert_objects=[("u1", "h1", 1), ("u2", "h2", 1), ("u3", "h3", 1)]))
    s.commit(Commit("t", "users", cursor={"gen": 2}, upsert_objects=[("u1", "h1b", 2), ("u2", "h2", 2)]))
    assert s.object_hashes("t", "users", ["u1", "u2", "u3", "nope"]) == {"u1": "h1b", "u2": "h2", "u3": "h3"}
    assert s.object_hashes("t", "users", []) == {}
    assert s.stale_objects("t", "users", 2) == ["u3"]
    s.commit(Commit("t", "users", cursor={"gen": 2}, delete_objects=["u3"]))
    assert s.stale_objects("t", "users", 2) == []
    assert s.count("objects", "t", "users") == 2


def test_an_object_twice_in_one_page_keeps_the_last_hash(backend):
    s = backend.open()
    s.commit(Commit("t", "users", cursor={}, upsert_objects=[("u1", "h1", 1), ("u1", "h2", 1)], seen=[("k", 1.0), ("k", 1.0)]))
    assert s.object_hashes("t", "users", ["u1"]) == {"u1": "h2"} and s.count("seen", "t", "users") == 1


def test_many_object_ids_in_one_lookup(backend):
    s = backend.open()
    s.commit(Commit("t", "users", cursor={}, upsert_objects=[(f"u{i}", f"h{i}", 1) for i in range(2500)]))
    got = s.object_hashes("t", "users", [f"u{i}" for i in range(0, 2500, 2)])
    assert len(got) == 1250 and got["u42"] == "h42"


def test_output_positions(backend):
    s = backend.open()
    assert s.output_mark("file:/o") is None and s.output_position("file:/o") is None
    s.set_output_position("file:/o", 7, "9:9")
    assert s.output_mark("file:/o") == (7, "9:9")
    s.set_output_position("file:/o", 8)
    assert s.output_mark("file:/o") == (8, None)


def test_each_replica_has_its_own_output_position(pg_url):
    """PostgreSQL only (SQLite is one process): each replica writes its own file."""
    a = PostgresStore(pg_url, replica="a")
    b = PostgresStore(pg_url, replica="b")
    a.commit(Commit("t", "s", cursor={}), output=("file:/var/log/records.ndjson", 100, "1:1"))
    b.commit(Commit("u", "s", cursor={}), output=("file:/var/log/records.ndjson", 5, "2:2"))
    assert a.output_mark("file:/var/log/records.ndjson") == (100, "1:1")
    assert b.output_mark("file:/var/log/records.ndjson") == (5, "2:2")
    a.close()
    b.close()


def test_source_status_keeps_since_while_the_state_holds(backend):
    s = backend.open()
    assert s.source_status("t", "src") is None
    s.set_source_status("t", "src", "unlicensed", "no P2", 123.0)
    first = s.source_status("t", "src")
    assert first["state"] == "unlicensed" and first["reason"] == "no P2" and first["next_check"] == 123.0
    time.sleep(0.01)
    s.set_source_status("t", "src", "unlicensed", "still no P2", 456.0)
    again = s.source_status("t", "src")
    assert again["since"] == first["since"] and again["reason"] == "still no P2"
    s.set_source_status("t", "src", "ok", None, None)
    assert s.source_status("t", "src")["since"] > first["since"]


def test_query_shapes_are_remembered_and_cleared(backend):
    s = backend.open()
    assert s.query_shape("t", "src") is None
    s.set_query_shape("t", "src", "no-orderby", "400 on $orderby")
    assert s.query_shape("t", "src") == "no-orderby"
    assert s.query_shape("t", "other") is None
    s.set_query_shape("t", "src", "minimal", "400 again")
    assert s.query_shape("t", "src") == "minimal"
    s.set_query_shape("t", "src", None, None)
    assert s.query_shape("t", "src") is None


def test_tenant_cache_stores_documents_per_tenant_and_kind(backend):
    """A tenant's discovery documents (plan.TenantPlanner, graph.auth): upserts, kept apart."""
    s = backend.open()
    assert s.cached("t", "discovery") is None
    s.set_cached("t", "discovery", 1000.5, '{"v": 1}')
    assert s.cached("t", "discovery") == (1000.5, '{"v": 1}')
    assert s.cached("t", "openid") is None and s.cached("u", "discovery") is None
    s.set_cached("t", "discovery", 2000.25, '{"v": 1, "n": "é"}')  # replaced, not added
    s.set_cached("t", "openid", 3000.0, "{}")
    s.set_cached("u", "discovery", 4000.0, "[]")
    assert s.cached("t", "discovery") == (2000.25, '{"v": 1, "n": "é"}')
    assert s.cached("t", "openid") == (3000.0, "{}") and s.cached("u", "discovery") == (4000.0, "[]")
    s.reset_source("t", "audit_logs.sign_ins")  # a source's reset is not the tenant's documents
    assert s.cached("t", "discovery") == (2000.25, '{"v": 1, "n": "é"}')
    s.close()
    backend.opened.remove(s)
    s = backend.open()
    assert s.cached("t", "openid") == (3000.0, "{}")


def test_isolation_audit_records(backend):
    s = backend.open()
    s.add_isolation("t", "u1", "isolate", {"id": "a1", "reason": "phish"})
    s.add_isolation("t", "u2", "isolate", {"id": "a2"})
    s.add_isolation("t", "u1", "release", {"id": "a3"})
    s.add_isolation("x", "u1", "isolate", {"id": "a4"})
    history = list(s.isolations("t", "u1"))
    assert [h["action"] for h in history] == ["isolate", "release"] and history[0]["reason"] == "phish"
    rows = s.isolation_rows("t", 0)
    assert [r["id"] for _, r in rows] == ["a1", "a2", "a3"]
    assert [r["id"] for _, r in s.isolation_rows("t", rows[0][0])] == ["a2", "a3"]
    assert s.isolation_rows("t", rows[-1][0]) == []
    assert len(s.isolation_rows("t", 0, limit=2)) == 2


def test_reset_source_forgets_everything_of_that_source_only(backend):
    s = backend.open()
    for src in ("a", "b"):
        s.commit(Commit("t", src, cursor={"n": 1}, seen=[("k", 1.0)], upsert_objects=[("o", "h", 1)]))
        s.set_source_status("t", src, "failing", "boom", None)
        s.set_query_shape("t", src, "minimal", "why")
    s.reset_source("t", "a")
    assert s.cursor("t", "a") is None and s.source_status("t", "a") is None and s.query_shape("t", "a") is None
    assert s.seen_keys("t", "a", [("k", 1.0)]) == set() and s.object_hashes("t", "a", ["o"]) == {}
    assert s.cursor("t", "b") == {"n": 1} and s.query_shape("t", "b") == "minimal"
    assert s.seen_keys("t", "b", [("k", 1.0)]) == {"k"}


def test_state_survives_reopening(backend):
    s = backend.open()
    s.commit(Commit("t", "src", cursor={"n": 1}, seen=[("k", 1.0)]), output=("out", 3))
    s.set_query_shape("t", "src", "minimal", "why")
    s.close()
    backend.opened.remove(s)
    s = backend.open()
    assert s.cursor("t", "src") == {"n": 1} and s.seen_keys("t", "src", [("k", 1.0)]) == {"k"}
    assert s.output_position("out") == 3 and s.query_shape("t", "src") == "minimal"


def test_newer_schema_is_refused(backend):
    backend.open().close()
    backend.set_version(backend.newest + 1)
    with pytest.raises(StateError, match="newer"):
        backend.open()


def test_a_second_collector_on_the_same_state_is_refused(backend):
    backend.open()
    with pytest.raises(StateError, match="another td-graph process|already connected"):
        backend.open()
    backend.open(exclusive=False)  # the shared isolation store / a reader is fine


def test_commits_from_threads(backend):
    s = backend.open()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                s.commit(Commit("t", f"s{n}", cursor={"i": i}, seen=[(f"k{i}", float(i))]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(s.cursor("t", f"s{n}") == {"i": 19} and s.count("seen", "t", f"s{n}") == 20 for n in range(4))


def test_sqlite_ignores_fencing(tmp_path):
    s = StateStore(str(tmp_path / "s.db"))
    try:
        s.set_fencing(lambda tenant: None)
        s.commit(Commit("t", "src", cursor={"n": 1}))
        assert s.cursor("t", "src") == {"n": 1}
        assert s.commit_many([(Commit("t", "src", cursor={"n": 2}), None)]) == [None]
        assert s.cursor("t", "src") == {"n": 2}
    finally:
        s.close()


# --- PostgreSQL only: connections, restarts, secrets --------------------------------------

def test_unreachable_database_names_host_and_db_never_the_password():
    with pytest.raises(StateError) as info:
        PostgresStore("postgresql://td:s3cr3t-pw@127.0.0.1:1/tdgraph", replica="r", retry_seconds=1)
    message = str(info.value)
    assert "127.0.0.1:1" in message and "tdgraph" in message
    assert "s3cr3t-pw" not in message and "s3cr3t" not in repr(info.value)


def test_wrong_password_is_not_echoed(pg_server):
    url = f"postgresql://nobody:hunter2pw@127.0.0.1:{pg_server.port}/nosuchdb"
    with pytest.raises(StateError) as info:
        PostgresStore(url, replica="r")
    assert "hunter2pw" not in str(info.value) and "nosuchdb" in str(info.value)


def test_terminated_connections_then_next_commit_succeeds(pg_server, pg_url):
    s = PostgresStore(pg_url, replica="victim")
    try:
        s.commit(Commit("t", "src", cursor={"n": 1}, seen=[("a", 1.0)]))
        killed = pg_server.terminate_connections(dbname=pg_url.rsplit("/", 1)[1], application_name="td-graph:victim")
        assert killed >= 1, "the test must actually cut the replica's connections"
        s.commit(Commit("t", "src", cursor={"n": 2}, seen=[("b", 2.0)]))
        assert s.cursor("t", "src") == {"n": 2}
        assert s.seen_keys("t", "src", [("a", 1.0), ("b", 2.0)]) == {"a", "b"}
        # a read is retried the same way
        assert pg_server.terminate_connections(dbname=pg_url.rsplit("/", 1)[1], application_name="td-graph:victim") >= 1
        assert s.cursor("t", "src") == {"n": 2}
    finally:
        s.close()


def test_server_restart_is_survived(pg_server, pg_url):
    s = PostgresStore(pg_url, replica="r1")
    try:
        s.commit(Commit("t", "src", cursor={"n": 1}))
        pg_server.restart()
        s.commit(Commit("t", "src", cursor={"n": 2}), output=("out", 9))
        assert s.cursor("t", "src") == {"n": 2} and s.output_position("out") == 9
    finally:
        s.close()


def test_a_server_down_too_long_is_a_state_error_without_password(pg_server, pg_url):
    url = pg_url.replace("postgres@", "postgres:pw-never-shown@")
    s = PostgresStore(url, replica="r1", retry_seconds=1.5)
    try:
        pg_server.stop()
        try:
            with pytest.raises(StateError) as info:
                s.commit(Commit("t", "src", cursor={"n": 1}))
        finally:
            pg_server._start()
        assert "pw-never-shown" not in str(info.value) and "attempts" in str(info.value)
        s.commit(Commit("t", "src", cursor={"n": 2}))  # and it recovers once the server is back
        assert s.cursor("t", "src") == {"n": 2}
    finally:
        s.close()


def test_concurrent_first_starts_migrate_once(pg_server, pg_url):
    stores, errors = [], []

    def start(n: int) -> None:
        try:
            stores.append(PostgresStore(pg_url, replica=f"r{n}"))
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors and len(stores) == 4
        assert pg_server.psql("SELECT value FROM td_graph.meta WHERE key='schema_version'", pg_url.rsplit("/", 1)[1]) == str(PG_SCHEMA_VERSION)
    finally:
        for s in stores:
            s.close()


# --- fencing ---------------------------------------------------------------------------------

def _lease(server, dbname: str, tenant: str, owner: str, epoch: int, ttl: str = "30 seconds") -> None:
    server.psql(
        "INSERT INTO td_graph.leases(tenant, owner, epoch, expires_at, acquired_at) "
        f"VALUES ('{tenant}', '{owner}', {epoch}, now() + interval '{ttl}', now()) "
        f"ON CONFLICT (tenant) DO UPDATE SET owner=excluded.owner, epoch=excluded.epoch, "
        "expires_at=excluded.expires_at",
        dbname,
    )


@pytest.fixture
def fenced(pg_server, pg_url):
    """Replica a holds tenant t at epoch 1 (its provider says so); returns (store, dbname)."""
    dbname = pg_url.rsplit("/", 1)[1]
    s = PostgresStore(pg_url, replica="a")
    held = {"t": Fence("t", "a", 1)}
    s.set_fencing(held.get)
    _lease(pg_server, dbname, "t", "a", 1)
    yield s, dbname, held
    s.close()


def test_a_fenced_commit_with_the_lease_is_written(fenced):
    s, _, _ = fenced
    s.commit(Commit("t", "src", cursor={"n": 1}, seen=[("a", 1.0)]), output=("out", 5))
    s.set_source_status("t", "src", "ok", None, None)
    assert s.cursor("t", "src") == {"n": 1} and s.output_position("out") == 5


def test_a_commit_after_a_takeover_raises_lease_lost_and_writes_nothing(pg_server, fenced):
    s, dbname, _ = fenced
    s.commit(Commit("t", "src", cursor={"n": 1}, seen=[("a", 1.0)]), output=("out", 5))
    _lease(pg_server, dbname, "t", "b", 2)  # replica b took the tenant over: epoch bumped
    with pytest.raises(LeaseLost) as info:
        s.commit(Commit("t", "src", cursor={"n": 2}, seen=[("b", 2.0)], upsert_objects=[("o", "h", 1)]),
                 output=("out", 99))
    message = str(info.value)
    assert "tenant t" in message and "replica a" in message and "epoch 1" in message and "taken over" in message
    assert s.cursor("t", "src") == {"n": 1}
    assert s.seen_keys("t", "src", [("b", 2.0)]) == set() and s.object_hashes("t", "src", ["o"]) == {}
    assert s.output_position("out") == 5
    with pytest.raises(LeaseLost):
        s.set_source_status("t", "src", "failing", "boom", None)
    assert s.source_status("t", "src") is None


def test_the_same_owner_with_a_bumped_epoch_is_also_fenced(pg_server, fenced):
    """A replica that lost the tenant and re-acquired it has a new epoch: its old fence is stale."""
    s, dbname, _ = fenced
    _lease(pg_server, dbname, "t", "a", 2)
    with pytest.raises(LeaseLost):
        s.commit(Commit("t", "src", cursor={"n": 1}))
    assert s.cursor("t", "src") is None


def test_an_expired_lease_fences_the_commit(pg_server, fenced):
    s, dbname, _ = fenced
    pg_server.psql("UPDATE td_graph.leases SET expires_at = now() - interval '1 second'", dbname)
    with pytest.raises(LeaseLost):
        s.commit(Commit("t", "src", cursor={"n": 1}))
    assert s.cursor("t", "src") is None


def test_no_fence_from_the_provider_means_no_write(fenced):
    s, _, held = fenced
    held.clear()  # the cluster dropped the tenant
    with pytest.raises(LeaseLost) as info:
        s.commit(Commit("t", "src", cursor={"n": 1}))
    assert "replica a" in str(info.value)
    assert s.cursor("t", "src") is None


def test_a_batch_with_lost_tenants_writes_the_held_ones_and_fails_the_lost_alone(pg_server, fenced):
    """Group commit under fencing: each page's fence is checked in the batch's transaction (one
    FOR SHARE query for the batch); a page of a tenant not held writes nothing and gets its
    LeaseLost in its slot, the held tenants' pages are written in the same transaction."""
    s, dbname, held = fenced
    _lease(pg_server, dbname, "u", "b", 2)  # replica b holds u
    held["u"] = Fence("u", "a", 1)  # a still believes it holds u at epoch 1
    # w: a's provider has no fence for it (dropped)
    results = s.commit_many([
        (Commit("t", "src", cursor={"n": 1}, seen=[("a", 1.0)]), ("out", 5)),
        (Commit("u", "src", cursor={"n": 1}, seen=[("a", 1.0)]), ("out", 6)),
        (Commit("w", "src", cursor={"n": 1}), ("out", 7)),
        (Commit("t", "src", cursor={"n": 2}, seen=[("b", 2.0)]), ("out", 8)),
        (Commit("u", "src", cursor={"n": 2}), ("out", 9)),
    ])
    assert results[0] is None and results[3] is None
    assert isinstance(results[1], LeaseLost) and results[1].tenant == "u" and results[1].epoch == 1
    assert isinstance(results[2], LeaseLost) and results[2].tenant == "w" and results[2].epoch is None
    assert isinstance(results[4], LeaseLost) and results[4].tenant == "u"
    assert s.cursor("t", "src") == {"n": 2} and s.seen_keys("t", "src", [("a", 1.0), ("b", 2.0)]) == {"a", "b"}
    assert s.cursor("u", "src") is None and s.cursor("w", "src") is None
    assert s.output_position("out") == 8, "the last written page's offset; the lost pages' are not stored"
    with pytest.raises(LeaseLost):  # commit() of a lost tenant still raises
        s.commit(Commit("u", "src", cursor={"n": 3}))


def test_a_takeover_waits_for_a_commit_in_flight(pg_server, pg_url, fenced):
    """The lease row is held FOR SHARE until COMMIT: a takeover's UPDATE blocks behind it, so a
    fenced commit can never land after another replica took the tenant over."""
    import psycopg

    s, dbname, _ = fenced
    with psycopg.connect(pg_url, autocommit=True) as other:
        with other.transaction():
            other.execute("SELECT 1 FROM td_graph.leases WHERE tenant='t' FOR SHARE")
            # a fenced commit is compatible with another share lock: it proceeds
            s.commit(Commit("t", "src", cursor={"n": 1}))
        assert s.cursor("t", "src") == {"n": 1}
        other.execute("SET lock_timeout = '200ms'")
        conn = psycopg.connect(pg_url, autocommit=False)
        try:
            conn.execute("SELECT 1 FROM td_graph.leases WHERE tenant='t' FOR UPDATE")  # a takeover in progress
            done = threading.Event()
            errors: list[BaseException] = []

            def commit() -> None:
                try:
                    s.commit(Commit("t", "src", cursor={"n": 2}))
                except BaseException as exc:
                    errors.append(exc)
                done.set()

            threading.Thread(target=commit).start()
            assert not done.wait(0.5), "the commit must wait for the takeover's row lock"
            conn.execute("UPDATE td_graph.leases SET owner='b', epoch=2 WHERE tenant='t'")
            conn.commit()
            assert done.wait(10)
            assert errors and isinstance(errors[0], LeaseLost)
            assert s.cursor("t", "src") == {"n": 1}
        finally:
            conn.close()


# --- operating it: check, doctor's checks, status -------------------------------------------

PG_TENANT = """\
tenants:
  - name: contoso
    tenant_id: 00000000-0000-0000-0000-000000000001
    client_id: 11111111-1111-1111-1111-111111111111
    client_secret: s3cr3t-value
sources: {include: [audit_logs.sign_ins]}
state: {url: '%s'}
cluster: {replica: collector-a}
"""


def _pg_config(tmp_path, url: str) -> str:
    path = tmp_path / "td-graph.yaml"
    path.write_text(PG_TENANT % url)
    return str(path)


def test_check_reports_the_database_schema_and_clock(tmp_path, pg_url):
    from tests.integration_support import td_graph

    cfg = _pg_config(tmp_path, pg_url)
    fresh = td_graph("check", "-c", cfg)
    assert fresh.returncode == 0, fresh.stdout.decode() + fresh.stderr.decode()
    out = fresh.stdout.decode()
    assert "reachable" in out and "new (td-graph creates its schema" in out and "clock" in out
    PostgresStore(pg_url, replica="x").close()
    used = td_graph("check", "-c", cfg).stdout.decode()
    assert f"schema version {PG_SCHEMA_VERSION}" in used


def test_check_fails_an_unreachable_database_without_its_password(tmp_path):
    from tests.integration_support import td_graph

    cfg = _pg_config(tmp_path, "postgresql://td:db-pass-xyz@127.0.0.1:1/tdgraph")
    r = td_graph("check", "-c", cfg)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 1 and "FAILED" in out and "127.0.0.1:1" in out and "db-pass-xyz" not in out


def test_check_fails_a_newer_schema(tmp_path, pg_server, pg_url):
    from tests.integration_support import td_graph

    PostgresStore(pg_url, replica="x").close()
    pg_server.psql(f"UPDATE td_graph.meta SET value='{PG_SCHEMA_VERSION + 1}'", pg_url.rsplit("/", 1)[1])
    r = td_graph("check", "-c", _pg_config(tmp_path, pg_url))
    assert r.returncode == 1 and b"newer" in r.stdout


@pytest.mark.parametrize("offset, status", [(0.0, "ok"), (5.0, "WARNING"), (-30.0, "FAILED")])
def test_check_judges_clock_skew_against_the_database(tmp_path, pg_url, monkeypatch, offset, status):
    """This machine's clock moved by ``offset`` seconds: the database's clock is the reference."""
    import td_graph_plugin.state.pgcheck as pgcheck
    from td_graph_plugin.cli.check_cmd import run_checks

    real = time.time
    monkeypatch.setattr(pgcheck.time, "time", lambda: real() + offset)
    report = run_checks(_pg_config(tmp_path, pg_url))
    (clock,) = [r for r in report.results if r.name == "clock"]
    assert clock.status == status, clock.detail
    assert report.exit_code == (1 if status == "FAILED" else 0)


def test_status_reads_postgres_and_shows_each_tenants_owner(tmp_path, pg_server, pg_url):
    import json

    from tests.integration_support import td_graph

    cfg = _pg_config(tmp_path, pg_url)
    before = td_graph("status", "-c", cfg, "--format", "json")
    assert before.returncode == 0, before.stderr.decode()
    (row,) = [r for r in json.loads(before.stdout) if r["source"] == "audit_logs.sign_ins"]
    assert row["state"] == "never_run" and row["replica"] is None
    dbname = pg_url.rsplit("/", 1)[1]
    assert pg_server.psql("SELECT to_regclass('td_graph.meta') IS NULL", dbname) == "t", "status never writes"

    s = PostgresStore(pg_url, replica="collector-b")
    s.commit(Commit("contoso", "audit_logs.sign_ins", cursor={"n": 1}, newest_event=time.time() - 60, success=True))
    s.set_query_shape("contoso", "audit_logs.sign_ins", "no-orderby", "400")
    s.close()
    _lease(pg_server, dbname, "contoso", "collector-b", 3)
    r = td_graph("status", "-c", cfg, "--format", "json")
    rows = json.loads(r.stdout)
    (row,) = [r for r in rows if r["source"] == "audit_logs.sign_ins"]
    assert row["state"] == "ok" and row["replica"] == "collector-b" and row["query_shape"] == "no-orderby"
    assert row["lag_seconds"] >= 59
    table = td_graph("status", "-c", cfg).stdout.decode()
    assert "collector-b" in table and dbname in table


def test_a_v2_sqlite_state_becomes_current_keeping_everything(tmp_path):
    """v2 -> v3 adds the query_shapes table, v3 -> v4 tenant_cache; every cursor, key and hash stays."""
    path = tmp_path / "s.db"
    s = StateStore(str(path))
    s.commit(Commit("t", "src", cursor={"n": 1}, seen=[("a", 1.0)], upsert_objects=[("o", "h", 1)]), output=("out", 4))
    s.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE query_shapes")
    db.execute("DROP TABLE tenant_cache")
    db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    db.commit()
    db.close()
    s = StateStore(str(path))
    try:
        assert s.cursor("t", "src") == {"n": 1} and s.seen_keys("t", "src", [("a", 1.0)]) == {"a"}
        assert s.object_hashes("t", "src", ["o"]) == {"o": "h"} and s.output_position("out") == 4
        s.set_query_shape("t", "src", "minimal", "why")
        assert s.query_shape("t", "src") == "minimal"
        s.set_cached("t", "discovery", 1.0, "{}")
        assert s.cached("t", "discovery") == (1.0, "{}")
    finally:
        s.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION) == "4"
    db.close()
    from td_graph_plugin.state import read_state

    assert read_state(str(path)).rows[("t", "src")].query_shape == "minimal"


# The v3 schema as td-graph wrote it before tenant_cache (written out here, not derived from the
# current code, so the upgrade is tested against the files that exist in the field).
V3_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE checkpoints (
    tenant TEXT NOT NULL, source TEXT NOT NULL, cursor TEXT NOT NULL,
    updated_at REAL NOT NULL, last_success REAL, newest_event REAL, PRIMARY KEY (tenant, source));
CREATE TABLE streams (
    id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, source TEXT NOT NULL, UNIQUE (tenant, source));
CREATE TABLE seen (
    stream INTEGER NOT NULL, event_time REAL NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (stream, event_time, key)) WITHOUT ROWID;
CREATE TABLE objects (
    tenant TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, hash TEXT NOT NULL,
    gen INTEGER NOT NULL, PRIMARY KEY (tenant, source, id)) WITHOUT ROWID;
CREATE TABLE outputs (name TEXT PRIMARY KEY, position INTEGER NOT NULL, file TEXT);
CREATE TABLE source_status (
    tenant TEXT NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL, reason TEXT,
    since REAL NOT NULL, next_check REAL, PRIMARY KEY (tenant, source));
CREATE TABLE isolations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, user_id TEXT NOT NULL,
    action TEXT NOT NULL, at REAL NOT NULL, record TEXT NOT NULL);
CREATE INDEX isolations_by_user ON isolations (tenant, user_id, id);
CREATE TABLE query_shapes (
    tenant TEXT NOT NULL, source TEXT NOT NULL, shape TEXT NOT NULL, reason TEXT,
    since REAL NOT NULL, PRIMARY KEY (tenant, source));
INSERT INTO meta VALUES ('schema_version', '3');
INSERT INTO checkpoints VALUES ('t', 'src', '{"n":7}', 100.0, 100.0, 90.0);
INSERT INTO streams(id, tenant, source) VALUES (1, 't', 'src');
INSERT INTO seen VALUES (1, 5.0, 'k1'), (1, 6.0, 'k2');
INSERT INTO objects VALUES ('t', 'src', 'o1', 'h1', 3);
INSERT INTO outputs VALUES ('file:/o', 77, '1:2');
INSERT INTO source_status VALUES ('t', 'src', 'forbidden', 'no consent', 50.0, 60.0);
INSERT INTO isolations(tenant, user_id, action, at, record) VALUES ('t', 'u1', 'isolate', 1.0, '{"id":"a1"}');
INSERT INTO query_shapes VALUES ('t', 'src', 'minimal', 'why', 40.0);
"""


def test_a_v3_sqlite_state_becomes_v4_keeping_every_row(tmp_path):
    """v3 -> v4 only adds tenant_cache: a v3 file opens, keeps its rows and gains the table."""
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.executescript(V3_SCHEMA)
    db.close()
    s = StateStore(str(path))
    try:
        assert s.cursor("t", "src") == {"n": 7}
        assert s.seen_keys("t", "src", [("k1", 5.0), ("k2", 6.0), ("k3", 7.0)]) == {"k1", "k2"}
        assert s.object_hashes("t", "src", ["o1"]) == {"o1": "h1"} and s.output_mark("file:/o") == (77, "1:2")
        assert s.source_status("t", "src") == {"state": "forbidden", "reason": "no consent", "since": 50.0,
                                               "next_check": 60.0}
        assert s.query_shape("t", "src") == "minimal"
        assert [r["id"] for _, r in s.isolation_rows("t", 0)] == ["a1"]
        assert s.cached("t", "discovery") is None
        s.set_cached("t", "discovery", 12.5, '{"licences":[]}')
        s.commit(Commit("t", "src", cursor={"n": 8}, seen=[("k3", 7.0)]))  # the old stream id is reused
        assert s.seen_keys("t", "src", [("k1", 5.0), ("k3", 7.0)]) == {"k1", "k3"}
    finally:
        s.close()
    s = StateStore(str(path))
    try:
        assert s.cached("t", "discovery") == (12.5, '{"licences":[]}') and s.cursor("t", "src") == {"n": 8}
    finally:
        s.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "4"
        assert db.execute("SELECT count(*) FROM streams").fetchone()[0] == 1
    finally:
        db.close()
    db = sqlite3.connect(path)  # a v5 file (a newer td-graph) is still refused, untouched
    db.execute("UPDATE meta SET value='5' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="schema version 5"):
        StateStore(str(path))


def test_a_postgres_schema_1_becomes_2_keeping_every_row(pg_server):
    """PostgreSQL 1 -> 2 only adds td_graph.tenant_cache (MIGRATIONS[1]): rows stay."""
    url = pg_server.new_database()
    dbname = url.rsplit("/", 1)[1]
    s = PostgresStore(url, replica="r1")
    s.commit(Commit("t", "src", cursor={"n": 1}, seen=[("a", 1.0)]), output=("out", 9))
    s.set_query_shape("t", "src", "minimal", "why")
    s.close()
    pg_server.psql("DROP TABLE td_graph.tenant_cache", dbname)
    pg_server.psql("UPDATE td_graph.meta SET value='1' WHERE key='schema_version'", dbname)
    s = PostgresStore(url, replica="r1")
    try:
        assert s.cursor("t", "src") == {"n": 1} and s.seen_keys("t", "src", [("a", 1.0)]) == {"a"}
        assert s.output_position("out") == 9 and s.query_shape("t", "src") == "minimal"
        assert s.cached("t", "openid") is None
        s.set_cached("t", "openid", 3.0, "{}")
        assert s.cached("t", "openid") == (3.0, "{}")
    finally:
        s.close()
    assert pg_server.psql("SELECT value FROM td_graph.meta WHERE key='schema_version'", dbname) == "2"
    assert PG_SCHEMA_VERSION == 2


def test_a_replica_restarted_after_a_kill_is_not_refused(pg_server, pg_url):
    """The twin check waits for the server to drop a dead process's connections."""
    import subprocess
    import sys

    code = (
        "import sys, time; from td_graph_plugin.state.postgres import PostgresStore; "
        f"s = PostgresStore({pg_url!r}, replica='r-kill'); print('up', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"up"
        with pytest.raises(StateError, match="already connected"):
            PostgresStore(pg_url, replica="r-kill")
        proc.kill()
        proc.wait()
        PostgresStore(pg_url, replica="r-kill").close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_commit_whose_commit_ack_was_lost_is_retried_harmlessly(pg_url, monkeypatch):
    """The ambiguous case: COMMIT reached the server but the connection broke before the answer.
    The retry re-runs the page; every write is idempotent, so nothing is doubled."""
    import psycopg

    s = PostgresStore(pg_url, replica="r1")
    original = PostgresStore._run
    attempts: list[str] = []

    def ack_lost_once(self, fn, what):
        def wrapped(conn):
            result = fn(conn)  # committed on the server
            attempts.append(what)
            if len(attempts) == 1:
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return result
        return original(self, wrapped, what)

    try:
        s.commit(Commit("t", "src", cursor={"n": 1}, seen=[("a", 1.0)], upsert_objects=[("o", "h", 1)]), output=("out", 3))
        monkeypatch.setattr(PostgresStore, "_run", ack_lost_once)
        s.commit(Commit("t", "src", cursor={"n": 2}, seen=[("b", 2.0)], upsert_objects=[("o", "h2", 2)],
                        newest_event=50.0), output=("out", 7))
        assert len(attempts) == 2, "the first commit attempt was re-run"
        attempts.clear()
        s.add_isolation("t", "u", "isolate", {"id": "x"})  # its ack is lost once too
        assert len(attempts) == 2
        monkeypatch.setattr(PostgresStore, "_run", original)
        assert s.cursor("t", "src") == {"n": 2} and s.count("seen", "t", "src") == 2
        assert s.object_hashes("t", "src", ["o"]) == {"o": "h2"} and s.output_position("out") == 7
        assert len(s.isolation_rows("t", 0)) == 1, "the audit record is not written twice"
    finally:
        s.close()


def test_a_cluster_replicas_sessions_end_when_frozen_inside_a_transaction(pg_url):
    """A replica SIGSTOPped inside a fenced commit holds its lease row FOR SHARE; the server
    must end that session (idle_in_transaction_session_timeout = a third of the lease TTL,
    6 s -> 2 s) so the tenant can be taken over. Without lease_ttl (isolate, status) no limit."""
    store = PostgresStore(pg_url, replica="frozen", lease_ttl=6.0)
    plain = PostgresStore(pg_url, replica="plain", exclusive=False)
    try:
        with store._pool.connection() as conn:
            assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] == "2s"
        with plain._pool.connection() as conn:
            assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] == "0"
    finally:
        store.close()
        plain.close()
