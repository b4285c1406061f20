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


def _crash_after_write(spec, client, state, out, now=T0, record_filter=None):
    """Collect with a sink whose output accepts the page but whose commit never happens (kill -9
    between write and checkpoint); the lines are what a restarted run finds in the file's tail."""

    class Crash(Exception):
        pass

    class CrashingSink:
        def deliver(self, lines, commit, committed):
            out.write(lines)
            raise Crash

    run = SourceRun(tenant=TENANT, spec=spec, settings=SourceSettings(), client=client, state=state,
                    sink=CrashingSink(), metrics=Metrics(), stop=threading.Event(), now=lambda: now,
                    record_filter=record_filter)
    with pytest.raises(Crash):
        collect_delta(run)


def test_delta_removal_is_not_written_twice_after_a_crash(catalogue, state):
    """Issue 13 finding 5: the replayed page must not emit the adopted removal again."""
    from td_graph_plugin.collector.recovery import make_adopter
    from td_graph_plugin.config import parse_config
    from td_graph_plugin.plugins import create_plugin_manager, load_catalogue

    spec = catalogue["directory.users"]
    removal = {"id": "u3", "@removed": {"reason": "deleted"}}
    out = ListOutput()
    collect_delta(run_for(spec, ScriptedClient([[FakePage([user(1), user(3)], delta_link=DELTA1)]]), state, out))
    assert [r["id"] for r in records(out)] == ["u1", "u3"]
    # Round 2 is written, then the process dies before its checkpoint.
    tail = ListOutput()
    _crash_after_write(spec, ScriptedClient([[FakePage([removal], delta_link=DELTA2)]]), state, tail)
    assert [(r["id"], r.get("removed")) for r in records(tail)] == [("u3", "deleted")]
    # Restart: crash recovery adopts the tail, then the same round is read again.
    cfg = parse_config({"tenants": [{"name": "contoso", "tenant_id": TENANT.tenant_id, "client_id": TENANT.client_id,
                                     "client_secret": "x" * 30}]}, source_names=catalogue.names())
    make_adopter(cfg, load_catalogue(create_plugin_manager(load_entrypoints=False)))(state, tail.lines, ("list", 0))
    again = ListOutput()
    collect_delta(run_for(spec, ScriptedClient([[FakePage([removal], delta_link=DELTA2)]]), state, again))
    assert records(again) == [], "the removal reached the output once, before the crash"
    assert state.object_hashes("contoso", spec.name, ["u3"]) == {}
    # The object comes back later: it is emitted as new, not mistaken for the tombstone.
    back = ListOutput()
    collect_delta(run_for(spec, ScriptedClient([[FakePage([user(3)], delta_link=DELTA2)]]), state, back,
                          now=T0 + timedelta(minutes=5)))
    assert [r["id"] for r in records(back)] == ["u3"]


def test_a_page_that_removes_then_re_adds_an_id_ends_with_it_present(catalogue, state):
    """Issue 13 (low): order within a page decides; remove-then-add leaves the object known."""
    spec = catalogue["directory.users"]
    out = ListOutput()
    collect_delta(run_for(spec, ScriptedClient([[FakePage([user(1), user(2)], delta_link=DELTA1)]]), state, out))
    page = [{"id": "u2", "@removed": {"reason": "changed"}}, user(2, "Back"), user(1, "Gone"), {"id": "u1", "@removed": {"reason": "deleted"}}]
    out2 = ListOutput()
    collect_delta(run_for(spec, ScriptedClient([[FakePage(page, delta_link=DELTA2)]]), state, out2,
                          now=T0 + timedelta(minutes=5)))
    assert [(r["id"], r.get("removed")) for r in records(out2)] == [("u2", "changed"), ("u2", None), ("u1", None), ("u1", "deleted")]
    assert set(state.object_hashes("contoso", spec.name, ["u1", "u2"])) == {"u2"}


def test_a_deeply_nested_object_is_skipped_and_counted(catalogue, state):
    """Issue 13 (low): hashing an object nested too deeply is a bad item, the rest goes on."""
    spec = catalogue["directory.users"]
    deep = user(2)
    for _ in range(5000):
        deep = {"x": deep}
    deep = {"id": "u2", "nested": deep}
    out = ListOutput()
    run = run_for(spec, ScriptedClient([[FakePage([user(1), deep, user(3)], delta_link=DELTA1)]]), state, out)
    collect_delta(run)
    assert [r["id"] for r in records(out)] == ["u1", "u3"]
    assert run.stats.skipped_bad == 1
    assert state.cursor("contoso", spec.name)["delta_link"] == DELTA1


def test_a_filter_that_edits_data_does_not_break_crash_recovery(catalogue, state):
    """Issue 13 (low): recovery hashes the data as written; the collector must store the hash of
    that same data, or every adopted object is written again after the restart."""
    from td_graph_plugin.collector.recovery import make_adopter
    from td_graph_plugin.config import parse_config
    from td_graph_plugin.plugins import create_plugin_manager, load_catalogue

    def redact(tenant, source, record):
        record["data"].pop("userPrincipalName", None)
        return True

    spec = catalogue["directory.users"]
    tail = ListOutput()
    _crash_after_write(spec, ScriptedClient([[FakePage([user(1), user(2)], delta_link=DELTA1)]]), state, tail,
                       record_filter=redact)
    assert [r["data"] for r in records(tail)][0] == {"id": "u1", "displayName": "User 1"}
    cfg = parse_config({"tenants": [{"name": "contoso", "tenant_id": TENANT.tenant_id, "client_id": TENANT.client_id,
                                     "client_secret": "x" * 30}]}, source_names=catalogue.names())
    make_adopter(cfg, load_catalogue(create_plugin_manager(load_entrypoints=False)))(state, tail.lines, ("list", 0))
    again = ListOutput()
    sink = SyncSink(again, state)
    sink.open()
    run = SourceRun(tenant=TENANT, spec=spec, settings=SourceSettings(), client=ScriptedClient(
        [[FakePage([user(1), user(2)], delta_link=DELTA1)]]), state=state, sink=sink, metrics=Metrics(),
        stop=threading.Event(), now=lambda: T0, record_filter=redact)
    collect_delta(run)
    assert records(again) == [], "both users reached the output before the crash"


