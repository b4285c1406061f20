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

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .endpoints import Endpoint
from .odata import ODataError, TokenCodec, encode_query, parse_filter, parse_orderby, parse_select, parse_top
from .profiles import subscribed_skus
from .responses import Response, json_response
from .timefmt import parse_ts

if TYPE_CHECKING:  # pragma: no cover
    from .tenant import SimTenant

__all__ = ["GraphRequest", "SnapshotCache", "handle"]

_INTERACTIVE = ("interactiveUser",)  # a sign-in without signInEventTypes is an interactive one


@dataclass
class GraphRequest:
    tenant: "SimTenant"
    version: str
    endpoint: Endpoint
    query: dict[str, str]  # option names lower-cased
    prefer: str  # the Prefer header, lower-cased ("" if absent)
    base_url: str
    now: float
    codec: TokenCodec
    snapshots: "SnapshotCache"
    page_size: int | None  # simulator override of the endpoint's default page size
    take_empty_page: Callable[[], bool]

    @property
    def include_unknown_enums(self) -> bool:
        return "include-unknown-enum-members" in self.prefer


class SnapshotCache:
    """LRU of query snapshots keyed by (tenant, version, path, query, as_of).

    Bounded by the total number of object references held (not entries), so a benchmark
    running many full scans of 200,000 sign-ins cannot grow memory without limit.
    """

    def __init__(self, max_refs: int = 4_000_000):
        self._max_refs = max_refs
        self._refs = 0
        self._lock = threading.Lock()
        self._data: OrderedDict[tuple, list] = OrderedDict()

    def get(self, key: tuple, build: Callable[[], list]) -> list:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                return hit
        value = build()
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._refs -= len(old) + 1
            self._data[key] = value
            self._refs += len(value) + 1
            while self._refs > self._max_refs and len(self._data) > 1:
                _, dropped = self._data.popitem(last=False)
                self._refs -= len(dropped) + 1
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._refs = 0


def _check_options(req: GraphRequest) -> None:
    ep = req.endpoint
    for name in req.query:
        if name in ep.rejected_options:
            code, message = ep.rejected_options[name]
            raise ODataError(message, code=code)
        if name == "$skiptoken" or name in ep.options:
            continue
        if name == "$top" and ep.max_top is None:
            raise ODataError("Query option '$top' is not supported on this resource.")
        if name.startswith("$"):
            raise ODataError(f"The query parameter '{name}' is not supported on '{ep.path}'.")
        raise ODataError(f"The query parameter '{name}' is not supported.")


def _context(req: GraphRequest, select: tuple[str, ...] = ()) -> str:
    suffix = req.endpoint.context + (f"({','.join(select)})" if select else "")
    return f"{req.base_url}/{req.version}/$metadata#{suffix}"


def _link(req: GraphRequest, q: dict[str, str], name: str, token: str) -> str:
    items = [(k, v) for k, v in q.items()]
    items.append((name, token))
    return f"{req.base_url}/{req.version}{req.endpoint.path}?{encode_query(items)}"


def _render(req: GraphRequest, objs: list[dict], select: tuple[str, ...]) -> list[dict]:
    ep = req.endpoint
    out = []
    if select:
        for o in objs:
            out.append({k: o.get(k) for k in select})
    elif ep.default_properties:
        props = ep.default_properties
        for o in objs:
            out.append({k: o.get(k) for k in props})
    else:
        hidden = ep.hidden_fields
        for o in objs:
            d = o.copy()
            del d["visible_at"]
            for h in hidden:
                d.pop(h, None)
            out.append(d)
    if ep.evolvable_enums and not req.include_unknown_enums:
        for d in out:
            for fieldname, newer in ep.evolvable_enums.items():
                if d.get(fieldname) in newer:
                    d[fieldname] = "unknownFutureValue"
    return out


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


def render_related(req: GraphRequest, objs: list[dict]) -> list[dict]:
    """Objects of another collection as Graph serves them (internal fields stripped, enums)."""
    from .endpoints import rows

    enums: dict = {}
    for ep in rows():
        if ep.collection == "alerts":
            enums = dict(ep.evolvable_enums)
            break
    out = []
    for o in objs:
        d = o.copy()
        d.pop("visible_at", None)
        if not req.include_unknown_enums:
            for fieldname, newer in enums.items():
                if d.get(fieldname) in newer:
                    d[fieldname] = "unknownFutureValue"
        out.append(d)
    return out


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


def _decode_page_token(req: GraphRequest, token: str, kind: str) -> dict:
    payload = req.codec.decode(token)
    if (
        payload.get("k") != kind
        or payload.get("t") != req.tenant.tenant_id
        or payload.get("v") != req.version
        or payload.get("p") != req.endpoint.path
    ):
        raise ODataError("The provided $skiptoken is invalid: it was not issued for this resource.")
    return payload


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


# ----------------------------------------------------------------------------- delta

class DeltaExpired(Exception):
    """An outstanding delta token was invalidated; ``mode`` says how Graph refuses it."""

    def __init__(self, mode: str, select: str | None):
        super().__init__(mode)
        self.mode = mode
        self.select = select


