"""Window mode: a time filter with an overlap for late events and dedup on (id, version).

Cursor (JSON in the state store)::

    {"done": "<upper bound of the last finished window>",
     "active": {"lower": "...", "upper": "..."} | null}

A run starts at ``done - overlap`` (or ``now - lookback`` the first time) and walks windows of at
most ``window_chunk`` up to ``now - delay``.  Each page commits the active window and the dedup
keys of what it emitted, so a crash mid-window resumes that same window and skips what was
already delivered; an event arriving late (inside the overlap) is emitted once, an unchanged
one never twice, and an alert whose ``lastUpdateDateTime`` moved is emitted again.

A record's ``event_time`` is the spec's ``event_time_field`` (risk detections: the activity
time, while ``lastUpdatedDateTime`` stays the cursor), or the time td-graph observed the item
when it has none: never null.  Dedup keys stay on ``time_field``, the field the window reads.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timedelta
from itertools import repeat
from operator import attrgetter
from typing import Any, Callable, Sequence

import orjson
from msgspec import UNSET

from ..config.model import Config, TenantConfig
from ..errors import GraphBadRequest
from ..graph.rawitem import RawItem, RawItems
from ..spec import QueryShape, SourceSpec
from ..state import Commit, StateStore
from ..timeutil import CANONICAL, filter_literal, format_time, parse_time, to_epoch
from .context import SourceRun, make_record
from .keys import window_key
from .offsets import read_bounded
from .shapes import current_shape, heal

__all__ = ["collect_window", "build_time_filter", "WINDOW"]

log = logging.getLogger("td_graph_plugin.collector")

# How far the local clock may run ahead of Graph's before windows are bounded by Graph's time.
CLOCK_TOLERANCE = timedelta(minutes=1)
DEFAULT_QUERY = QueryShape("default")


def build_time_filter(field: str, ops: tuple[str, str], lower: datetime, upper: datetime, extra: str | None = None) -> str:
    """``createdDateTime ge 2026-11-26T09:45:00Z and createdDateTime le 2026-11-26T10:00:00Z``.

    Only the operators the endpoint accepts are used (sign-ins: ge/le; provisioning: gt/lt).
    A ``gt`` lower bound is moved one second earlier so the boundary second is still covered.
    """
    lo_op, hi_op = ops
    lo = lower - timedelta(seconds=1) if lo_op == "gt" else lower
    hi = upper + timedelta(seconds=1) if hi_op == "lt" else upper
    clause = f"{field} {lo_op} {filter_literal(lo)} and {field} {hi_op} {filter_literal(hi, ceil=True)}"
    return f"{extra} and {clause}" if extra else clause


def collect_window(run: SourceRun) -> None:
    """Read the windows due, with the query shape the state remembers; a 400 naming an option
    that shape sends moves the source to its next shape (``shapes.heal``) and reads on."""
    shape = current_shape(run)
    for _ in range(len(run.spec.shapes)):
        try:
            _collect_windows(run, shape)
            return
        except GraphBadRequest as exc:
            healed = heal(run, shape, exc)
            if healed is None:
                raise
            shape = healed
    _collect_windows(run, shape)


def _collect_windows(run: SourceRun, shape: QueryShape) -> None:
    spec, state = run.spec, run.state
    tenant = run.tenant.name
    overlap = run.duration("overlap")
    chunk = run.duration("window_chunk")
    now = _bounded_now(run)
    end = now - run.duration("delay")
    cursor = state.cursor(tenant, spec.name) or {}
    done = parse_time(cursor.get("done"))
    active = cursor.get("active")
    if done is not None and done > now:
        # Written while the clock ran ahead (a VM resume, a bad NTP step): waiting for the
        # clock to catch up would leave a gap nobody reads; rewind and let dedup absorb overlap.
        log.warning(
            "%s/%s: the stored position %s is in the future (now %s); rewinding to now - overlap",
            tenant, spec.name, format_time(done), format_time(now),
        )
        run.metrics.error(tenant, spec.name, "clock")
        done, active = now - overlap, None

    if shape.client_side_window:
        # One read of the whole collection covers every window due: read it once.
        chunk = timedelta(days=36500)
    if active:
        lower, upper = parse_time(active["lower"]), parse_time(active["upper"])
        if shape.client_side_window and upper is not None:
            upper = max(upper, end)
    else:
        start = done if done is not None else now - run.duration("lookback")
        lower = (done - overlap) if done is not None else start
        upper = min(start + chunk, end)
    while lower is not None and upper is not None and lower < upper:
        if run.stopping:
            return
        finished = _collect_one(run, lower, upper, done, shape)
        if not finished:
            return
        done = upper if done is None else max(done, upper)
        if done >= end:
            return
        lower, upper = done - overlap, min(done + chunk, end)
    # Nothing to read (the window is empty): still a success for last-success and lag metrics.
    cursor = {"done": format_time(done), "active": None}
    run.deliver([], Commit(tenant, spec.name, cursor=cursor, success=True), checkpoint=done)


def _bounded_now(run: SourceRun) -> datetime:
    """The local clock, but never ahead of Graph's (its ``Date`` header) by more than a minute."""
    now = run.now()
    graph = run.graph_now()
    if graph is not None and now - graph > CLOCK_TOLERANCE:
        log.warning(
            "%s/%s: the local clock is %s ahead of Graph's; windows end at Graph's time",
            run.tenant.name, run.spec.name, now - graph,
        )
        run.metrics.error(run.tenant.name, run.spec.name, "clock")
        return graph
    return now


