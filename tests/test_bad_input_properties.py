"""Issue 8 bad input: hypothesis over config files and Graph pages. A clear error or a counted,
logged skip of the single bad item — never a crash, never the rest of the page lost."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from td_graph_plugin.collector import SourceRun, SyncSink
from td_graph_plugin.collector.inventory import collect_snapshot
from td_graph_plugin.collector.window import collect_window
from td_graph_plugin.graph.serverclock import ServerClock
from td_graph_plugin.config import SourceSettings, TenantConfig, parse_config
from td_graph_plugin.errors import ConfigError
from td_graph_plugin.metrics import Metrics
from td_graph_plugin.plugins import create_plugin_manager, load_catalogue
from td_graph_plugin.state import StateStore
from td_graph_plugin.timeutil import parse_time
from tests.fakes import FakePage, ListOutput

CATALOGUE = load_catalogue(create_plugin_manager(load_entrypoints=False))
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
TENANT = TenantConfig(name="t", tenant_id="00000000-0000-0000-0000-000000000001", client_id="11111111-1111-1111-1111-111111111111")

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=10), c, max_size=4)), max_leaves=12)
KEYS = ["tenants", "sources", "state", "output", "metrics", "isolation", "hooks_dir", "http", "engine", "logging",
        "throttling", "name", "tenant_id", "client_id", "client_secret", "cloud", "include", "settings", "type", "path",
        "interval", "lookback", "listen", "bogus"]
config_like = st.recursive(
    scalars,
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.sampled_from(KEYS), c, max_size=5)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_like)
def test_any_config_structure_is_valid_or_a_config_error(data):
    try:
        parse_config(data, file="fuzz.yaml", env={}, source_names=CATALOGUE.names())
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_valid_or_a_config_error(tmp_path_factory, text):
    from td_graph_plugin.config import load_config

    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(str(path), env={})
    except ConfigError as exc:
        assert str(path) in str(exc)


timestamps = st.one_of(
    st.datetimes(min_value=datetime(2026, 11, 25, 12, 30), max_value=datetime(2026, 11, 26, 11, 50)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    st.text(max_size=30), st.none(), st.integers(), st.just("2026-11-26T10:00:00Z)"), st.just("2026-13-45T99:00:00Z"),
)
ids = st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=40), st.none(), st.integers(), st.just(""))
weird_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=50)
items = st.one_of(
    st.fixed_dictionaries({"id": ids, "createdDateTime": timestamps}, optional={"userPrincipalName": weird_text, "blob": st.just("x" * 200_000), "nested": json_values, "big": st.integers(min_value=2**64)}),
    json_values,
)


def _run(spec, pages, tmp_path, mode="window"):
    import tempfile

    # A fresh state per example: hypothesis reuses the function-scoped tmp_path.
    state = StateStore(tempfile.mkdtemp(dir=tmp_path) + "/s.db")
    out = ListOutput()
    sink = SyncSink(out, state)
    sink.open()

    class Client:
        server_clock = ServerClock()  # no Date header seen

        def url(self, version, path):
            return "https://graph.test" + path

        def pages(self, url, **kw):
            return iter([FakePage(list(p), next_link="n" if i < len(pages) - 1 else None) for i, p in enumerate(pages)])

    run = SourceRun(tenant=TENANT, spec=spec, settings=SourceSettings(window_chunk=None), client=Client(), state=state, sink=sink,
                    metrics=Metrics(), stop=threading.Event(), now=lambda: T0)
    try:
        (collect_window if mode == "window" else collect_snapshot)(run)
    finally:
        state.close()
    return run, [orjson.loads(line) for line in out.lines]


def _one_time_per_id(pages):
    """An event's id and its time go together in Graph (an audit event or sign-in is immutable),
    and the window mode keys what it emitted by (id, event time) so that each page is one range
    read. A repeated id therefore repeats its first occurrence's time here (malformed or not);
    the same id under two different times is two events to the collector."""
    first: dict = {}
    out = []
    for page in pages:
        fixed = []
        for item in page:
            if isinstance(item, dict) and isinstance(item.get("id"), str) and "createdDateTime" in item:
                item = dict(item, createdDateTime=first.setdefault(item["id"], item["createdDateTime"]))
            fixed.append(item)
        out.append(fixed)
    return out


def _valid(item):
    return isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"] != ""


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(items, max_size=6), min_size=1, max_size=3))
def test_window_pages_with_bad_items(tmp_path, pages):
    spec = CATALOGUE["audit_logs.directory_audits"].__class__(
        **{**{f: getattr(CATALOGUE["audit_logs.sign_ins"], f) for f in ("name", "path", "mode", "permissions", "time_field", "filter_ops")}, "window_chunk": "2d"}
    )
    pages = _one_time_per_id(pages)
    run, records = _run(spec, pages, tmp_path)
    flat = [i for p in pages for i in p]
    # The fake returns the same pages for every window; one window (2d chunk) here.
    expected = {i["id"] for i in flat if _valid(i)}
    assert {r["id"] for r in records} == expected
    assert len(records) == len(expected), "an id appearing twice is emitted once"
    assert run.stats.skipped_bad == sum(1 for i in flat if not _valid(i))
    for r in records:
        # The contract: event_time is never null; without a usable time it is when td-graph saw
        # the record (the fake clock T0, written out).
        assert isinstance(r["event_time"], str) and r["event_time"].endswith("Z")
        if parse_time(r["data"].get("createdDateTime")) is None:
            assert r["event_time"] == "2026-11-26T12:00:00Z"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(items, max_size=6), min_size=1, max_size=3))
def test_snapshot_pages_with_bad_items(tmp_path, pages):
    run, records = _run(CATALOGUE["governance.app_consent_requests"], pages, tmp_path, mode="snapshot")
    flat = [i for p in pages for i in p]
    assert {r["id"] for r in records} == {i["id"] for i in flat if _valid(i)}
    assert run.stats.skipped_bad == sum(1 for i in flat if not _valid(i))