def _delta_link(req: GraphRequest, seq: int, select: str | None, top: int | None = None) -> str:
    payload = {"k": "delta", "t": req.tenant.tenant_id, "v": req.version, "p": req.endpoint.path,
               "s": seq, "e": req.tenant.delta_epoch, "sel": select, "i": req.now}
    if top is not None:
        payload["n"] = top
    tok = req.codec.encode(payload)
    return f"{req.base_url}/{req.version}{req.endpoint.path}?{encode_query([('$deltatoken', tok)])}"


def _check_epoch(req: GraphRequest, payload: dict) -> None:
    mode = req.tenant.expiry_mode(int(payload.get("e", -1)))
    if mode is None and req.now - float(payload.get("i", req.now)) > req.tenant.delta_token_ttl:
        mode = "syncStateNotFound"
    if mode is not None:
        raise DeltaExpired(mode, payload.get("sel"))


def handle_delta(req: GraphRequest) -> Response:
    """Delta over any collection with a change log (users, groups, devices, applications, ...)."""
    _check_options(req)
    q = dict(req.query)
    ep = req.endpoint
    tenant = req.tenant
    coll_name = ep.collection
    select_text = q.get("$select")
    top = parse_top(q["$top"], ep.max_top) if "$top" in q and ep.max_top is not None else None
    kind = "initial"
    since = upto = 0
    offset = 0
    as_of = req.now
    if "$skiptoken" in q:
        if len(q) > 1:
            raise ODataError("Query options must not be combined with $skiptoken on a delta request; "
                             "they are encoded in the token. Follow @odata.nextLink exactly as returned.")
        payload = _decode_page_token(req, q["$skiptoken"], "dpage")
        _check_epoch(req, payload)
        select_text = payload.get("sel")
        top = payload.get("n")
        kind, since, upto, offset = payload["m"], int(payload["f"]), int(payload["s"]), int(payload["o"])
        as_of = float(payload["a"])
    elif "$deltatoken" in q:
        raw = q["$deltatoken"]
        if raw.lower() == "latest":
            body = {"@odata.context": _context(req), "value": [],
                    "@odata.deltaLink": _delta_link(req, tenant.delta_seq_of(coll_name), select_text, top)}
            return json_response(200, body)
        if raw:
            if len(q) > 1:
                raise ODataError("Query options must not be combined with a $deltatoken; they are encoded in "
                                 "the token. Call @odata.deltaLink exactly as returned.")
            payload = _decode_page_token(req, raw, "delta")
            _check_epoch(req, payload)
            select_text = payload.get("sel")
            top = payload.get("n")
            kind, since, upto = "incremental", int(payload["s"]), tenant.delta_seq_of(coll_name)
    select = parse_select(select_text, ep.known_fields, ep.entity) if select_text else ()
    if select and "id" not in select:
        select = ("id",) + select
    if "$skiptoken" not in q:
        as_of = req.now
        if kind == "initial":
            upto = tenant.delta_seq_of(coll_name)
    replay = tenant.replay_every

    def build() -> list[str]:
        if kind == "initial":
            # Membership of the initial sync as of its first page; a rebuild after cache
            # eviction may differ slightly, which delta's documented replays allow.
            items = tenant.collection(coll_name).items
            return _with_replays([o["id"] for o in items if o["visible_at"] <= as_of], replay)
        return _with_replays(tenant.changed_ids(since, upto, coll_name), replay)

    key = (tenant.tenant_id, "delta", coll_name, req.version, kind, since, upto, as_of, replay)
    ids = req.snapshots.get(key, build)
    size = top or req.page_size or ep.default_top
    if req.take_empty_page():
        chunk, next_offset = [], offset
    else:
        chunk = ids[offset: offset + size]
        next_offset = offset + len(chunk)
    value = []
    props = select or ep.default_properties or ()
    for oid in chunk:
        state = tenant.object_state(coll_name, oid)
        if isinstance(state, dict):
            value.append({k: state.get(k) for k in props} if props else _strip(state))
        elif isinstance(state, str):
            value.append({"id": oid, "@removed": {"reason": state}})
    body: dict = {"@odata.context": _context(req, select)}
    if next_offset < len(ids):
        payload = {"k": "dpage", "t": tenant.tenant_id, "v": req.version, "p": ep.path, "m": kind,
                   "f": since, "s": upto, "o": next_offset, "e": tenant.delta_epoch, "sel": select_text,
                   "i": req.now, "a": as_of}
        if top is not None:
            payload["n"] = top
        body["@odata.nextLink"] = _link(req, {}, "$skiptoken", req.codec.encode(payload))
        body["value"] = value
    else:
        body["value"] = value
        body["@odata.deltaLink"] = _delta_link(req, upto, select_text, top)
    return json_response(200, body)


def _with_replays(ids: list[str], every: int) -> list[str]:
    """Documented replays: every ``every``-th entry is repeated right after itself."""
    if every <= 0:
        return ids
    out = []
    for i, uid in enumerate(ids, 1):
        out.append(uid)
        if i % every == 0:
            out.append(uid)
    return out


def _strip(obj: dict) -> dict:
    d = obj.copy()
    d.pop("visible_at", None)
    return d


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

