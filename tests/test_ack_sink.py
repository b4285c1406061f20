"""AckSink (checkpoint-after-acknowledge for asynchronous hosts) and GraphFetcher without syslog-ng.

The sink is driven the way syslog-ng drives it: lines are taken from its queue, and
acknowledgements come back either as a contiguous mark (``ack``) or message by message in any
order (``ack_each``, what the BatchedAckTracker reports).
"""

from __future__ import annotations

import threading
import time

import pytest

from td_graph_plugin.errors import StateError
from td_graph_plugin.hosts import AckSink, DeliveryStopped
from td_graph_plugin.state import Commit, StateStore


class RecordingState:
    """A StateStore stand-in that records commit order (and can be told to fail)."""

    def __init__(self) -> None:
        self.commits: list[str] = []
        self.fail_on: str | None = None

    def commit(self, c: Commit, *, output=None) -> None:
        label = c.cursor["label"]
        if label == self.fail_on:
            raise StateError("disk full")
        self.commits.append(label)


def _commit(label: str, source: str = "s.a") -> Commit:
    return Commit("t", source, cursor={"label": label})


def _lines(n: int, prefix: str = "r") -> list[bytes]:
    return [f'{{"id":"{prefix}{i}"}}\n'.encode() for i in range(n)]


def _drain(sink: AckSink) -> list[int]:
    out = []
    while (item := sink.take()) is not None:
        out.append(item[0])
    return out


def test_checkpoint_unchanged_until_the_ack_callback(tmp_path):
    state = StateStore(str(tmp_path / "state.db"))
    try:
        sink = AckSink(state, wait_for_commit=False)
        done = []
        sink.deliver(_lines(3), Commit("t", "audit_logs.sign_ins", cursor={"done": "x", "active": None},
                                       seen=[("a", 1.0), ("b", 1.0), ("c", 1.0)]), lambda: done.append(1))
        assert state.cursor("t", "audit_logs.sign_ins") is None  # queued, not acknowledged
        assert _drain(sink) == [1, 2, 3]
        assert state.cursor("t", "audit_logs.sign_ins") is None  # posted, not acknowledged
        sink.ack(2)
        assert state.cursor("t", "audit_logs.sign_ins") is None and not done  # page only partly acknowledged
        sink.ack(3)
        assert state.cursor("t", "audit_logs.sign_ins") == {"done": "x", "active": None}
        assert state.count("seen", "t", "audit_logs.sign_ins") == 3 and done == [1]
    finally:
        state.close()


def test_out_of_order_acks_commit_only_the_contiguous_prefix():
    state = RecordingState()
    sink = AckSink(state, wait_for_commit=False)
    sink.deliver(_lines(3, "a"), _commit("A"), lambda: None)  # 1..3
    sink.deliver(_lines(3, "b"), _commit("B"), lambda: None)  # 4..6
    sink.deliver(_lines(2, "c"), _commit("C"), lambda: None)  # 7..8
    assert _drain(sink) == list(range(1, 9))
    sink.ack_each([6, 5, 4])  # page B complete, but page A is not: nothing may commit
    assert state.commits == [] and sink.acked == 0
    sink.ack_each([3, 2, 8])
    assert state.commits == [] and sink.acked == 0
    sink.ack_each([1])  # the gap closes: 1..6 contiguous, 7 still missing
    assert state.commits == ["A", "B"] and sink.acked == 6
    sink.ack_each([7])
    assert state.commits == ["A", "B", "C"] and sink.acked == 8 and sink.pending() == 0


def test_empty_batch_commits_keep_their_order():
    state = RecordingState()
    sink = AckSink(state, wait_for_commit=False)
    sink.deliver(_lines(2, "a"), _commit("A"), lambda: None)  # 1..2
    sink.deliver([], _commit("A-window-done"), lambda: None)  # after 2
    sink.deliver(_lines(2, "b"), _commit("B"), lambda: None)  # 3..4
    sink.deliver([], _commit("B-window-done"), lambda: None)  # after 4
    _drain(sink)
    sink.ack_each([3, 4])
    assert state.commits == []  # nothing before the gap at 1..2
    sink.ack(2)
    assert state.commits == ["A", "A-window-done", "B", "B-window-done"]


