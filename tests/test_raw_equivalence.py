"""Issue 16: the raw pass-through path writes what the dict path writes.

The property proven (graph/rawitem.py explains the choice), for every page:

* both paths accept or refuse the page alike (the same exception type when refused);
* the page's own keys, the number of items and every field a collector reads per item
  (id, time fields, ``@removed``) are equal, and each item materialises to the dict the dict
  path holds;
* each record line is **byte-identical** to the dict path's whenever the item's bytes are in
  orjson's canonical form (``orjson.dumps(orjson.loads(b)) == b``: compact, as Graph sends),
  and otherwise its JSON value is identical (``orjson.loads`` of both lines: whitespace,
  ``\\u`` escapes, ``1e+16``, integers beyond 64 bits, repeated keys are spelled as received);
* the one exception: an item the dict path decoded but could not encode (nested beyond
  orjson's 255 levels *and* the standard library's recursion limit) is dropped there as a bad
  item, and written as received by the raw path (its ``data`` parses to that same dict).

Pages: every collection page in ``cassettes/**`` (as recorded, and compacted the way Graph
sends it), the simulator's sign-ins, and hypothesis-generated pages with unicode escapes, big
integers, non-finite literals, repeated keys, deep nesting, lone surrogates and bad UTF-8.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from td_graph_plugin.collector import SourceRun, SyncSink
from td_graph_plugin.collector.context import make_record
from td_graph_plugin.collector.encoding import encode_record
from td_graph_plugin.collector.window import collect_window
from td_graph_plugin.config import SourceSettings, TenantConfig
from td_graph_plugin.graph.jsonbody import RAW_FIELDS, loads_page
from td_graph_plugin.graph.paging import decode_page
from td_graph_plugin.graph.rawitem import RawItem
from td_graph_plugin.graph.serverclock import ServerClock
from td_graph_plugin.metrics import Metrics
from td_graph_plugin.plugins import create_plugin_manager, load_catalogue
from td_graph_plugin.state import StateStore
from tests.fakes import ListOutput

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("@removed", "createdDateTime", "id", "lastUpdateDateTime")
TENANT = TenantConfig(name="t", tenant_id="00000000-0000-0000-0000-000000000001", client_id="c")


def _decode(body: bytes, fields: tuple[str, ...] | None) -> tuple[str, Any]:
    token = RAW_FIELDS.set(fields)
    try:
        return "ok", loads_page(body)
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return "error", type(exc)
    finally:
        RAW_FIELDS.reset(token)


def _line(item: Any) -> bytes | None:
    """The record line SourceRun.deliver writes for ``item`` (None: dropped as a bad item)."""
    record = make_record(TENANT, "s", "x", "2026-11-26T12:00:00Z", "2026-11-26T12:00:01.000Z", item)
    try:
        return encode_record(record)
    except RecursionError:
        return None


def _canonical(raw: bytes) -> bool:
    try:
        return orjson.dumps(orjson.loads(raw)) == raw
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return False


def check_equivalent(body: bytes) -> tuple[int, int]:
    """Assert the property for one page; (items byte-identical, items value-identical only)."""
    d_kind, d_page = _decode(body, None)
    r_kind, r_page = _decode(body, FIELDS)
    assert d_kind == r_kind, (d_kind, r_kind)
    if d_kind == "error":
        assert d_page is r_page
        return 0, 0
    assert isinstance(d_page, dict) and isinstance(r_page, dict)
    assert {k: v for k, v in d_page.items() if k != "value"} == {k: v for k, v in r_page.items() if k != "value"}
    d_items, r_items = d_page.get("value"), r_page.get("value")
    if not isinstance(d_items, list):
        assert d_items == r_items
        return 0, 0
    assert isinstance(r_items, list) and len(d_items) == len(r_items)
    same = value_only = 0
    for d_item, r_item in zip(d_items, r_items):
        if isinstance(d_item, dict):
            for f in FIELDS:
                assert (f in r_item) == (f in d_item)
                assert r_item.get(f) == d_item.get(f)
        d_line, r_line = _line(d_item), _line(r_item)
        if d_line is None and isinstance(r_item, RawItem):  # beyond every encoder: raw keeps it as sent
            assert r_line is not None and orjson.loads(r_line)["data"] == d_item
            value_only += 1
        elif d_line is None:
            assert r_line is None
        elif isinstance(r_item, RawItem) and not _canonical(bytes(r_item.raw)):
            assert orjson.loads(r_line) == orjson.loads(d_line)
            value_only += 1
        else:
            assert r_line == d_line
            same += 1
        assert (r_item.materialise() if isinstance(r_item, RawItem) else r_item) == d_item
    return same, value_only


# --- cassettes ------------------------------------------------------------------------------
def _cassette_pages() -> list[tuple[str, bytes]]:
    pages = []
    for path in sorted((ROOT / "cassettes").rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for n, interaction in enumerate(doc.get("interactions") or []):
            body = ((interaction.get("response") or {}).get("body") or {}).get("string")
            if isinstance(body, str):
                body = body.encode()
            if not body:
                continue
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                continue
            if isinstance(data, dict) and isinstance(data.get("value"), list):
                pages.append((f"{path.relative_to(ROOT)}#{n}", body))
    return pages


CASSETTE_PAGES = _cassette_pages()


def test_the_cassettes_hold_collection_pages():
    assert len(CASSETTE_PAGES) >= 40


@pytest.mark.parametrize("name, body", CASSETTE_PAGES, ids=[n for n, _ in CASSETTE_PAGES])
def test_every_cassette_page_as_recorded_and_as_graph_sends_it(name, body):
    check_equivalent(body)  # as recorded: pretty-printed (line feeds), so the dict path's own output
    compact = msgspec.json.format(body, indent=-1)  # Graph's compact form
    same, value_only = check_equivalent(compact)
    assert value_only == 0, f"{name}: {value_only} item(s) not in canonical form"
    assert same == len(orjson.loads(body)["value"])


def test_compact_pages_take_the_raw_path():
    """The property is not vacuous: compact cassette pages are decoded into RawItems."""
    raw_items = 0
    for _, body in CASSETTE_PAGES:
        kind, page = _decode(msgspec.json.format(body, indent=-1), FIELDS)
        raw_items += sum(isinstance(i, RawItem) for i in page["value"])
    assert raw_items >= 40


# --- hypothesis pages ------------------------------------------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # beyond 64 bits: orjson reads a float
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),  # any unicode, astral included (\\ud83d\\ude00 pairs when escaped)
)
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=6), c, max_size=3)),
                      max_leaves=10)
times = st.one_of(
    st.sampled_from(["2026-11-26T10:00:00Z", "2026-11-26T10:00:00.1234567Z", "2026-11-26T10:00:00.123Z",
                     "2026-11-26T10:00:00+00:00", "bad", ""]),
    st.none(),
)


@st.composite
def items(draw: Any) -> bytes:
    obj: dict[str, Any] = {"id": draw(st.one_of(st.text(min_size=1, max_size=8), st.integers(), st.none()))}
    ts = draw(times)
    if ts is not None:
        obj["createdDateTime"] = ts
    obj.update(draw(st.dictionaries(st.text(max_size=6), values, max_size=4)))
    if draw(st.booleans()):
        obj["@removed"] = {"reason": draw(st.sampled_from(["changed", "deleted"]))}
    spelling = draw(st.sampled_from(["orjson", "ascii", "spaced", "indent", "dup", "nonfinite", "deep",
                                     "surrogate", "badutf8", "scalar", "big"]))
    if spelling == "orjson":
        try:
            return orjson.dumps(obj)
        except TypeError:  # an integer beyond 64 bits
            spelling = "ascii"
    if spelling == "ascii":
        return json.dumps(obj, separators=(",", ":")).encode()  # \\uXXXX escapes, 1e+16
    if spelling == "spaced":
        return json.dumps(obj, ensure_ascii=False, separators=(", ", ": ")).encode()
    if spelling == "indent":
        return json.dumps(obj, ensure_ascii=False, indent=1).encode()
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    if spelling == "dup":  # a repeated key, as Graph never sends but JSON allows
        key = json.dumps(draw(st.sampled_from(["id", "createdDateTime", "x"]))).encode()
        return body[:-1] + (b"," if len(body) > 2 else b"") + key + b":" + json.dumps(draw(scalars)).encode() + b"}"
    if spelling == "nonfinite":  # JSON has no NaN; 1e400 overflows a double
        return body[:-1] + b',"n":' + draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999"])) + b"}"
    if spelling == "deep":
        depth = draw(st.sampled_from([200, 990, 1020, 1030, 3000]))
        return body[:-1] + b',"d":' + b"[" * depth + b"]" * depth + b"}"
    if spelling == "surrogate":
        return body[:-1] + b',"s":"\\ud800"}'
    if spelling == "badutf8":
        return body[:-1] + b',"s":"\xff\xfe"}'
    if spelling == "scalar":
        return json.dumps(draw(scalars)).encode()
    return body[:-1] + b',"b":' + str(draw(st.integers(min_value=2**64, max_value=2**200))).encode() + b"}"


@st.composite
def pages(draw: Any) -> bytes:
    parts = draw(st.lists(items(), max_size=5))
    extra = draw(st.sampled_from([b"", b',"@odata.nextLink":"https://g/n"', b',"@odata.deltaLink":"https://g/d"',
                                  b',"@odata.count":3', b',"other":{"a":[1,2]}']))
    return b'{"@odata.context":"c","value":[' + b",".join(parts) + b"]" + extra + b"}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages())
def test_generated_pages(body):
    check_equivalent(body)


def test_a_canonical_page_is_byte_identical_item_for_item():
    body = b'{"value":[' + b",".join(orjson.dumps({"id": f"i{n}", "createdDateTime": "2026-11-26T10:00:00Z",
                                                   "u": "\u00e9\U0001f600\n\"\\", "f": 0.1 * n, "i": -(2**63)})
                                      for n in range(50)) + b"]}"
    assert check_equivalent(body) == (50, 0)


# --- end to end: the window collector writes the same lines either way ------------------------
class _BodyClient:
    """Serves fixed page bodies, decoded like GraphClient decodes them (loads_page)."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = bodies
        self.server_clock = ServerClock()
        self.raw_items = 0

    def url(self, version: str, path: str) -> str:
        return f"https://graph.test/{version}{path}"

    def pages(self, url, **kw):
        for body in self.bodies:
            page = decode_page(loads_page(body), status=200, path="/", request_id=None)
            self.raw_items += sum(isinstance(i, RawItem) for i in page.items)
            yield page


