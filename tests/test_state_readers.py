"""Issue 16: SQLite reads run beside a commit in progress (WAL readers), never behind it.

With one shared connection every read of 32 workers (a cursor, a page's dedup keys, a source's
status) waited for whichever page was committing, fsync included.  The writer is held inside
COMMIT here by a wrapper around its connection (no timing: it waits on an Event), and a read
on another thread must finish while it is held.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest

from td_graph_plugin.errors import StateError
from td_graph_plugin.state import Commit, StateStore


class HeldInCommit:
    """The store's writer connection, stopping at COMMIT until released."""

    def __init__(self, real) -> None:
        self.real = real
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self.real, name)

    def execute(self, sql, *args):
        if sql == "COMMIT":
            self.entered.set()
            assert self.release.wait(30), "the test never released the writer"
        return self.real.execute(sql, *args)


def test_reads_finish_while_another_thread_is_inside_commit(tmp_path):
    s = StateStore(str(tmp_path / "s.db"))
    s.commit(Commit("t", "src", cursor={"n": 1}, seen=[("a", 1.0)]), output=("out", 10))
    s.set_source_status("t", "src", "ok", None, None)
    s.set_query_shape("t", "src", "minimal", "why")
    held = HeldInCommit(s._db)
    s._db = held
    writer = threading.Thread(target=s.commit, args=(Commit("t", "src", cursor={"n": 2}, seen=[("b", 2.0)]),),
                              kwargs={"output": ("out", 20)})
    writer.start()
    assert held.entered.wait(10)
    got: dict = {}

    def read() -> None:
        got["cursor"] = s.cursor("t", "src")
        got["seen"] = s.seen_keys("t", "src", [("a", 1.0), ("b", 2.0)])
        got["status"] = s.source_status("t", "src")["state"]
        got["shape"] = s.query_shape("t", "src")
        got["position"] = s.output_position("out")

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(10)
    blocked = reader.is_alive()
    held.release.set()
    writer.join(10)
    reader.join(10)
    s._db = held.real
    try:
        assert not blocked, "a read waited for another page's COMMIT"
        # The page being committed is not visible before its COMMIT: all or nothing.
        assert got == {"cursor": {"n": 1}, "seen": {"a"}, "status": "ok", "shape": "minimal", "position": 10}
        # ...and is visible to every read that starts after it.
        assert s.cursor("t", "src") == {"n": 2} and s.seen_keys("t", "src", [("b", 2.0)]) == {"b"}
        assert s.output_position("out") == 20
    finally:
        s.close()


def test_what_one_thread_wrote_another_reads_at_once(tmp_path):
    s = StateStore(str(tmp_path / "s.db"))
    seen: list = []

    def write_then_hand_over(step: threading.Event) -> None:
        s.set_source_status("t", "src", "forbidden", "no consent", 99.0)
        s.set_cached("t", "discovery", 5.0, "{}")
        s.commit(Commit("t", "new-source", cursor={"n": 1}, seen=[("k", 3.0)]))
        step.set()

    step = threading.Event()
    threading.Thread(target=write_then_hand_over, args=(step,)).start()
    assert step.wait(10)
    seen.append(s.source_status("t", "src")["state"])
    seen.append(s.cached("t", "discovery"))
    seen.append(s.seen_keys("t", "new-source", [("k", 3.0)]))
    assert seen == ["forbidden", (5.0, "{}"), {"k"}]
    assert s.seen_keys("t", "never-written", [("k", 3.0)]) == set()
    s.close()


def test_readers_are_bounded_and_reads_after_close_fail_clearly(tmp_path):
    s = StateStore(str(tmp_path / "s.db"))
    s.commit(Commit("t", "src", cursor={"n": 1}))
    barrier = threading.Barrier(12)
    errors: list = []

    def read() -> None:
        try:
            barrier.wait(10)
            for _ in range(50):
                assert s.cursor("t", "src") == {"n": 1}
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and s._readers._open <= s._readers.size
    s.close()
    with pytest.raises(StateError, match="closed"):
        s.cursor("t", "src")


def test_memory_databases_read_through_the_writer():
    s = StateStore(":memory:")
    s.commit(Commit("t", "src", cursor={"n": 1}, seen=[("a", 1.0)]))
    assert s.cursor("t", "src") == {"n": 1} and s.seen_keys("t", "src", [("a", 1.0)]) == {"a"}
    s.close()


