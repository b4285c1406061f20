"""Issue 13 (low): a page holding one item nested deeper than any decoder accepts must cost that
item (a bad item, counted), not the page on every poll."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import orjson
import pytest

from td_graph_plugin.collector import SourceRun, SyncSink
from td_graph_plugin.collector.window import collect_window
from td_graph_plugin.config import SourceSettings, TenantConfig
from td_graph_plugin.graph.jsonbody import loads_page
from td_graph_plugin.metrics import Metrics
from td_graph_plugin.state import StateStore
from tests.fakes import FakePage, FakeWindowClient, ListOutput

DEEP = "[" * 2000 + "]" * 2000
BODY = (
    '{"@odata.context":"x","value":[{"id":"a","createdDateTime":"2026-11-26T11:00:00Z","s":"q\\"[,]"},'
    ' {"id":"b","createdDateTime":"2026-11-26T11:01:00Z","d":' + DEEP + '} ,'
    '{"id":"c","createdDateTime":"2026-11-26T11:02:00Z"}],"@odata.nextLink":"https://g/next"}'
).encode()


def test_orjson_alone_refuses_the_whole_page():
    """Why the split exists: the page as a whole is beyond orjson's 1024 levels."""
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(BODY)


def test_the_page_is_kept_and_only_the_deep_item_is_lost():
    page = loads_page(BODY)
    assert page["@odata.nextLink"] == "https://g/next" and page["@odata.context"] == "x"
    assert page["value"] == [
        {"id": "a", "createdDateTime": "2026-11-26T11:00:00Z", "s": 'q"[,]'},
        None,
        {"id": "c", "createdDateTime": "2026-11-26T11:02:00Z"},
    ]


def test_scalars_and_empty_arrays_split_too():
    assert loads_page(b'{"value":[]}') == {"value": []}
    deep = b'{"value":[1, "s", null, true, ' + DEEP.encode() + b'], "k": 2}'
    assert loads_page(deep) == {"value": [1, "s", None, True, None], "k": 2}


def test_other_malformed_bodies_still_fail():
    with pytest.raises(orjson.JSONDecodeError):
        loads_page(b'{"value": [1, 2')


def test_the_collector_counts_the_lost_item_and_goes_on(tmp_path, catalogue):
    spec = catalogue["audit_logs.sign_ins"]
    state = StateStore(str(tmp_path / "s.db"))
    out = ListOutput()
    sink = SyncSink(out, state)
    sink.open()
    client = FakeWindowClient([])
    client.pages = lambda url, **kw: iter([FakePage(loads_page(BODY)["value"])])
    now = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    run = SourceRun(tenant=TenantConfig(name="t", tenant_id="00000000-0000-0000-0000-000000000001", client_id="c"),
                    spec=spec, settings=SourceSettings(), client=client, state=state, sink=sink, metrics=Metrics(),
                    stop=threading.Event(), now=lambda: now)
    collect_window(run)
    assert sorted(orjson.loads(line)["id"] for line in out.lines) == ["a", "c"]
    assert run.stats.skipped_bad == 1
    state.close()