def test_empty_batch_waits_for_every_earlier_page_then_commits_at_once():
    state = RecordingState()
    sink = AckSink(state, wait_for_commit=False)
    sink.deliver([], _commit("E0"), lambda: None)  # nothing before it: commits immediately
    assert state.commits == ["E0"]
    sink.deliver(_lines(2), _commit("P"), lambda: None)
    sink.deliver([], _commit("E1"), lambda: None)
    assert state.commits == ["E0"]
    _drain(sink)
    sink.ack(1)
    assert state.commits == ["E0"]
    sink.ack(2)
    assert state.commits == ["E0", "P", "E1"]
    sink.deliver([], _commit("E2"), lambda: None)  # everything before it acknowledged
    assert state.commits == ["E0", "P", "E1", "E2"]


def test_deliver_waits_for_its_commit_and_stop_leaves_it_uncommitted():
    state = RecordingState()
    stop = threading.Event()
    sink = AckSink(state, stop=stop, poll=0.01)
    outcome: dict[str, object] = {}

    def collector(label: str) -> None:
        try:
            sink.deliver(_lines(2, label), _commit(label), lambda: None)
            outcome[label] = "committed"
        except DeliveryStopped:
            outcome[label] = "stopped"

    t = threading.Thread(target=collector, args=("A",))
    t.start()
    _wait(lambda: sink.queued() == 2)
    assert t.is_alive() and state.commits == []  # blocked until acknowledged
    _drain(sink)
    sink.ack(2)
    t.join(5)
    assert outcome["A"] == "committed" and state.commits == ["A"]

    t = threading.Thread(target=collector, args=("B",))
    t.start()
    _wait(lambda: sink.queued() == 2)
    _drain(sink)
    sink.ack(3)  # only half of page B
    stop.set()
    t.join(5)
    assert outcome["B"] == "stopped" and state.commits == ["A"]
    sink.close()
    sink.ack(4)  # a late acknowledgement after the stop changes nothing
    assert state.commits == ["A"]


def test_bounded_queue_applies_backpressure():
    state = RecordingState()
    sink = AckSink(state, max_queue=3, wait_for_commit=False, poll=0.01)
    t = threading.Thread(target=sink.deliver, args=(_lines(10), _commit("P"), lambda: None))
    t.start()
    _wait(lambda: sink.queued() == 3)
    time.sleep(0.05)
    assert t.is_alive() and sink.queued() == 3 and sink.handed_out == 3  # the collector waits
    taken = []
    while len(taken) < 10:
        item = sink.take(1.0)
        assert item is not None
        taken.append(item[0])
        assert sink.queued() <= 3
    t.join(5)
    assert taken == list(range(1, 11)) and not t.is_alive()


def test_stop_while_queue_full_raises_in_the_collector():
    sink = AckSink(RecordingState(), max_queue=1, poll=0.01)
    stop = sink.stop
    errors = []

    def collector() -> None:
        try:
            sink.deliver(_lines(5), _commit("P"), lambda: None)
        except DeliveryStopped as exc:
            errors.append(exc)

    t = threading.Thread(target=collector)
    t.start()
    _wait(lambda: sink.queued() == 1)
    stop.set()
    t.join(5)
    assert len(errors) == 1 and not t.is_alive()
    with pytest.raises(DeliveryStopped):
        sink.deliver([], _commit("late"), lambda: None)


def test_a_failed_commit_stops_every_later_commit():
    state = RecordingState()
    state.fail_on = "B"
    sink = AckSink(state, wait_for_commit=False)
    for label in ("A", "B", "C"):
        sink.deliver(_lines(1, label), _commit(label), lambda: None)
    _drain(sink)
    sink.ack(3)
    assert state.commits == ["A"]  # C must not commit past the failed B
    assert isinstance(sink.failed, StateError) and sink.stop.is_set()
    with pytest.raises(StateError):
        sink.deliver(_lines(1), _commit("D"), lambda: None)