def test_every_kind_of_write_is_visible_to_a_read_started_after_it_returned(tmp_path):
    """Read-your-writes across threads for each write path: the page transaction (commit_many),
    and the autocommit writes (status, shape, cache, output position, isolation records)."""
    s = StateStore(str(tmp_path / "s.db"))
    iso = StateStore(str(tmp_path / "s-isolation.db"), exclusive=False)
    writes: list = [
        lambda: s.commit_many([(Commit("t", "a", cursor={"n": 1}, seen=[("k", 1.0)]), ("out", 5)),
                               (Commit("t", "b", cursor={"n": 2}, upsert_objects=[("o", "h", 1)]), None)]),
        lambda: s.set_source_status("t", "a", "unlicensed", "no P1", 7.0),
        lambda: s.set_query_shape("t", "a", "no-orderby", "400"),
        lambda: s.set_cached("t", "openid", 9.0, '{"issuer":"x"}'),
        lambda: s.set_output_position("out", 11, "1:2"),
        lambda: iso.add_isolation("t", "u1", "isolate", {"id": "r1"}),
    ]
    reads: list = [
        lambda: (s.cursor("t", "a"), s.seen_keys("t", "a", [("k", 1.0)]), s.object_hashes("t", "b", ["o"])),
        lambda: s.source_status("t", "a")["state"],
        lambda: s.query_shape("t", "a"),
        lambda: s.cached("t", "openid"),
        lambda: s.output_mark("out"),
        lambda: [r["id"] for _, r in iso.isolation_rows("t", 0)],
    ]
    expected = [({"n": 1}, {"k"}, {"o": "h"}), "unlicensed", "no-orderby", (9.0, '{"issuer":"x"}'), (11, "1:2"), ["r1"]]
    try:
        for write, read, want in zip(writes, reads, expected):
            done = threading.Event()
            threading.Thread(target=lambda w=write: (w(), done.set())).start()
            assert done.wait(10)
            got: list = []
            t = threading.Thread(target=lambda r=read: got.append(r()))
            t.start()
            t.join(10)
            assert got == [want]
    finally:
        s.close()
        iso.close()


def test_a_shared_isolation_store_reads_what_another_handle_wrote(tmp_path):
    """exclusive=False (the analyst's CLI writes while the collector reads): two handles."""
    path = str(tmp_path / "s-isolation.db")
    collector, cli = StateStore(path, exclusive=False), StateStore(path, exclusive=False)
    try:
        assert collector.isolation_rows("t", 0) == []
        cli.add_isolation("t", "u1", "isolate", {"id": "r1"})
        assert [r["id"] for _, r in collector.isolation_rows("t", 0)] == ["r1"]
        assert [r["action"] for r in collector.isolations("t", "u1")] == ["isolate"]
    finally:
        collector.close()
        cli.close()


def test_dedup_reads_create_no_stream_and_see_no_uncommitted_one(tmp_path):
    """seen_keys on a reader looks the stream up read-only: no row is inserted, and a stream
    created by a transaction still in COMMIT is not seen (nor cached) until it commits."""
    path = str(tmp_path / "s.db")
    s = StateStore(path)
    assert s.seen_keys("t", "never", [("k", 1.0)]) == set()
    held = HeldInCommit(s._db)
    s._db = held
    writer = threading.Thread(target=s.commit, args=(Commit("t", "new", cursor={}, seen=[("k", 1.0)]),))
    writer.start()
    try:
        assert held.entered.wait(10)
        got: list = []
        reader = threading.Thread(target=lambda: got.append(s.seen_keys("t", "new", [("k", 1.0)])))
        reader.start()
        reader.join(10)
        assert got == [set()], "a read saw (or waited for) a page still in COMMIT"
    finally:
        held.release.set()
        writer.join(10)
        s._db = held.real
    try:
        assert s.seen_keys("t", "new", [("k", 1.0)]) == {"k"}
        db = sqlite3.connect(path)
        try:
            assert db.execute("SELECT tenant, source FROM streams").fetchall() == [("t", "new")]
        finally:
            db.close()
    finally:
        s.close()


def test_readers_are_read_only_with_a_small_cache(tmp_path):
    s = StateStore(str(tmp_path / "s.db"))
    try:
        s.cursor("t", "src")
        (conn,) = s._readers._idle
        assert conn.execute("PRAGMA query_only").fetchone()[0] == 1
        assert conn.execute("PRAGMA cache_size").fetchone()[0] == -512
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("INSERT INTO meta(key, value) VALUES ('x', 'y')")
    finally:
        s.close()


def test_read_errors_are_state_errors_naming_the_file(tmp_path):
    path = str(tmp_path / "s.db")
    s = StateStore(path)
    try:
        s._db.execute("DROP TABLE source_status")  # damaged behind the readers' back
        with pytest.raises(StateError, match=r"cannot read state database .*s\.db.*source_status"):
            s.source_status("t", "src")
    finally:
        s.close()
    m = StateStore(":memory:")
    m.close()
    with pytest.raises(StateError, match="memory"):
        m.cursor("t", "src")