def _collect(tmp_path: Path, bodies: list[bytes], raw: bool, name: str, record_filter=None,
             source: str = "audit_logs.sign_ins") -> list[bytes]:
    catalogue = load_catalogue(create_plugin_manager(load_entrypoints=False))
    spec = catalogue[source]
    state = StateStore(str(tmp_path / f"{name}.db"))
    out = ListOutput()
    sink = SyncSink(out, state)
    sink.open()
    now = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    run = SourceRun(tenant=TENANT, spec=spec, settings=SourceSettings(), client=_BodyClient(bodies), state=state,
                    sink=sink, metrics=Metrics(), stop=threading.Event(), now=lambda: now, record_filter=record_filter)
    if not raw:
        run.raw_fields = lambda: None  # type: ignore[method-assign]
    collect_window(run)
    state.close()
    assert (run.client.raw_items > 0) == (raw and record_filter is None)
    return list(out.lines)


def _sign_in_pages() -> list[bytes]:
    rows = [{"id": f"s{n}", "createdDateTime": f"2026-11-26T1{n % 2}:{n % 60:02d}:0{n % 10}" + (".1234567Z" if n % 3 else "Z"),
             "userDisplayName": "Zoë \u4e2d", "location": {"geoCoordinates": {"latitude": 51.50643, "longitude": -0.12719}},
             "status": {"errorCode": n}} for n in range(70)]
    chunks = [rows[0:30], rows[25:55], rows[50:70] + rows[0:5]]  # overlaps: already delivered, dropped alike
    return [b'{"value":' + orjson.dumps(c) + b',"@odata.nextLink":"https://graph.test/n' + str(i).encode() + b'"}'
            for i, c in enumerate(chunks)]