def _collect_one(run: SourceRun, lower: datetime, upper: datetime, done: datetime | None,
                 shape: QueryShape = DEFAULT_QUERY) -> bool:
    spec, state = run.spec, run.state
    tenant = run.tenant.name
    assert spec.time_field is not None
    run.stats.window = (format_time(lower), format_time(upper))
    active = {"lower": format_time(lower), "upper": format_time(upper)}
    cursor = {"done": format_time(done), "active": active}
    upper_epoch = upper.timestamp()
    collected_at = run.collected_at()
    id_field, time_field, version_field = spec.id_field, spec.time_field, spec.version_field
    event_field = spec.event_time_field
    # client_side_window: Graph filtered nothing; keep what the window's filter would keep.
    keep = (lower, upper) if shape.client_side_window else None

    def params_for(lo: datetime, hi: datetime) -> dict[str, str]:
        return _query(run, shape, lo, hi)

    fast = None
    if run.record_filter is None and run.formatter is None and not (spec.related and run.settings.fetch_alerts):
        fast = page_lines_writer(run.tenant, spec, collected_at, upper_epoch, keep)

    def handle(items: Any) -> bool:
        done_fast = fast(items, state.seen_keys) if fast is not None and type(items) is RawItems else None
        if done_fast is not None:  # the per-page path (page_lines_writer): same lines, same keys
            lines, seen, newest = done_fast
            run.note_event_time(newest)
            run.deliver([], Commit(tenant, spec.name, cursor=cursor, seen=seen, newest_event=to_epoch(newest)),
                        lines=lines)
            return True
        keyed: list[tuple[str, float, dict[str, Any], datetime | None, Any]] = []
        for item in items:
            if not isinstance(item, (dict, RawItem)):  # RawItem: graph/rawitem.py (issue 16)
                run.skip_bad(f"not a JSON object: {type(item).__name__}")
                continue
            obj_id = item.get(id_field)
            if not isinstance(obj_id, str) or not obj_id:
                run.skip_bad(f"no {id_field!r}")
                continue
            raw_ts = item.get(time_field)
            ts = parse_time(raw_ts)
            if keep is not None and (ts is None or ts < keep[0] or ts > keep[1]):
                continue
            version = item.get(version_field) if version_field else None
            key = window_key(obj_id, version)
            # A key is stored with its event time; an item without one (malformed) with the
            # window's upper bound, which a resumed window looks it up with again.
            keyed.append((key, ts.timestamp() if ts is not None else upper_epoch, item, ts, raw_ts))
        already = state.seen_keys(tenant, spec.name, [(k, t) for k, t, _, _, _ in keyed]) if keyed else set()
        records, seen, newest = [], [], None
        batch: set[str] = set()
        for key, epoch, item, ts, raw_ts in keyed:
            if key in already or key in batch:
                continue
            batch.add(key)
            seen.append((key, epoch))
            event_time = _event_time(item, event_field, time_field, ts, collected_at)
            record = make_record(run.tenant, spec.name, item[id_field], event_time, collected_at, item)
            if run.admit(record):
                records.append(record)
            if ts is not None and (newest is None or ts > newest):
                newest = ts
        if records and spec.related and run.settings.fetch_alerts:
            _attach_related(run, records)
        run.note_event_time(newest)
        run.deliver(records, Commit(tenant, spec.name, cursor=cursor, seen=seen, newest_event=to_epoch(newest)))
        return True

    if spec.max_offset is not None and keep is None:
        # Offset-paged endpoint: never depend on a deep $skip (collector/offsets.py).
        if not read_bounded(run, lower, upper, params_for, handle):
            return False
    else:
        for page in run.pages(run.url(), params_for(lower, upper)):
            handle(page.items)
            if run.stopping and page.next_link:
                return False
    # The window is complete: advance, and forget keys that can no longer be re-read.
    new_done = upper if done is None else max(done, upper)
    # The next window starts at new_done - overlap, written to the whole second below (and
    # 1 s earlier for gt): keep every key that window can return, with a margin.
    prune = (new_done - run.duration("overlap")).timestamp() - 2.0
    closing = Commit(
        tenant, spec.name, cursor={"done": format_time(new_done), "active": None}, prune_seen_before=prune, success=True
    )
    run.deliver([], closing, checkpoint=new_done)
    return True


