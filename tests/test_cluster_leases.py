"""Tenant leases against a real PostgreSQL: claims, renewals, takeover with a new epoch,
fenced commits, rebalancing on join/leave, and a terminated connection.

Two coordinators live in this one process under different replica names.  No background
thread runs: each test drives ``tick()`` itself, so "replica a stopped heartbeating" is simply
"a is not ticked" — no sleep races a thread.  Lease expiry is the database's clock (short TTL);
waits poll a condition with a generous timeout.  A fake monotonic clock shows the local side
of fencing: a replica frozen past its TTL refuses to commit before asking the database.
"""

from __future__ import annotations

import logging
import os
import time

import pytest

from td_graph_plugin.cluster import Coordinator
from td_graph_plugin.errors import LeaseLost
from td_graph_plugin.metrics import Metrics
from td_graph_plugin.state import Commit
from td_graph_plugin.state.postgres import PostgresStore

TENANTS = [f"t{i:02d}" for i in range(10)]
TTL = 20.0  # no lease expires during a test unless it asks for SHORT (a loaded CI machine is slow)
SHORT = 1.5


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store_for(pg_url):
    stores = []

    def make(replica: str) -> PostgresStore:
        s = PostgresStore(pg_url, replica=replica, retry_seconds=5)
        stores.append(s)
        return s

    make("setup")  # creates the schema
    yield make
    for s in stores:
        s.close()