def test_the_window_collector_writes_identical_lines(tmp_path):
    bodies = _sign_in_pages()
    dict_lines = _collect(tmp_path, bodies, raw=False, name="d")
    raw_lines = _collect(tmp_path, bodies, raw=True, name="r")
    assert len(dict_lines) == 70  # duplicates across pages dropped alike
    assert raw_lines == dict_lines


def test_a_record_filter_reads_dicts_and_its_edits_are_written(tmp_path):
    """With a record-filter hook every object becomes a dict: the page is read as dicts."""
    seen_types = set()

    def keep(tenant: str, source: str, record: dict) -> bool:
        seen_types.add(type(record["data"]))
        record["data"]["tagged"] = True
        return not record["id"].endswith("1")

    bodies = _sign_in_pages()
    dict_lines = _collect(tmp_path, bodies, raw=False, name="d", record_filter=keep)
    raw_lines = _collect(tmp_path, bodies, raw=True, name="r", record_filter=keep)
    assert seen_types == {dict}
    assert raw_lines == dict_lines and all(orjson.loads(line)["data"]["tagged"] for line in raw_lines)


def test_a_raw_record_handed_to_a_hook_or_edited_is_materialised():
    """Defensive path (related fetches edit ``data``; a hook could be given a RawItem): the
    hook sees a dict, and an edited item is written from its dict."""
    kind, page = _decode(b'{"value":[{"id":"a","createdDateTime":"2026-11-26T10:00:00Z","n":1}]}', FIELDS)
    item = page["value"][0]
    assert isinstance(item, RawItem) and not item.materialised
    assert item["id"] == "a" and "n" in item and item.get("missing") is None
    assert _line(item) == _line({"id": "a", "createdDateTime": "2026-11-26T10:00:00Z", "n": 1})
    item["related"] = [_decode(b'{"value":[{"id":"x"}]}', FIELDS)[1]["value"][0]]
    assert item.materialised
    assert orjson.loads(_line(item))["data"]["related"] == [{"id": "x"}]
    from td_graph_plugin.graph.rawitem import materialise

    record = materialise(make_record(TENANT, "s", "a", "t", "c", item))
    assert type(record["data"]) is dict and type(record["data"]["related"][0]) is dict


