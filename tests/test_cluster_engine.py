"""The engine and the sinks of a cluster replica, without a database: a lost lease ends one job
quietly (no failure, no status, no latched sink), a tenant not owned never runs, and a page of
a tenant whose lease is known lost is not even written.

The state is the SQLite store wrapped so that commits of chosen tenants raise ``LeaseLost``,
as the PostgreSQL store's fence does (tests/test_cluster_leases.py tests that part).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from fakes import FakeWindowClient, ListOutput

from td_graph_plugin.cli.run_cluster import FencedAckSink, FencedSink
from td_graph_plugin.collector import Engine
from td_graph_plugin.config.model import Config, Secret, SourcesConfig, TenantConfig
from td_graph_plugin.errors import LeaseLost
from td_graph_plugin.state import Commit, StateStore
from td_graph_plugin.state.backend import Fence
from td_graph_plugin.status import OK, STOPPED

NOW = datetime.now(timezone.utc)


class LosingState:
    """The SQLite state, except that commits of ``self.lost`` tenants raise ``LeaseLost``."""

    def __init__(self, inner: StateStore) -> None:
        self._inner = inner
        self.lost: set[str] = set()
        self.replica = "r1"

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def commit(self, c, **kw):
        if c.tenant in self.lost:
            raise LeaseLost(c.tenant, self.replica, 7)
        return self._inner.commit(c, **kw)


def _tenant(name: str, i: int) -> TenantConfig:
    return TenantConfig(name=name, tenant_id=f"0f0e0d0c-0b0a-4909-8807-06050403020{i}",
                        client_id="11111111-2222-4333-8444-555555555555", client_secret=Secret("not-a-real-secret-123"))


def _alerts(n: int) -> list[dict]:
    return [{"id": f"a{i}", "lastUpdateDateTime": (NOW - timedelta(minutes=30 + i)).strftime("%Y-%m-%dT%H:%M:%SZ")}
            for i in range(n)]


def _engine(tmp_path, catalogue, fence):
    config = Config(tenants=(_tenant("contoso", 1), _tenant("fabrikam", 2)),
                    sources=SourcesConfig(include=("security.alerts_v2",)))
    state = LosingState(StateStore(str(tmp_path / "state.db")))
    out = ListOutput()
    sink = FencedSink(out, state, None, fence)
    clients = {"contoso": FakeWindowClient(_alerts(7)), "fabrikam": FakeWindowClient(_alerts(5))}
    engine = Engine(config, catalogue, state=state, sink=sink, client_factory=lambda t: clients[t.name])
    return engine, state, out, clients


def _fence_all(tenant: str) -> Fence:
    return Fence(tenant, "r1", 7)


def test_a_lost_lease_ends_one_job_quietly_and_the_sink_goes_on(tmp_path, catalogue):
    engine, state, out, _ = _engine(tmp_path, catalogue, _fence_all)
    try:
        jobs = {j.tenant.name: j for j in engine.jobs(sources=["security.alerts_v2"])}
        state.lost.add("fabrikam")  # the database says another replica holds it now
        lost = engine.run_job(jobs["fabrikam"])
        assert lost.status == STOPPED and isinstance(lost.error, LeaseLost)
        assert not lost.failed and engine.fatal is None and not engine.stop.is_set()
        assert state.source_status("fabrikam", "security.alerts_v2") is None  # nothing written
        assert state.cursor("fabrikam", "security.alerts_v2") is None
        written = len(out.lines)
        assert written > 0  # its page was written before the commit found out: the in-flight duplicate
        ok = engine.run_job(jobs["contoso"])  # the sink did not latch
        assert ok.status == OK and ok.stats.records == 7
        assert state.cursor("contoso", "security.alerts_v2") is not None
        assert engine.next_delay(lost) <= 1.0  # looked at again soon; runs only once owned again
    finally:
        engine.close()
        state.close()


def test_a_page_of_a_tenant_known_lost_is_not_written(tmp_path, catalogue):
    engine, state, out, _ = _engine(tmp_path, catalogue, lambda t: None if t == "fabrikam" else _fence_all(t))
    try:
        jobs = {j.tenant.name: j for j in engine.jobs(sources=["security.alerts_v2"])}
        lost = engine.run_job(jobs["fabrikam"])
        assert lost.status == STOPPED and isinstance(lost.error, LeaseLost)
        assert out.lines == []  # refused before the output
        assert engine.run_job(jobs["contoso"]).status == OK
    finally:
        engine.close()
        state.close()


def test_run_forever_runs_only_owned_tenants_and_picks_up_a_gained_one(tmp_path, catalogue):
    engine, state, out, clients = _engine(tmp_path, catalogue, _fence_all)
    owned = {"contoso"}
    try:
        jobs = engine.jobs(sources=["security.alerts_v2"])
        runner = threading.Thread(target=engine.run_forever, args=(jobs,), kwargs={"owns": lambda t: t in owned})
        runner.start()
        deadline = time.monotonic() + 20
        while state.cursor("contoso", "security.alerts_v2") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.cursor("contoso", "security.alerts_v2") is not None
        assert clients["fabrikam"].calls == []  # not owned: never asked
        owned.add("fabrikam")  # gained: runs within about a second
        while state.cursor("fabrikam", "security.alerts_v2") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.cursor("fabrikam", "security.alerts_v2") is not None
    finally:
        engine.stop.set()
        runner.join(timeout=30)
        state.close()


def test_single_process_runs_every_tenant_as_before(tmp_path, catalogue):
    engine, state, out, clients = _engine(tmp_path, catalogue, _fence_all)
    try:
        results = engine.run_once(engine.jobs(sources=["security.alerts_v2"]))
        assert sorted(r.status for r in results) == [OK, OK]
        assert len(out.lines) == 12
    finally:
        engine.close()
        state.close()


def test_the_ack_sink_does_not_latch_on_a_lost_lease(tmp_path):
    inner = StateStore(str(tmp_path / "state.db"))
    state = LosingState(inner)
    state.lost.add("fabrikam")
    sink = FencedAckSink(state, fence=lambda t: None if t == "gone" else _fence_all(t), max_queue=100)
    stop = threading.Event()

    def host() -> None:  # syslog-ng: take every line and acknowledge it
        while not stop.is_set():
            item = sink.take(0.05)
            if item is not None:
                sink.ack(item[0])

    t = threading.Thread(target=host, daemon=True)
    t.start()
    try:
        committed: list[str] = []
        try:
            sink.deliver([b"x\n"], Commit("fabrikam", "s", {"c": 1}), lambda: committed.append("fabrikam"))
            raise AssertionError("LeaseLost expected")
        except LeaseLost:
            pass
        try:
            sink.deliver([b"y\n"], Commit("gone", "s", {"c": 1}), lambda: committed.append("gone"))
            raise AssertionError("LeaseLost expected")
        except LeaseLost:
            pass
        sink.deliver([b"z\n"], Commit("contoso", "s", {"c": 2}), lambda: committed.append("contoso"))
        assert sink.failed is None
        assert inner.cursor("contoso", "s") == {"c": 2}
        assert inner.cursor("fabrikam", "s") is None
        assert "contoso" in committed and "gone" not in committed
    finally:
        stop.set()
        t.join(timeout=5)
        inner.close()


def test_a_job_waiting_for_a_worker_is_not_run_once_its_tenant_is_handed_over(tmp_path, catalogue):
    """Ownership is decided when a job starts: with every worker busy, a due job of a tenant
    this replica hands over meanwhile never runs (found by benchmarks/cluster.py: a replica that
    had queued 2,000 jobs ran hundreds of them for tenants it had released 40 s earlier)."""
    from dataclasses import replace

    engine, state, out, _ = _engine(tmp_path, catalogue, _fence_all)
    engine.config = replace(engine.config, workers=1)
    owned = {"contoso", "fabrikam"}
    started: list[str] = []
    first_running, release_first = threading.Event(), threading.Event()

    def run_job(job):  # stands for the real job: the first one holds the only worker
        started.append(job.tenant.name)
        if len(started) == 1:
            first_running.set()
            release_first.wait(30)
        else:
            engine.stop.set()  # the second job to start ends the loop
        from td_graph_plugin.collector.engine import JobResult
        return JobResult(job, OK, None, None, 0.0)

    engine.run_job = run_job
    engine.next_delay = lambda result: 0.0  # the first tenant's job is due again at once
    jobs = engine.jobs(sources=["security.alerts_v2"])
    loop = threading.Thread(target=engine.run_forever, args=(jobs, lambda t: t in owned))
    loop.start()
    try:
        assert first_running.wait(30)
        (other,) = owned - {started[0]}
        owned.discard(other)  # handed over while its job was due and waiting for the worker
        release_first.set()
        loop.join(60)  # ends when the second job starts
    finally:
        engine.stop.set()
        release_first.set()
        loop.join(30)
    assert len(started) == 2 and other not in started, f"{other}'s job ran after the hand-over: {started}"
