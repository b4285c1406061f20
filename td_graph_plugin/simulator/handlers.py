"""Generic handlers for the endpoint modes: window/list paging, delta, computed.

Paging model (graph-facts §0.4): the first request of a query takes a *snapshot* (the list
of matching objects as of that instant, ``as_of``) and every ``@odata.nextLink`` carries an
opaque signed ``$skiptoken`` holding the query, ``as_of`` and the offset.  Later pages slice
the same snapshot, so the filter is evaluated consistently across pages: an object that
becomes visible mid-paging shows up in the next query, never shifting a page.  Snapshots are
cached (LRU); on a miss the snapshot is rebuilt from the token's ``as_of``.

The nextLink repeats the original query options (as Graph's do) plus ``$skiptoken``; a
request whose options differ from those sealed in the token is refused with 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .delta import DeltaExpired, handle_delta
from .odata import ODataError, parse_filter, parse_orderby, parse_select, parse_top
from .profiles import subscribed_skus
from .request_base import (GraphRequest, SnapshotCache, _check_options, _context, _decode_page_token, _link, _render,
                           render_related)
from .responses import Response, json_response
from .timefmt import parse_ts

__all__ = ["GraphRequest", "SnapshotCache", "DeltaExpired", "handle", "render_related"]

_INTERACTIVE = ("interactiveUser",)  # a sign-in without signInEventTypes is an interactive one


# ----------------------------------------------------------------------------- window / list

@dataclass(frozen=True)
class _ListQuery:
    top: int
    select: tuple[str, ...]
    filter_text: str
    ascending: bool
    count: bool
    skip: int
    order_by: str | None = None  # a field other than the collection's order field to sort on
    expand: tuple[str, ...] = ()


def _compile_list_query(req: GraphRequest, q: dict[str, str]) -> _ListQuery:
    ep = req.endpoint
    default_top = req.page_size or ep.default_top
    top = parse_top(q["$top"], ep.max_top, ep.top_error_code) if "$top" in q else default_top
    select = parse_select(q["$select"], ep.known_fields, ep.entity) if "$select" in q else ()
    ascending = False
    order_by = None
    if "$orderby" in q:
        ascending = not parse_orderby(q["$orderby"], ep.orderable)
        name = q["$orderby"].split()[0]
        coll_order = req.tenant.collection(ep.collection).order_field
        if name != coll_order:
            order_by = name
    expand: tuple[str, ...] = ()
    if "$expand" in q:
        names = tuple(n.strip() for n in q["$expand"].split(",") if n.strip())
        for n in names:
            if n not in ep.expand:
                raise ODataError(f"Could not find a property named '{n}' on type '{ep.entity}'.")
        if not names:
            raise ODataError("Invalid $expand clause: the list of properties is empty.")
        if "$filter" in q and ep.expand_with_filter is not None:
            status, code, message = ep.expand_with_filter
            raise ODataError(message, code=code, status=status)
        expand = names
    count = False
    if "$count" in q:
        if q["$count"].lower() not in ("true", "false"):
            raise ODataError(f"'{q['$count']}' is not a valid count option.")
        count = q["$count"].lower() == "true"
    skip = 0
    if "$skip" in q:
        try:
            skip = int(q["$skip"])
        except ValueError:
            skip = -1
        if skip < 0:
            raise ODataError(f"Invalid value '{q['$skip']}' for $skip query option found. The $skip query option requires a non-negative integer value.")
    return _ListQuery(top, select, q.get("$filter", ""), ascending, count, skip, order_by, expand)


def _evaluate(req: GraphRequest, lq: _ListQuery, as_of: float) -> list[dict]:
    """The full, ordered result set of a query as of ``as_of``."""
    ep = req.endpoint
    tenant = req.tenant
    coll = tenant.collection(ep.collection)
    items, keys = coll.view()  # one consistent pair even while a writer swaps in new data
    filt = parse_filter(lq.filter_text, dict(ep.time_fields), ep.event_types, ep.eq_fields) if lq.filter_text else None
    start, end = 0, len(items)
    rest = ()
    if coll.order_field is not None:
        low = high = None
        low_inc = high_inc = True
        if filt is not None:
            low, high, low_inc, high_inc, rest = filt.bounds(coll.order_field)
        if ep.retained:
            oldest = as_of - tenant.licence.retention_days * 86400.0
            if low is None or low < oldest:
                low, low_inc = oldest, True
        start, end = coll.slice_bounds(keys, low, high, low_inc, high_inc)
    elif filt is not None:
        rest = filt.clauses
    preds = []
    for c in rest:
        preds.append(_predicate(c.field, c.op, c.value))
    if filt is not None:
        for fieldname, value in filt.equals:
            preds.append(_equals(fieldname, value))
    event_type = None
    if ep.implicit_event_type is not None:
        event_type = filt.event_types[0] if filt is not None and filt.event_types else ep.implicit_event_type
    out = []
    append = out.append
    for o in items[start:end]:
        if o["visible_at"] > as_of:
            continue
        if event_type is not None and event_type not in (o.get("signInEventTypes") or _INTERACTIVE):
            continue
        if preds and not all(p(o) for p in preds):
            continue
        append(o)
    if lq.order_by is not None:
        name = lq.order_by
        out.sort(key=lambda o: (o.get(name) is None, _sort_key(o.get(name))), reverse=not lq.ascending)
    elif lq.ascending:
        out.reverse()
    return out


def _sort_key(value):
    if isinstance(value, str):
        try:
            return (0, parse_ts(value), "")
        except ValueError:
            return (1, 0.0, value.casefold())
    if isinstance(value, (int, float)):
        return (0, float(value), "")
    return (2, 0.0, "")


def _equals(fieldname: str, value: object) -> Callable[[dict], bool]:
    if isinstance(value, str):
        folded = value.casefold()  # Graph compares these strings case-insensitively
        return lambda o: isinstance(o.get(fieldname), str) and o[fieldname].casefold() == folded
    return lambda o: o.get(fieldname) is value


def _predicate(fieldname: str, op: str, value: float) -> Callable[[dict], bool]:
    def get(o: dict) -> float | None:
        text = o.get(fieldname)
        return parse_ts(text) if text else None

    if op == "eq":
        return lambda o: get(o) == value
    if op == "ge":
        return lambda o: (v := get(o)) is not None and v >= value
    if op == "gt":
        return lambda o: (v := get(o)) is not None and v > value
    if op == "le":
        return lambda o: (v := get(o)) is not None and v <= value
    if op == "lt":
        return lambda o: (v := get(o)) is not None and v < value
    raise ODataError(f"Invalid filter clause: unsupported operator '{op}'.")


def _expand(req: GraphRequest, values: list[dict], names: tuple[str, ...]) -> None:
    for name in names:
        collection, key = req.endpoint.expand[name]
        related: dict[str, list[dict]] = {}
        for o in req.tenant.collection(collection).items:
            if o["visible_at"] <= req.now:
                related.setdefault(o.get(key), []).append(o)
        for d in values:
            d[name] = render_related(req, related.get(d.get("id"), []))
            d[f"{name}@odata.context"] = f"{req.base_url}/{req.version}/$metadata#{req.endpoint.context}('{d.get('id')}')/{name}"


def handle_list(req: GraphRequest) -> Response:
    _check_options(req)
    q = dict(req.query)
    token = q.pop("$skiptoken", None)
    if token is not None:
        payload = _decode_page_token(req, token, "page")
        if payload.get("q") != q:
            raise ODataError("The query options of this request do not match those sealed in its $skiptoken. "
                             "Follow @odata.nextLink exactly as returned.")
        as_of, offset = float(payload["a"]), int(payload["o"])
    else:
        as_of, offset = req.now, -1
    lq = _compile_list_query(req, q)
    if offset < 0:
        offset = lq.skip
    key = (req.tenant.tenant_id, req.version, req.endpoint.path, tuple(sorted(q.items())), as_of)
    snapshot = req.snapshots.get(key, lambda: _evaluate(req, lq, as_of))
    if req.take_empty_page():
        page, next_offset = [], offset
    else:
        page = snapshot[offset: offset + lq.top]
        next_offset = offset + len(page)
    body: dict = {"@odata.context": _context(req, lq.select)}
    if lq.count and token is None:
        body["@odata.count"] = len(snapshot)
    body["value"] = _render(req, page, lq.select)
    if lq.expand:
        _expand(req, body["value"], lq.expand)
    if next_offset < len(snapshot):
        tok = req.codec.encode({"k": "page", "t": req.tenant.tenant_id, "v": req.version,
                                "p": req.endpoint.path, "q": q, "a": as_of, "o": next_offset})
        body["@odata.nextLink"] = _link(req, q, "$skiptoken", tok)
    return json_response(200, body)


# ----------------------------------------------------------------------------- computed

def handle_computed(req: GraphRequest) -> Response:
    _check_options(req)
    if req.endpoint.collection != "subscribed_skus":
        raise ODataError(f"No computed source named {req.endpoint.collection!r}.")
    value = subscribed_skus(req.tenant.licence, req.tenant.tenant_id)
    select = ()
    if "$select" in req.query:
        select = parse_select(req.query["$select"], None, req.endpoint.entity)
        value = [{k: v.get(k) for k in select} for v in value]
    return json_response(200, {"@odata.context": _context(req, select), "value": value})


HANDLERS: dict[str, Callable[[GraphRequest], Response]] = {
    "window": handle_list,
    "list": handle_list,
    "delta": handle_delta,
    "computed": handle_computed,
}


def handle(req: GraphRequest) -> Response:
    return HANDLERS[req.endpoint.mode](req)