# --- issue 12 item 5: a sweep needs a plausible full read -----------------------------------

def refused(run):
    return run.metrics.registry.get_sample_value(
        "td_graph_errors_total", {"tenant": "contoso", "source": run.spec.name, "kind": "sweep_refused"}) or 0.0


def consent(i):
    return {"id": f"r{i}", "appDisplayName": f"App {i}", "pendingScopes": []}


def removed_ids(out):
    return sorted(r["id"] for r in records(out) if r.get("removed"))


@pytest.mark.parametrize("bad_read", [
    pytest.param(lambda: [FakePage([])], id="empty"),
    pytest.param(lambda: [FakePage([{"name": "no id"}, {"id": 7}, "text"])], id="only-invalid"),
    pytest.param(lambda: [FakePage([consent(1), {"id": 7}, {"id": None}, {"x": 1}])], id="mostly-invalid"),
    pytest.param(lambda: [FakePage([consent(1), consent(2), consent(3)], header_ok=False)], id="csv-header-changed"),
])
def test_an_implausible_full_read_is_not_swept(catalogue, state, bad_read):
    spec = catalogue["governance.app_consent_requests"]
    client = ScriptedClient([[FakePage([consent(1), consent(2), consent(3)])], bad_read(), [FakePage([consent(1)])]])
    out = ListOutput()
    collect_snapshot(run_for(spec, client, state, out))
    out.lines.clear()
    second = run_for(spec, client, state, out)
    collect_snapshot(second)
    assert removed_ids(out) == [], "an implausible read must not delete what it did not return"
    assert refused(second) == 1.0
    out.lines.clear()
    third = run_for(spec, client, state, out)
    collect_snapshot(third)  # a plausible read: 1 of 3 remains (not > 10 objects, so no drop guard)
    assert removed_ids(out) == ["r2", "r3"]
    assert refused(third) == 0.0


def test_a_sudden_drop_is_refused_once_then_swept_when_the_next_read_confirms_it(catalogue, state):
    spec = catalogue["governance.app_consent_requests"]
    everyone = [consent(i) for i in range(20)]
    few = [consent(i) for i in range(5)]  # 15 of 20 gone: > 50% and > 10 objects
    client = ScriptedClient([[FakePage(everyone)], [FakePage(few)], [FakePage(few)]])
    out = ListOutput()
    collect_snapshot(run_for(spec, client, state, out))
    out.lines.clear()
    second = run_for(spec, client, state, out)
    collect_snapshot(second)
    assert removed_ids(out) == [] and refused(second) == 1.0
    out.lines.clear()
    collect_snapshot(run_for(spec, client, state, out))
    assert removed_ids(out) == sorted(f"r{i}" for i in range(5, 20))


def test_a_small_drop_is_swept_at_once(catalogue, state):
    spec = catalogue["governance.app_consent_requests"]
    client = ScriptedClient([[FakePage([consent(i) for i in range(20)])], [FakePage([consent(i) for i in range(12)])]])
    out = ListOutput()
    collect_snapshot(run_for(spec, client, state, out))
    out.lines.clear()
    run = run_for(spec, client, state, out)
    collect_snapshot(run)
    assert removed_ids(out) == sorted(f"r{i}" for i in range(12, 20)) and refused(run) == 0.0


def test_removals_and_objects_without_a_timestamp_get_the_observed_time(catalogue, state):
    """Issue 12: event_time is never null; inventory without a timestamp gets collected_at."""
    spec = catalogue["directory.users"]
    client = ScriptedClient([[FakePage([user(1), {"id": "u2", "@removed": {"reason": "deleted"}}], delta_link=DELTA1)]])
    out = ListOutput()
    collect_delta(run_for(spec, client, state, out, now=T0.replace(microsecond=250000)))
    assert [(r["id"], r["event_time"]) for r in records(out)] == [
        ("u1", "2026-11-26T12:00:00.250Z"), ("u2", "2026-11-26T12:00:00.250Z")]


def test_a_report_rows_event_time_is_its_refresh_date(catalogue, state):
    """Issue 12: report rows carry a date-only ``Report Refresh Date``: midnight UTC of that day."""
    import dataclasses

    spec = dataclasses.replace(catalogue["reports.office365_active_users"], pager=None)  # rows as pages
    row = {"Report Refresh Date": "2026-11-25", "User Principal Name": "a@contoso.test", "Is Deleted": "False",
           "Deleted Date": "", spec.id_field: "row-a"}
    client = ScriptedClient([[FakePage([row])]])
    out = ListOutput()
    collect_snapshot(run_for(spec, client, state, out))
    assert [r["event_time"] for r in records(out)] == ["2026-11-25T00:00:00Z"]
