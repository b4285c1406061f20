"""``td-graph state migrate``: a single-node SQLite collector moves to PostgreSQL and resumes
where it stopped — no record twice, none lost (issue 15 item 5). Real processes, real
simulator, real PostgreSQL server."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from td_graph_plugin.simulator import GraphSimulator
from td_graph_plugin.state import Commit, StateStore
from td_graph_plugin.state.postgres import PostgresStore
from td_graph_plugin.timeutil import utcnow
from tests.integration_support import env_for, read_records, td_graph, write_config

SOURCES = ["audit_logs.sign_ins", "audit_logs.directory_audits", "security.alerts_v2", "directory.users"]


@pytest.fixture
def sim(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as s:
        yield s


def _ids(records, source):
    return [r["id"] for r in records if r.get("source") == source]


def test_migrate_then_run_on_postgres_loses_nothing_and_duplicates_nothing(sim, tmp_path, pg_server, pg_url):
    tenant = sim.add_tenant(profile="e5")
    out = tmp_path / "records.ndjson"
    cfg = write_config(sim, tenant, tmp_path, output=str(out), sources=SOURCES)
    first = td_graph("run", "-c", cfg, "--once", env=env_for(tenant))
    assert first.returncode == 0, first.stderr.decode()
    before = read_records(out)
    assert _ids(before, "audit_logs.sign_ins"), "the first run collected something"
    # an isolation audit record, in the isolation store beside the state
    iso = StateStore(str(tmp_path / "state-isolation.db"), exclusive=False)
    iso.add_isolation("demo", "u-1", "isolate", {"id": "audit-1", "reason": "phish"})
    iso.close()
    sqlite_shapes = StateStore(str(tmp_path / "state.db"))
    sqlite_shapes.set_query_shape("demo", "audit_logs.sign_ins", "default", "migrated")
    sqlite_shapes.close()

    # the tenant lives on while the operator migrates
    now = utcnow()
    new = tenant.add_sign_ins(4, start=now - timedelta(minutes=5), end=now - timedelta(minutes=3))
    late = tenant.add_sign_ins(1, start=now - timedelta(minutes=12), end=now - timedelta(minutes=11))
    audits = tenant.add_directory_audits(2, start=now - timedelta(minutes=5), end=now - timedelta(minutes=3))
    tenant.change_users(2)

    moved = td_graph("state", "migrate", "--from", str(tmp_path / "state.db"), "--to", pg_url, "--replica", "r1")
    assert moved.returncode == 0, moved.stderr.decode()
    text = moved.stdout.decode()
    assert "checkpoints" in text and "dedup keys" in text and "isolation records" in text
    counts = {line.rsplit(None, 1)[0].strip(): int(line.rsplit(None, 1)[1]) for line in text.splitlines()[1:]
              if line.strip() and line.strip()[-1].isdigit()}
    assert counts["checkpoints"] >= len(SOURCES) and counts["dedup keys"] > 0
    assert counts["object hashes"] >= len(tenant.users) - 2 and counts["isolation records"] == 1
    assert counts["output positions"] == 1 and counts["query shapes"] == 1
    assert counts["cached documents"] >= 1, "the tenant's discovery came along"

    # the same collector, now a replica of a cluster on PostgreSQL, writing the same file
    data = yaml.safe_load(open(cfg))
    data["state"] = {"url": pg_url}
    data["cluster"] = {"replica": "r1", "lease_ttl": "10s"}
    with open(cfg, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    second = td_graph("run", "-c", cfg, "--once", env=env_for(tenant))
    assert second.returncode == 0, second.stderr.decode()

    after = read_records(out)
    assert after[: len(before)] == before, "the file was appended to, never rewritten"
    added = after[len(before):]
    # the isolation record stored after the SQLite run came along and the PostgreSQL replica's
    # feed emitted it (as stored: this test wrote a bare record), once
    assert [r["id"] for r in added if r.get("id") == "audit-1"] == ["audit-1"]
    assert sorted(_ids(added, "audit_logs.sign_ins")) == sorted(s["id"] for s in new + late)
    assert sorted(_ids(added, "audit_logs.directory_audits")) == sorted(a["id"] for a in audits)
    assert len(_ids(added, "directory.users")) == 2, "only the changed users: the hashes came along"
    assert not _ids(added, "security.alerts_v2"), "nothing changed there"
    for source in ("audit_logs.sign_ins", "audit_logs.directory_audits", "security.alerts_v2"):
        ids = _ids(after, source)
        assert len(ids) == len(set(ids)), f"{source}: a record twice"
    assert set(_ids(after, "audit_logs.sign_ins")) == {s["id"] for s in tenant.sign_ins}, "nothing lost"

    store = PostgresStore(pg_url, replica="check", exclusive=False)
    try:
        assert [r["id"] for _, r in store.isolation_rows("demo", 0)] == ["audit-1"]
        assert store.query_shape("demo", "audit_logs.sign_ins") == "default"
        assert '"permissions_from":"graph"' in store.cached("demo", "discovery")[1]
    finally:
        store.close()


def _sqlite_state(tmp_path) -> str:
    path = str(tmp_path / "state.db")
    s = StateStore(path)
    s.commit(Commit("t", "src", cursor={"n": 1}, seen=[("a", 1.0)]), output=("file:/o", 5, "1:1"))
    s.close()
    return path


def test_a_running_collector_refuses_the_migration(tmp_path, pg_url):
    path = _sqlite_state(tmp_path)
    holder = StateStore(path)  # the collector
    try:
        r = td_graph("state", "migrate", "--from", path, "--to", pg_url)
    finally:
        holder.close()
    assert r.returncode == 1 and b"in use by another td-graph process" in r.stderr


def test_a_non_empty_target_is_refused_unless_forced(tmp_path, pg_server, pg_url):
    path = _sqlite_state(tmp_path)
    assert td_graph("state", "migrate", "--from", path, "--to", pg_url).returncode == 0
    again = td_graph("state", "migrate", "--from", path, "--to", pg_url)
    assert again.returncode == 1 and b"already holds td-graph state" in again.stderr and b"--force" in again.stderr
    forced = td_graph("state", "migrate", "--from", path, "--to", pg_url, "--force", "--replica", "r9")
    assert forced.returncode == 0, forced.stderr.decode()
    dbname = pg_url.rsplit("/", 1)[1]
    assert pg_server.psql("SELECT count(*) FROM td_graph.checkpoints", dbname) == "1"
    assert pg_server.psql("SELECT replica || ' ' || position FROM td_graph.outputs", dbname) == "r9 5"
    s = PostgresStore(pg_url, replica="x")
    try:
        assert s.seen_keys("t", "src", [("a", 1.0)]) == {"a"}
        s.commit(Commit("t", "src2", cursor={}, seen=[("b", 2.0)]))  # new streams after copied ids
    finally:
        s.close()


def test_an_unreachable_target_is_exit_1_without_password(tmp_path):
    path = _sqlite_state(tmp_path)
    r = td_graph("state", "migrate", "--from", path, "--to", "postgresql://u:topsecretpw@127.0.0.1:1/db")
    assert r.returncode == 1 and b"127.0.0.1:1" in r.stderr and b"topsecretpw" not in r.stderr + r.stdout


def test_usage_errors_are_exit_2(tmp_path):
    path = _sqlite_state(tmp_path)
    assert td_graph("state", "migrate", "--from", path).returncode == 2
    assert td_graph("state", "migrate", "--from", path, "--to", "mysql://x/y").returncode == 2