_MATERIALISED = attrgetter("_dict")
PageLines = tuple[list[bytes], list[tuple[str, float]], "datetime | None"]


def page_lines_writer(
    tenant: TenantConfig, spec: SourceSpec, collected_at: str, upper_epoch: float,
    keep: tuple[datetime, datetime] | None,
) -> Callable[[RawItems, Callable[..., set[str]]], PageLines | None] | None:
    """The window path of a page read as ``RawItems`` (every field it reads a string or null),
    one page at a time: the ids, times and versions come as lists straight from the decoded
    structs, and each record line is the envelope's constant prefix (tenant, tenant_id,
    source), the id, the event time, ``collected_at`` and the object's bytes joined - the bytes
    ``encode_record(make_record(...))`` writes for a RawItem (tests/test_raw_equivalence.py).
    Returns ``write(items, seen_keys)`` -> (lines, dedup keys, newest time) or None when the
    page needs the per-item path (an item without an id, a materialised item)."""
    try:
        head = orjson.dumps({"tenant": tenant.name, "tenant_id": tenant.tenant_id, "source": spec.name})
        tail = b',"collected_at":' + orjson.dumps(collected_at) + b',"data":'
    except TypeError:
        return None
    if not head.endswith(b"}") or spec.time_field is None:
        return None
    prefix, mid = head[:-1] + b',"id":', b',"event_time":'
    id_field, time_field, version_field, event_field = spec.id_field, spec.time_field, spec.version_field, \
        spec.event_time_field
    same_event = event_field == time_field
    name, source = tenant.name, spec.name
    dumps, join = orjson.dumps, b"".join

    def write(items: RawItems, seen_keys: Callable[..., set[str]]) -> PageLines | None:
        raws, structs, attrs = items.raws, items.structs, items.attrs
        wanted = (id_field, time_field, version_field or id_field, event_field or id_field)
        if len(items) != len(raws) or any(f not in attrs for f in wanted) or any(map(_MATERIALISED, items)):
            return None
        ids = list(map(attrgetter(attrs[id_field]), structs))
        if None in ids or UNSET in ids or "" in ids:
            return None  # the per-item path skips and counts the bad item
        times = list(map(attrgetter(attrs[time_field]), structs))
        stamps = list(map(parse_time, times))
        events = times if same_event else (
            list(map(attrgetter(attrs[event_field]), structs)) if event_field else [None] * len(ids))
        if version_field:
            versions = map(attrgetter(attrs[version_field]), structs)
            keys = [i if v is None or v is UNSET else f"{i}|{v}" for i, v in zip(ids, versions)]
        else:
            keys = ids
        if keep is not None:
            lo, hi = keep
            sel = [n for n, t in enumerate(stamps) if t is not None and lo <= t <= hi]
            ids, stamps, events, keys, raws = ([seq[n] for n in sel] for seq in (ids, stamps, events, keys, raws))
        epochs = [upper_epoch if t is None else t.timestamp() for t in stamps]
        already = seen_keys(name, source, list(zip(keys, epochs))) if keys else set()
        if already or len(set(keys)) != len(keys):  # drop what was delivered, and repeats
            batch: set[str] = set()
            sel = []
            for n, key in enumerate(keys):
                if key not in already and key not in batch:
                    batch.add(key)
                    sel.append(n)
            ids, stamps, events, keys, raws, epochs = (
                [seq[n] for n in sel] for seq in (ids, stamps, events, keys, raws, epochs))
        dts = stamps if same_event else list(map(parse_time, events))
        event_times = list(map(event_string, events, dts, repeat(collected_at)))
        lines = list(map(join, zip(repeat(prefix), map(dumps, ids), repeat(mid), map(dumps, event_times),
                                   repeat(tail), raws, repeat(b"}\n"))))
        return lines, list(zip(keys, epochs)), max(filter(None, stamps), default=None)

    return write


