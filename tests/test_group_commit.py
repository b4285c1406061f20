"""Group commit in the sink's turnstile (issue 16): the pages waiting for their checkpoint are
committed in ONE state transaction, in ticket (= write) order, and each waiter is released
only after the transaction holding its page committed.  A failed batch fails every page in
it (nothing of it committed) and latches the sink.

Deterministic: the turnstile is driven with explicitly queued entries (``_enqueue`` then
``_await``, no thread at all), or with a state double whose ``commit_many`` blocks on an Event
the test controls; the test waits for a state it can observe (a page queued, a commit
entered) before it acts, never for a time."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from td_graph_plugin.cli.run_cluster import FencedSink
from td_graph_plugin.collector.sink import SyncSink, groups_commits
from td_graph_plugin.errors import LeaseLost, OutputError, StateError
from td_graph_plugin.state import Commit, Fence, StateStore


class ListOutput:
    """An output without a file identity: ``write`` returns the position after the page."""

    name = "list"

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def open(self, committed_position: int | None) -> None:
        pass

    def write(self, lines) -> int:
        self.lines.extend(lines)
        return len(self.lines)

    def close(self) -> None:
        pass


class GatedState:
    """A state double that records each transaction (one ``commit_many`` call = one
    transaction); ``gates[i]`` makes transaction i wait for the test, ``entered[i]`` tells the
    test it started; ``fail[i]`` makes transaction i fail."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, Any]]] = []
        self.log: list[tuple] = []
        self.gates: dict[int, threading.Event] = {}
        self.entered: dict[int, threading.Event] = {}
        self.fail: set[int] = set()
        self.calls = 0

    def commit(self, c: Commit, *, output=None) -> None:
        self.commit_many([(c, output)])

    def commit_many(self, commits):
        n = self.calls
        self.calls += 1
        if n in self.entered:
            self.entered[n].set()
        if n in self.gates:
            assert self.gates[n].wait(10), "the test never opened the gate"
        if n in self.fail:
            self.log.append(("failed", n))
            raise StateError("cannot write state database: disk I/O error (injected)")
        self.batches.append([(c.cursor["n"], out) for c, out in commits])
        self.log.append(("txn", n))
        return [None] * len(commits)

    def set_output_position(self, name, position, file=None) -> None:
        self.log.append(("position", name, position, file))

    def output_position(self, name):
        return None


def _commit(i: int, tenant: str = "t") -> Commit:
    return Commit(tenant, "s", cursor={"n": i})


def _queue(sink: SyncSink, n: int, start: int = 0, tenant: str = "t") -> list:
    """Pages start..start+n-1 written and queued, as ``deliver`` does under the output lock."""
    entries = []
    for i in range(start, start + n):
        sink._issued += 1
        entries.append(sink._enqueue(_commit(i, tenant), ("list", 10 * (i + 1)), None))
    return entries