# --- the window collector's per-page path (window.page_lines_writer) --------------------------
def _source_pages(spec: Any) -> list[bytes]:
    """Pages for ``spec`` with every shape of the fields the per-page path reads: canonical and
    non-canonical times (7 digits, an offset, no fraction), a missing or null time, versions,
    an event-time field of its own (present, missing, null), repeats within and across pages;
    then pages that must take the per-item path (an item without an id, an empty id, a field
    that is not a string, a non-object item)."""
    stamps = ["2026-11-26T10:00:0{}Z", "2026-11-26T10:00:0{}.1234567Z", "2026-11-26T10:00:0{}.120Z",
              "2026-11-26T10:00:0{}+00:00", "2026-11-26T09:00:0{}-01:00", None, "garbage{}"]
    rows = []
    for n in range(60):
        row: dict[str, Any] = {"id": f"o{n % 45}", "n": n, "txt": "Zoë \u4e2d \"q\""}
        stamp = stamps[n % len(stamps)]
        if stamp is not None or n % 2:
            row[spec.time_field] = stamp.format(n % 10) if stamp else None
        if spec.version_field and spec.version_field != spec.time_field:
            row[spec.version_field] = f"v{n % 3}"
        if spec.event_time_field and spec.event_time_field != spec.time_field and n % 4:
            other = stamps[(n + 1) % len(stamps)]
            row[spec.event_time_field] = other.format(n % 10) if other and n % 4 != 3 else None
        rows.append(row)
    good = [rows[0:25], rows[20:45], rows[40:60] + rows[0:3]]
    bad = [rows[:3] + [{"x": 1}] + rows[3:5], rows[5:8] + [{"id": ""}],
           rows[8:10] + [{"id": "num", spec.time_field: 12}], rows[10:12] + [7, {"id": "late"}]]
    return [b'{"value":' + orjson.dumps(c) + b',"@odata.nextLink":"https://graph.test/n' + str(i).encode() + b'"}'
            for i, c in enumerate(good + bad)]