@pytest.fixture
def coord(pg_url, store_for):
    made = []

    def make(replica: str, **kw) -> Coordinator:
        kw.setdefault("lease_ttl", TTL)
        kw.setdefault("metrics", Metrics())
        c = Coordinator(pg_url, replica, TENANTS, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop(release=False)


def settle(*coords: Coordinator, rounds: int = 12) -> int:
    """Tick every coordinator in turn until nothing changes for two rounds; returns the rounds."""
    quiet = 0
    for n in range(rounds):
        before = [c.epochs() for c in coords]
        for c in coords:
            c.tick()
        quiet = quiet + 1 if [c.epochs() for c in coords] == before else 0
        if quiet >= 2:
            return n
    raise AssertionError(f"no steady state after {rounds} rounds: {[sorted(c.epochs()) for c in coords]}")


def wait_for(cond, timeout: float = 20.0, tick=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def lease_row(pg_server, pg_url, tenant: str) -> tuple[str | None, int]:
    db = pg_url.rsplit("/", 1)[1]
    out = pg_server.psql(f"SELECT coalesce(owner, ''), epoch FROM td_graph.leases WHERE tenant = '{tenant}'", db)
    owner, epoch = out.split("|")
    return owner or None, int(epoch)


def test_alone_a_replica_claims_every_tenant_at_epoch_one(coord):
    a = coord("a")
    a.tick()
    assert a.owned() == set(TENANTS)
    assert set(a.epochs().values()) == {1}
    assert a.share() == 1.0
    f = a.fence_for("t00")
    assert f is not None and (f.owner, f.epoch) == ("a", 1)


def test_two_replicas_split_evenly_and_stay_put(coord):
    a, b = coord("a"), coord("b")
    a.tick()
    b.tick()
    settle(a, b)
    assert len(a.owned()) == 5 and len(b.owned()) == 5
    assert a.owned().isdisjoint(b.owned())
    assert a.share() == b.share() == 0.5
    before = (a.epochs(), b.epochs())
    for _ in range(5):
        a.tick()
        b.tick()
    assert (a.epochs(), b.epochs()) == before  # balanced: no lease moves, no epoch bumps


def test_a_silent_replicas_tenants_are_taken_over_after_the_ttl_with_a_new_epoch(coord, store_for, pg_server, pg_url, caplog):
    metrics_b = Metrics()
    # a's local clock stands still: only the database can tell it lost its tenants
    a, b = coord("a", lease_ttl=SHORT, clock=FakeClock()), coord("b", lease_ttl=SHORT, metrics=metrics_b)
    a.tick()
    b.tick()
    settle(a, b)
    a_had = a.epochs()
    # a stops ticking (frozen): within the TTL nobody may take its tenants
    b.tick()
    assert b.owned().isdisjoint(a_had)
    caplog.set_level(logging.INFO, logger="td_graph_plugin.cluster")
    started = time.monotonic()
    wait_for(lambda: set(a_had) <= b.owned(), tick=b.tick)
    assert time.monotonic() - started >= SHORT * 0.5  # not before the lease ran out
    for tenant, epoch in a_had.items():
        assert lease_row(pg_server, pg_url, tenant) == ("b", epoch + 1)
    assert metrics_b.lease_takeovers.labels("b")._value.get() == len(a_had)
    assert any("taken over from replica a" in r.getMessage() for r in caplog.records)

    # a's commit for a lost tenant raises LeaseLost and writes nothing, even while a's local
    # clock still believes the lease valid (only the database knows): the epoch decides
    store_a = store_for("a")
    store_a.set_fencing(a.fence_for)
    tenant = sorted(a_had)[0]
    assert a.fence_for(tenant) is not None  # a still believes it holds the lease
    with pytest.raises(LeaseLost) as lost_exc:
        store_a.commit(Commit(tenant, "audit_logs.sign_ins", {"after": "x"}))
    assert lost_exc.value.epoch == a_had[tenant]  # refused by the lease row, at a's old epoch
    assert store_a.cursor(tenant, "audit_logs.sign_ins") is None
    # b commits the same tenant fine
    store_b = store_for("b")
    store_b.set_fencing(b.fence_for)
    store_b.commit(Commit(tenant, "audit_logs.sign_ins", {"after": "y"}))
    assert store_b.cursor(tenant, "audit_logs.sign_ins") == {"after": "y"}

    # a wakes: its first renew finds the epochs changed and drops them; then rebalancing
    lost: list[str] = []
    a.on_lost = lost.append
    a.tick()
    assert sorted(lost) == sorted(a_had)
    assert a.owned() == set()
    settle(a, b)
    assert len(a.owned()) == 5 and len(b.owned()) == 5


def test_a_frozen_replica_refuses_to_commit_before_asking_the_database(coord, store_for):
    clock = FakeClock()
    a = coord("a", clock=clock)
    a.tick()
    store = store_for("a")
    store.set_fencing(a.fence_for)
    store.commit(Commit("t00", "audit_logs.sign_ins", {"after": "1"}))
    clock.now += TTL  # SIGSTOP for a TTL: the local lease clock ran out
    assert a.fence_for("t00") is None and not a.owns("t00")
    with pytest.raises(LeaseLost):
        store.commit(Commit("t00", "audit_logs.sign_ins", {"after": "2"}))
    assert store.cursor("t00", "audit_logs.sign_ins") == {"after": "1"}


def test_join_and_leave_rebalance_without_thrash(coord, pg_server, pg_url):
    a, b = coord("a"), coord("b")
    a.tick()
    settle(a)
    assert len(a.owned()) == 10
    b.tick()
    settle(a, b)
    assert (len(a.owned()), len(b.owned())) == (5, 5)
    c = coord("c")
    c.tick()
    settle(a, b, c)
    counts = sorted(len(x.owned()) for x in (a, b, c))
    assert counts == [3, 3, 4]
    epochs = sum(lease_row(pg_server, pg_url, t)[1] for t in TENANTS)
    # 10 first claims + 5 moved to b + 3 moved to c (at most one extra by rounding)
    assert epochs <= 10 + 5 + 4
    # c leaves cleanly: its leases are freed at once, the others take them (no takeover)
    c.stop(release=True)
    settle(a, b)
    assert sorted(len(x.owned()) for x in (a, b)) == [5, 5]


def test_a_terminated_connection_recovers_and_keeps_the_leases(coord, pg_server, pg_url, caplog):
    a = coord("a")
    a.tick()
    held = a.epochs()
    db = pg_url.rsplit("/", 1)[1]
    assert pg_server.terminate_connections(dbname=db, application_name="td-graph:a:leases") >= 1
    caplog.set_level(logging.WARNING, logger="td_graph_plugin.cluster")
    a.tick()  # fails on the dead connection; the leases stay valid locally for a while
    assert a.epochs() == held
    a.tick()  # reconnects and renews
    assert a.epochs() == held and a.owned() == set(TENANTS)
    assert any("cluster tick failed" in r.getMessage() for r in caplog.records)


def test_a_clean_stop_frees_the_leases_at_once(coord):
    metrics_b = Metrics()
    a, b = coord("a"), coord("b", metrics=metrics_b)
    a.tick()
    a.stop(release=True)
    b.tick()
    assert b.owned() == set(TENANTS)  # no wait for the TTL
    assert metrics_b.lease_takeovers.labels("b")._value.get() == 0  # a hand-over, not a takeover


def test_run_once_with_postgres_claims_its_share_collects_and_frees_the_leases(tmp_path, pg_server, pg_url):
    """``td-graph run --once`` as a replica: alone it holds every tenant for the pass, collects
    them, and frees the leases on exit (the next replica does not wait for the TTL)."""
    import yaml

    from td_graph_plugin.cli.demo import SIMULATOR_PACE
    from td_graph_plugin.simulator import GraphSimulator
    from td_graph_plugin.simulator.request_log import attach
    from tests.integration_support import read_records, td_graph

    with GraphSimulator(workdir=str(tmp_path / "sim")) as sim:
        log = attach(sim)
        tenants = [sim.add_tenant(profile="e5", seed=i, volumes={"alerts": 4}) for i in range(2)]
        out = tmp_path / "r1.ndjson"
        cfg = {
            "tenants": [
                {"name": f"t{i}", "tenant_id": t.tenant_id, "client_id": t.client_id,
                 "client_secret": f"${{S{i}}}", "login_endpoint": sim.base_url, "graph_endpoint": sim.base_url,
                 "ca_bundle": sim.ca_path}
                for i, t in enumerate(tenants)
            ],
            "sources": {"include": ["security.alerts_v2"]},
            "state": {"url": pg_url},
            "cluster": {"replica": "r1", "lease_ttl": "3s"},
            "output": {"type": "file", "path": str(out)},
            "throttling": {name: {"requests": 10000, "per": "10s"} for name in SIMULATOR_PACE},
        }
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = {**os.environ, "S0": tenants[0].client_secret, "S1": tenants[1].client_secret}
        res = td_graph("run", "-c", str(path), "--once", env=env, timeout=120)
        assert res.returncode == 0, res.stderr.decode()[-2000:]
        records = read_records(out)
        assert {r["tenant"] for r in records} == {"t0", "t1"}
        assert len(records) == sum(len(t.alerts) for t in tenants)
        db = pg_url.rsplit("/", 1)[1]
        rows = pg_server.psql("SELECT tenant, coalesce(owner, '-'), epoch FROM td_graph.leases ORDER BY tenant", db)
        assert rows.splitlines() == ["t0|-|1", "t1|-|1"]  # claimed once, freed on exit
        agents = {row.user_agent for row in log.rows()}
        assert agents and all(a.endswith("(replica r1)") for a in agents)


def test_status_shows_the_replica_holding_each_tenant(coord, tmp_path, pg_url):
    """``td-graph status`` (a separate process, read-only) names the lease holder per tenant."""
    import json

    import yaml

    from tests.integration_support import td_graph

    a, b = coord("a", lease_ttl=60), coord("b", lease_ttl=60)  # valid while the status process starts
    a.tick()
    b.tick()
    settle(a, b)
    cfg = {
        "tenants": [
            {"name": t, "tenant_id": f"0f0e0d0c-0b0a-4909-8807-0605040302{i:02d}",
             "client_id": "11111111-2222-4333-8444-555555555555", "client_secret": "not-a-real-secret-123"}
            for i, t in enumerate(TENANTS)
        ],
        "sources": {"include": ["security.alerts_v2"]},
        "state": {"url": pg_url},
        "cluster": {"replica": "status-reader", "lease_ttl": "3s"},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = td_graph("status", "-c", str(path), "--format", "json", timeout=60)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    rows = [r for r in json.loads(res.stdout) if r["source"] == "security.alerts_v2"]
    shown = {r["tenant"]: r["replica"] for r in rows}
    assert shown == {t: ("a" if t in a.owned() else "b") for t in TENANTS}