def _until(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


# --- explicit queued entries (no threads) ---------------------------------------------------------

def test_queued_pages_commit_in_one_transaction_in_ticket_order():
    state = GatedState()
    sink = SyncSink(ListOutput(), state)
    entries = _queue(sink, 5)
    sink._await(entries[0])  # the first waiter commits everything queued behind it too
    assert state.batches == [[(i, ("list", 10 * (i + 1))) for i in range(5)]]
    assert all(e.done and e.error is None for e in entries)
    assert sink._serving == sink._issued == 5 and not sink._pending
    sink._await(entries[4])  # already committed: returns at once, no transaction
    assert state.calls == 1


def test_max_batch_splits_the_queue_in_order():
    state = GatedState()
    sink = SyncSink(ListOutput(), state, max_batch=2)
    entries = _queue(sink, 5)
    sink._await(entries[3])
    assert [[n for n, _ in b] for b in state.batches] == [[0, 1], [2, 3]]
    assert not entries[4].done and list(sink._pending) == [entries[4]]
    sink._await(entries[4])
    assert [[n for n, _ in b] for b in state.batches] == [[0, 1], [2, 3], [4]]


def test_a_reopened_file_starts_its_own_batch_and_its_mark_is_stored_first():
    state = GatedState()
    sink = SyncSink(ListOutput(), state)
    sink._issued = 3
    e0 = sink._enqueue(_commit(0), ("f", 10, "1:1"), None)
    e1 = sink._enqueue(_commit(1), ("f", 5, "1:2"), ("f", 0, "1:2"))
    e2 = sink._enqueue(_commit(2), ("f", 9, "1:2"), None)
    sink._await(e2)
    assert [[n for n, _ in b] for b in state.batches] == [[0], [1, 2]]
    assert state.log == [("txn", 0), ("position", "f", 0, "1:2"), ("txn", 1)]
    assert e0.done and e1.done


def test_a_real_sqlite_store_writes_the_queue_in_one_transaction(tmp_path):
    state = StateStore(str(tmp_path / "s.db"))
    statements: list[str] = []
    state._db.set_trace_callback(statements.append)
    sink = SyncSink(ListOutput(), state)
    entries = _queue(sink, 4, tenant="t") + _queue(sink, 2, start=4, tenant="u")
    sink._await(entries[0])
    assert sum(s.startswith("BEGIN") for s in statements) == 1
    assert sum(s == "COMMIT" for s in statements) == 1
    assert state.cursor("t", "s") == {"n": 3} and state.cursor("u", "s") == {"n": 5}
    assert state.output_position("list") == 60, "the last page's offset: never one of an earlier page"
    state.close()


def test_a_store_without_group_commit_gets_one_commit_per_page(tmp_path):
    class OnePerPage(StateStore):  # intercepts commit(): the sink must keep calling it
        commits: list[int] = []

        def commit(self, c, *, output=None):  # type: ignore[override]
            self.commits.append(c.cursor["n"])
            return super().commit(c, output=output)

    state = OnePerPage(str(tmp_path / "s.db"))
    assert not groups_commits(state) and groups_commits(StateStore(":memory:"))
    sink = SyncSink(ListOutput(), state)
    entries = _queue(sink, 3)
    sink._await(entries[2])
    assert state.commits == [0, 1, 2] and state.cursor("t", "s") == {"n": 2}
    state.close()


# --- through deliver, with a blocked transaction --------------------------------------------------

class _Pages:
    """Threads delivering pages; each page's ``committed()`` logs into the state's log."""

    def __init__(self, sink: SyncSink, state: GatedState) -> None:
        self.sink, self.state = sink, state
        self.threads: dict[int, threading.Thread] = {}
        self.errors: dict[int, BaseException] = {}

    def start(self, i: int) -> None:
        def run() -> None:
            try:
                self.sink.deliver([b"page %d\n" % i], _commit(i), lambda: self.state.log.append(("committed", i)))
            except BaseException as exc:  # noqa: BLE001 - the test inspects it
                self.errors[i] = exc

        t = self.threads[i] = threading.Thread(target=run, daemon=True)
        t.start()

    def queue(self, i: int) -> None:
        """Deliver page i and wait until it is written and queued behind the blocked commit."""
        queued = len(self.sink._pending) + 1
        self.start(i)
        _until(lambda: len(self.sink._pending) == queued, f"page {i} queued")

    def join(self) -> None:
        for t in self.threads.values():
            t.join(10)
            assert not t.is_alive()


def _blocked_first_commit(max_batch: int = 64) -> tuple[SyncSink, GatedState, _Pages, threading.Event]:
    """Page 0's transaction has started and waits on the returned gate."""
    state = GatedState()
    gate = state.gates[0] = threading.Event()
    state.entered[0] = threading.Event()
    sink = SyncSink(ListOutput(), state, max_batch=max_batch)
    pages = _Pages(sink, state)
    pages.start(0)
    assert state.entered[0].wait(10)
    return sink, state, pages, gate


def test_pages_queued_behind_a_commit_go_in_the_next_transaction_and_wait_for_it():
    sink, state, pages, gate = _blocked_first_commit()
    for i in (1, 2, 3):
        pages.queue(i)
    # Written (and synced) but not committed: nobody released, no committed() ran.
    assert sink.output.lines == [b"page %d\n" % i for i in range(4)]
    assert all(t.is_alive() for t in pages.threads.values())
    assert not [e for e in state.log if e[0] == "committed"]
    gate.set()
    pages.join()
    assert not pages.errors
    assert [[n for n, _ in b] for b in state.batches] == [[0], [1, 2, 3]], "3 queued pages: ONE transaction"
    assert [out for _, out in state.batches[1]] == [("list", 2), ("list", 3), ("list", 4)]
    log = state.log
    assert log.index(("txn", 0)) < log.index(("committed", 0))
    for i in (1, 2, 3):  # released only after the transaction holding the page
        assert log.index(("txn", 1)) < log.index(("committed", i))


def test_a_failed_batch_fails_every_page_in_it_and_latches_the_sink():
    sink, state, pages, gate = _blocked_first_commit(max_batch=2)
    state.fail.add(1)
    for i in (1, 2, 3):
        pages.queue(i)
    gate.set()
    pages.join()
    assert state.batches == [[(0, ("list", 1))]], "nothing of the failed batch (or after it) committed"
    assert 0 not in pages.errors
    for i in (1, 2):  # the failed batch: each waiter gets the error itself
        assert isinstance(pages.errors[i], StateError) and "injected" in str(pages.errors[i])
    # page 3 was queued behind the failed batch: refused, never committed past it
    assert isinstance(pages.errors[3], OutputError) and "earlier failure" in str(pages.errors[3])
    assert [e for e in state.log if e[0] == "committed"] == [("committed", 0)]
    with pytest.raises(OutputError, match="earlier failure.*injected"):
        sink.deliver([b"late\n"], _commit(9), lambda: None)
    assert sink.output.lines[-1] == b"page 3\n", "a latched sink writes nothing more"


# --- a cluster replica: a lost lease fails its page alone -----------------------------------------

def test_a_fenced_batch_commits_the_held_tenants_and_fails_the_lost_one_alone(pg_server, pg_url):
    from td_graph_plugin.state.postgres import PostgresStore

    dbname = pg_url.rsplit("/", 1)[1]
    store = PostgresStore(pg_url, replica="a")
    try:
        fences = {"t": Fence("t", "a", 1), "u": Fence("u", "a", 1)}
        store.set_fencing(fences.get)
        for tenant, owner, epoch in (("t", "a", 1), ("u", "b", 2)):  # b took u over
            pg_server.psql(
                "INSERT INTO td_graph.leases(tenant, owner, epoch, expires_at, acquired_at) "
                f"VALUES ('{tenant}', '{owner}', {epoch}, now() + interval '30 seconds', now())", dbname)
        sink = FencedSink(ListOutput(), store, None, fences.get)
        assert groups_commits(sink.state)
        commits = [_commit(0, "t"), _commit(1, "u"), _commit(2, "t")]
        sink._issued = 3
        entries = [sink._enqueue(c, ("list", 10 * (i + 1)), None) for i, c in enumerate(commits)]
        sink._await(entries[0])
        assert all(e.done and e.error is None for e in entries), "a lost lease is not a sink failure"
        assert sink._failure is None
        sink._catcher.raise_if_lost(commits[0])
        sink._catcher.raise_if_lost(commits[2])
        with pytest.raises(LeaseLost, match="tenant u"):
            sink._catcher.raise_if_lost(commits[1])
        assert store.cursor("t", "s") == {"n": 2} and store.cursor("u", "s") is None
        assert store.output_position("list") == 30
    finally:
        store.close()