@pytest.mark.parametrize("source", ["audit_logs.sign_ins", "identity_protection.risk_detections",
                                    "identity_protection.risky_users", "security.alerts_v2"])
def test_the_per_page_path_writes_the_per_item_paths_lines(tmp_path, monkeypatch, source):
    from td_graph_plugin.collector import window

    spec = load_catalogue(create_plugin_manager(load_entrypoints=False))[source]
    bodies = _source_pages(spec)
    dict_lines = _collect(tmp_path, bodies, raw=False, name="d", source=source)
    calls: list[bool] = []
    real = window.page_lines_writer

    def counting(*a):
        write = real(*a)

        def counted(items, seen_keys):
            result = write(items, seen_keys)
            calls.append(result is not None)
            return result
        return counted

    monkeypatch.setattr(window, "page_lines_writer", counting)
    page_lines = _collect(tmp_path, bodies, raw=True, name="p", source=source)
    assert calls.count(True) >= 3 and False in calls  # the good pages per page, the bad ones per item
    monkeypatch.setattr(window, "page_lines_writer", lambda *a: None)
    item_lines = _collect(tmp_path, bodies, raw=True, name="i", source=source)
    assert page_lines == item_lines == dict_lines
    assert len(page_lines) >= 45


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789-T:.Z+ ", min_size=18, max_size=30)
       | st.builds(lambda y, mo, d, h, mi, s, f: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{f:07d}Z",
                   st.integers(1, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 24),
                   st.integers(0, 60), st.integers(0, 60), st.sampled_from([0, 1, 9, 10, 1234567, 9999999, 5000000])))
def test_event_string_is_the_per_item_event_time(raw):
    from td_graph_plugin.collector.window import _event_time, event_string
    from td_graph_plugin.timeutil import parse_time

    dt = parse_time(raw)
    expected = _event_time({"f": raw}, "f", "f", dt, "observed")
    assert event_string(raw, dt, "observed") == expected


def test_event_string_odd_forms():
    from td_graph_plugin.collector.window import _event_time, event_string
    from td_graph_plugin.timeutil import parse_time

    for raw in ["2026-11-26T10:00:00.0000000Z", "2026-11-26T10:00:00.0000009Z", "2026-12-31T23:59:60.1234567Z",
                "0999-11-26T10:00:00.1234567Z", "2026-11-26T10:00:0\u0663.1234567Z", "2026-11-26T10:00:00,1234567Z",
                "2026-11-26T10:00:00.1234567z", "2026-02-30T10:00:00.1234567Z", "2026-11-26T10:00:00Z", None, 5]:
        dt = parse_time(raw)
        assert event_string(raw, dt, "observed") == _event_time({"f": raw}, "f", "f", dt, "observed"), raw