_SEVEN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{7}Z").fullmatch


def event_string(raw: Any, dt: datetime | None, observed: str) -> str:
    """``_event_time``'s string for a field value ``raw`` that parsed to ``dt``, without
    formatting ``dt`` when the string says it: canonical UTC as is, and Graph's 7-digit form
    cut to the 6 digits ``format_time`` writes (no fraction when they are zero).  A year before
    1000 (``format_time`` writes it unpadded) and a leap second (clamped to :59 when parsed)
    take ``format_time``."""
    if dt is None:
        return observed
    if type(raw) is str:
        if len(raw) == 28:
            if _SEVEN(raw) and raw[0] != "0" and raw[17:19] != "60":
                return raw[:26] + "Z" if raw[20:26] != "000000" else raw[:19] + "Z"
        elif CANONICAL.match(raw):
            return raw
    return format_time(dt)


def _query(run: SourceRun, shape: QueryShape, lower: datetime, upper: datetime) -> dict[str, str]:
    """The first request's query for ``[lower, upper]`` in ``shape``."""
    spec = run.spec
    params = run.base_params()
    if shape.top == 0:
        params.pop("$top", None)
    elif shape.top is not None:
        params["$top"] = str(shape.top)
    if shape.client_side_window:
        if spec.extra_filter:
            params["$filter"] = spec.extra_filter
    else:
        params["$filter"] = build_time_filter(
            shape.time_field or spec.time_field or "", shape.filter_ops or spec.filter_ops, lower, upper,
            spec.extra_filter,
        )
    return params


def _event_time(item: dict[str, Any], field: str | None, time_field: str, ts: datetime | None, observed: str) -> str:
    """When the thing happened (``event_time_field``; the cursor's ``time_field`` by default),
    else when td-graph observed it: the contract never writes a null ``event_time``."""
    raw = item.get(field) if field else None
    dt = ts if field == time_field else parse_time(raw)
    if dt is None:
        return observed
    # Graph's own string when it is already canonical UTC (most are): no re-formatting.
    return raw if isinstance(raw, str) and CANONICAL.match(raw) else format_time(dt)


def _attach_related(run: SourceRun, records: list[dict[str, Any]]) -> None:
    """Fetch each new object's related collections (incident -> its alerts) and attach them,
    in the shape ``$expand`` would have given: ``data[field] = [...]``."""
    spec = run.spec
    for record in records:
        for name, template in spec.related.items():
            url = run.client.url(spec.version, template.replace("{id}", record["id"]))
            items: list[Any] = []
            for page in run.pages(url):
                items.extend(page.items)
            record["data"][name] = items


def adopt_window(
    spec: SourceSpec, state: StateStore, config: Config, tenant: str, records: Sequence[dict[str, Any]]
) -> Commit:
    """Store the dedup keys of records written after the last checkpoint, keyed exactly as
    ``_collect_one`` keys them (a record without a time-field value: its window's upper bound)."""
    cursor = state.cursor(tenant, spec.name) or {}
    active = cursor.get("active") or {}
    fallback = to_epoch(parse_time(active.get("upper"))) or time.time()
    seen = []
    for r in records:
        data = r.get("data") or {}
        version = data.get(spec.version_field) if spec.version_field else None
        # Keyed on the cursor's time field, as _collect_one keys it (event_time may be another one).
        ts = parse_time(data.get(spec.time_field)) if spec.time_field else None
        if ts is None and spec.event_time_field == spec.time_field and r.get("event_time") != r.get("collected_at"):
            ts = parse_time(r.get("event_time"))  # the same field (an observed-time stamp is not)
        seen.append((window_key(str(r["id"]), version), to_epoch(ts) or fallback))
    return Commit(tenant, spec.name, cursor=cursor, seen=seen)


class _Window:
    uses_graph = True
    collect = staticmethod(collect_window)
    adopt = staticmethod(adopt_window)


WINDOW = _Window()
