"""Delta and snapshot modes: deltaLink kept whole, resync on 410, removals, replays, hashes."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from td_graph_plugin.collector import SourceRun, SyncSink
from td_graph_plugin.collector.inventory import collect_delta, collect_snapshot
from td_graph_plugin.config import SourceSettings, TenantConfig
from td_graph_plugin.errors import GraphBadRequest, GraphResyncRequired
from td_graph_plugin.metrics import Metrics
from td_graph_plugin.state import StateStore
from tests.fakes import FakePage, ListOutput, ScriptedClient

T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
TENANT = TenantConfig(name="contoso", tenant_id="00000000-0000-0000-0000-000000000001", client_id="11111111-1111-1111-1111-111111111111")
DELTA1 = "https://graph.test/v1.0/users/delta?$deltatoken=AAA"
DELTA2 = "https://graph.test/v1.0/users/delta?$deltatoken=BBB"


@pytest.fixture
def state(tmp_path):
    s = StateStore(str(tmp_path / "state.db"))
    yield s
    s.close()


def run_for(spec, client, state, out, now=T0, **settings):
    sink = SyncSink(out, state)
    sink.open()
    return SourceRun(tenant=TENANT, spec=spec, settings=SourceSettings(**settings), client=client, state=state,
                     sink=sink, metrics=Metrics(), stop=threading.Event(), now=lambda: now)


def user(i, name=None):
    return {"id": f"u{i}", "displayName": name or f"User {i}", "userPrincipalName": f"u{i}@contoso.test"}


def records(out):
    return [orjson.loads(line) for line in out.lines]


def test_delta_initial_incremental_removed_and_replay(catalogue, state):
    spec = catalogue["directory.users"]
    client = ScriptedClient([
        [FakePage([user(1), user(2)], next_link="https://graph.test/v1.0/users/delta?$skiptoken=p2"),
         FakePage([user(3)], delta_link=DELTA1)],
        [FakePage([user(2, "Renamed"), user(2, "Renamed"), user(1), {"id": "u3", "@removed": {"reason": "deleted"}}], delta_link=DELTA2)],
    ])
    out = ListOutput()
    collect_delta(run_for(spec, client, state, out))
    assert [r["id"] for r in records(out)] == ["u1", "u2", "u3"]
    url, params = client.calls[0]
    assert url.endswith("/v1.0/users/delta") and "$top" not in (params or {}), "user delta rejects $top"
    assert state.cursor("contoso", spec.name)["delta_link"] == DELTA1

    out.lines.clear()
    collect_delta(run_for(spec, client, state, out, now=T0 + timedelta(minutes=15)))
    assert client.calls[1] == (DELTA1, None), "the stored deltaLink is called whole, no params added"
    got = records(out)
    # u2 changed (emitted once despite the replay), u1 replayed unchanged (not emitted), u3 removed.
    assert [(r["id"], r.get("removed")) for r in got] == [("u2", None), ("u3", "deleted")]
    assert got[1]["data"] == {"id": "u3", "@removed": {"reason": "deleted"}}
    assert state.cursor("contoso", spec.name)["delta_link"] == DELTA2
    assert state.count("objects", "contoso", spec.name) == 2


def test_delta_410_triggers_one_full_resync_and_sweeps(catalogue, state):
    spec = catalogue["directory.users"]
    client = ScriptedClient([
        [FakePage([user(1), user(2)], delta_link=DELTA1)],
        GraphResyncRequired("Gone", status=410),
        [FakePage([user(1)], delta_link=DELTA2)],
    ])
    out = ListOutput()
    collect_delta(run_for(spec, client, state, out))
    out.lines.clear()
    collect_delta(run_for(spec, client, state, out, now=T0 + timedelta(minutes=15)))
    assert client.calls[1][0] == DELTA1 and client.calls[2][0].endswith("/users/delta")
    # u1 unchanged -> not emitted; u2 vanished during the outage -> a removal record.
    assert [(r["id"], r.get("removed")) for r in records(out)] == [("u2", "deleted")]
    assert state.cursor("contoso", spec.name)["delta_link"] == DELTA2


def test_delta_fresh_request_error_is_not_swallowed(catalogue, state):
    spec = catalogue["directory.users"]
    client = ScriptedClient([GraphBadRequest("bad", status=400)])
    with pytest.raises(GraphBadRequest):
        collect_delta(run_for(spec, client, state, ListOutput()))


def test_delta_resumes_from_next_link_after_crash(catalogue, state):
    spec = catalogue["directory.users"]
    client = ScriptedClient([
        [FakePage([user(1)], next_link="https://graph.test/next-2"), RuntimeError("killed")],
        [FakePage([user(2)], delta_link=DELTA1)],
    ])
    out = ListOutput()
    with pytest.raises(RuntimeError):
        collect_delta(run_for(spec, client, state, out))
    collect_delta(run_for(spec, client, state, out))
    assert client.calls[1] == ("https://graph.test/next-2", None)
    assert [r["id"] for r in records(out)] == ["u1", "u2"]


def test_delta_periodic_full_resync(catalogue, state):
    spec = catalogue["directory.users"]
    client = ScriptedClient([[FakePage([user(1)], delta_link=DELTA1)], [FakePage([user(1)], delta_link=DELTA2)]])
    out = ListOutput()
    collect_delta(run_for(spec, client, state, out))
    collect_delta(run_for(spec, client, state, out, now=T0 + timedelta(hours=25)))
    assert client.calls[1][0].endswith("/users/delta"), "full_resync (24h) elapsed: start afresh"
    assert len(out.lines) == 1, "unchanged objects are not re-emitted by a full resync"


def test_snapshot_emits_changes_and_removals(catalogue, state):
    spec = catalogue["governance.app_consent_requests"]
    a = {"id": "r1", "appDisplayName": "App", "pendingScopes": [{"displayName": "Mail.Read"}]}
    b = {"id": "r2", "appDisplayName": "Other", "pendingScopes": []}
    client = ScriptedClient([
        [FakePage([a, b])],
        [FakePage([dict(a, pendingScopes=[{"displayName": "Mail.Read"}, {"displayName": "Files.Read"}])])],
        [FakePage([dict(a, pendingScopes=[{"displayName": "Mail.Read"}, {"displayName": "Files.Read"}])])],
    ])
    out = ListOutput()
    collect_snapshot(run_for(spec, client, state, out))
    assert [r["id"] for r in records(out)] == ["r1", "r2"]
    out.lines.clear()
    collect_snapshot(run_for(spec, client, state, out))
    assert [(r["id"], r.get("removed")) for r in records(out)] == [("r1", None), ("r2", "deleted")]
    out.lines.clear()
    collect_snapshot(run_for(spec, client, state, out))
    assert out.lines == []


def test_snapshot_emit_unchanged_setting(catalogue, state):
    spec = catalogue["governance.app_consent_requests"]
    a = {"id": "r1", "pendingScopes": []}
    client = ScriptedClient([[FakePage([a])], [FakePage([a])]])
    out = ListOutput()
    collect_snapshot(run_for(spec, client, state, out, emit_unchanged=True))
    collect_snapshot(run_for(spec, client, state, out, emit_unchanged=True))
    assert len(out.lines) == 2