def test_close_drops_unacknowledged_pages_and_wakes_take():
    state = RecordingState()
    sink = AckSink(state, wait_for_commit=False)
    sink.deliver(_lines(2), _commit("A"), lambda: None)
    sink.close()
    assert sink.pending() == 0 and sink.queued() == 0
    sink.ack(2)
    assert state.commits == []
    waiter = AckSink(state, wait_for_commit=False)
    t0 = time.monotonic()
    threading.Timer(0.05, waiter.wake).start()
    assert waiter.take(5.0) is None and time.monotonic() - t0 < 2.0


def _wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


# --- GraphFetcher outside syslog-ng (stand-in base classes) --------------------------------------
def test_fetcher_lifecycle_against_the_simulator_without_syslog_ng(tmp_path, monkeypatch):
    """init validates, open starts the engine, fetch posts records with name-value pairs and
    bookmarks, the BatchedAckTracker callback commits, close stops; nothing commits unacked."""
    import host_support as hs
    from td_graph_plugin.hosts import syslog_ng
    from td_graph_plugin.simulator import GraphSimulator

    assert not syslog_ng.IN_SYSLOG_NG
    with GraphSimulator() as sim:
        tenant = sim.add_tenant(profile="e5")
        monkeypatch.setenv("TD_GRAPH_DEMO_SECRET", tenant.client_secret)
        cfg = hs.write_td_graph_config(sim, tenant, str(tmp_path), sources=["security.alerts_v2"])
        fetcher = syslog_ng.GraphFetcher()
        assert fetcher.generate_persist_name({"config": cfg}) == f"td_graph,{cfg}"
        assert fetcher.init({"config": cfg, "queue_size": "50", "ack-timeout": "20"}) is True
        tracker = fetcher.ack_tracker
        assert isinstance(tracker, syslog_ng.BatchedAckTracker)
        assert (tracker.timeout, tracker.batch_size) == (20, 50)
        assert fetcher.open() is True
        try:
            messages = []
            deadline = time.monotonic() + 30
            while len(messages) < len(tenant.alerts) and time.monotonic() < deadline:
                result, msg = fetcher.fetch()
                if result == fetcher.FETCH_SUCCESS:
                    messages.append(msg)
                else:
                    assert result == fetcher.FETCH_NO_DATA
            assert len(messages) == len(tenant.alerts)
            import json

            for msg in messages:
                record = json.loads(msg["MESSAGE"])
                assert msg[".td_graph.id"] == record["id"] and msg[".td_graph.source"] == "security.alerts_v2"
                assert msg[".td_graph.tenant"] == "demo" and msg[".td_graph.event_time"] == record["event_time"]
                assert msg["PROGRAM"] == "td-graph"
            bookmarks = [m.bookmark for m in messages]
            assert len(set(bookmarks)) == len(bookmarks)
            sink = fetcher._sink
            assert sink.pending() >= 1 and sink.acked == 0  # the page waits for syslog-ng
            tracker.batched_ack_callback(list(reversed(bookmarks)))  # any order
            state = fetcher._runtime.state
            # The page commits, then the window's completion (an empty batch queued after it).
            _wait(lambda: (state.cursor("demo", "security.alerts_v2") or {}).get("done") is not None)
            cursor = state.cursor("demo", "security.alerts_v2")
            assert cursor["active"] is None and cursor["done"]
            tracker.batched_ack_callback(["999:1"])  # another generation's bookmark: ignored
        finally:
            fetcher.request_exit()
            fetcher.close()
            fetcher.deinit()
        assert fetcher._runtime is None


def test_fetcher_init_refuses_missing_or_bad_config(tmp_path, caplog):
    from td_graph_plugin.hosts import syslog_ng

    fetcher = syslog_ng.GraphFetcher()
    assert fetcher.init({}) is False
    assert 'options("config"' in caplog.text
    bad = tmp_path / "td-graph.yaml"
    bad.write_text("tenants: []\n")
    assert fetcher.init({"config": str(bad)}) is False
    assert "configuration error" in caplog.text and str(bad) in caplog.text
    assert fetcher.init({"config": str(bad), "queue-size": "many"}) is False
    assert "queue-size" in caplog.text
