"""Routes: Graph calls that are not a collection of the endpoint table.

Write calls (``PATCH /users/{id}``, ``POST /users/{id}/revokeSignInSessions``), single-object
lookups (``GET /servicePrincipals(appId='...')``) and calls whose answer is not a JSON page
(the usage report's ``302``) are served by a *route*: a method, a regular expression over the
path after the version, and a handler::

    from td_graph_plugin.simulator.routes import SimRequest, SimResponse, graph_error, register_route

    def revoke(req: SimRequest) -> SimResponse:
        user = req.tenant.find_object("users", req.match.group(1))
        if user is None:
            return graph_error(404, "Request_ResourceNotFound", f"Resource '{req.match.group(1)}' does not exist ...")
        return SimResponse(200, {"@odata.context": "...", "value": True})

    register_route("POST", r"/users/([^/]+)/revokeSignInSessions", revoke,
                   permissions=["User.RevokeSessions.All|User.ReadWrite.All|Directory.ReadWrite.All"])

Routes are matched (``re.fullmatch``, case-insensitive, on the percent-decoded path after the
version) *before* the endpoint table, so a GET route whose pattern also matches a table path
(``/users/([^/]+)`` matches ``/users/delta``) shadows the table: exclude such names in the
pattern (``/users/(?!delta$)([^/]+)``).  For a routed request the pipeline does, in order:
throttle knob, bearer token -> tenant, page delay, the route's throttling budget (when
``sim.enforce_budgets``), every entry of ``permissions`` (``"A|B"`` = either; missing -> 403
``Authorization_RequestDenied`` "Insufficient privileges to complete the operation.", or the
route's own ``missing_permission`` body), the route's licence ``capability``, a JSON body check
(a body that claims JSON but is not -> 400), then calls the handler.  Every request is in
``sim.requests`` as usual.  A path that matches a route only for another method, and no table
row, answers 405.
"""

from __future__ import annotations

import contextvars
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .responses import GRAPH_JSON, RequestIds
from .timefmt import inner_error_date

if TYPE_CHECKING:  # pragma: no cover
    from .core import SimCore
    from .tenant import SimTenant

__all__ = ["SimRequest", "SimResponse", "register_route", "unregister_route", "graph_error", "routes",
           "Route", "match", "route_permissions", "page_response"]

_DIRECTORY_DENIED = (403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")

# The request ids of the request being handled, so graph_error() can fill innerError like Graph.
_CURRENT_IDS: contextvars.ContextVar[RequestIds | None] = contextvars.ContextVar("sim_request_ids", default=None)


@dataclass
class SimRequest:
    method: str
    version: str
    path: str  # after the version, percent-decoded, e.g. "/users/abc/revokeSignInSessions"
    query: dict[str, str]  # OData option names ("$select") lower-cased; other names as sent
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any  # the parsed JSON body, or None
    tenant: "SimTenant"
    match: re.Match
    sim: "SimCore"  # a GraphSimulator


@dataclass
class SimResponse:
    status: int
    body: Any = None  # dict/list -> JSON; bytes/str as is; None -> empty
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    regex: re.Pattern
    handler: Callable[[SimRequest], SimResponse]
    permissions: tuple[str, ...]
    versions: tuple[str, ...]
    missing_permission: tuple[int, str, str] = _DIRECTORY_DENIED
    capability: str | None = None  # profiles.CAPABILITIES key
    unlicensed: tuple[int, str, str] | None = None
    throttle: str = "default"  # faults.BUDGETS key (enforced when sim.enforce_budgets)
    throttle_scope: Callable[[re.Match], str] | None = None  # per-key budgets (usage reports: per report)


_LOCK = threading.Lock()
_ROUTES: list[Route] = []


def register_route(method: str, pattern: str, handler: Callable[[SimRequest], SimResponse], *,
                   permissions: Sequence[str] = (), versions: Sequence[str] = ("v1.0", "beta"),
                   missing_permission: tuple[int, str, str] | None = None, capability: str | None = None,
                   unlicensed: tuple[int, str, str] | None = None, throttle: str = "default",
                   throttle_scope: Callable[[re.Match], str] | None = None) -> None:
    """Serve ``method`` on paths (after the version) that ``re.fullmatch`` ``pattern``.

    Registering the same (method, pattern) again replaces the previous handler.  The keyword
    arguments after ``versions`` are optional refinements the built-in routes use: a service's
    own 403 body, a licence capability with its unlicensed answer, a throttling class.
    """
    m = method.upper()
    if isinstance(permissions, str):
        permissions = (permissions,)
    route = Route(m, pattern, re.compile(pattern, re.IGNORECASE), handler, tuple(permissions), tuple(versions),
                  missing_permission or _DIRECTORY_DENIED, capability, unlicensed, throttle, throttle_scope)
    with _LOCK:
        for i, r in enumerate(_ROUTES):
            if r.method == m and r.pattern == pattern:
                _ROUTES[i] = route
                return
        _ROUTES.append(route)


def unregister_route(method: str, pattern: str) -> None:
    m = method.upper()
    with _LOCK:
        _ROUTES[:] = [r for r in _ROUTES if not (r.method == m and r.pattern == pattern)]


def routes() -> list[Route]:
    with _LOCK:
        return list(_ROUTES)


def match(method: str, version: str, path: str) -> tuple[Route | None, re.Match | None, bool]:
    """(route, match, path_known): the route for ``method``, else whether another method's route matches."""
    known = False
    for r in routes():
        if version not in r.versions:
            continue
        m = r.regex.fullmatch(path)
        if m is None:
            continue
        if r.method == method:
            return r, m, True
        known = True
    return None, None, known


def route_permissions() -> set[str]:
    """Every permission named by a registered route (the Graph service principal exposes them)."""
    out: set[str] = set()
    for r in routes():
        for req in r.permissions:
            out.update(p for p in req.split("|") if p)
    return out


def graph_error(status: int, code: str, message: str) -> SimResponse:
    """Graph's error body: ``{"error": {"code", "message", "innerError": {date, request-id, client-request-id}}}``.

    Inside a handler the innerError ids are those of the request being served (the same values
    as the ``request-id``/``client-request-id`` response headers).
    """
    ids = _CURRENT_IDS.get()
    request_id = ids.request_id if ids else str(uuid.uuid4())
    client_request_id = ids.client_request_id if ids else str(uuid.uuid4())
    return SimResponse(status, {"error": {"code": code, "message": message, "innerError": {
        "date": inner_error_date(), "request-id": request_id, "client-request-id": client_request_id}}})


def set_current_ids(ids: RequestIds | None) -> contextvars.Token:
    return _CURRENT_IDS.set(ids)


def reset_current_ids(token: contextvars.Token) -> None:
    _CURRENT_IDS.reset(token)


def to_wire(resp: SimResponse) -> tuple[int, bytes, dict[str, str], str]:
    """(status, body bytes, headers without Content-Type, content type) for the transport."""
    import orjson

    headers = {}
    content_type = None
    for k, v in (resp.headers or {}).items():
        if k.lower() == "content-type":
            content_type = v
        elif k.lower() != "content-length":
            headers[k] = v
    body = resp.body
    if body is None:
        data = b""
        content_type = content_type or "text/plain; charset=utf-8"
    elif isinstance(body, (dict, list)) or body is True or body is False:
        data = orjson.dumps(body)
        content_type = content_type or GRAPH_JSON
    elif isinstance(body, bytes):
        data = body
        content_type = content_type or "application/octet-stream"
    elif isinstance(body, str):
        data = body.encode("utf-8")
        content_type = content_type or "text/plain; charset=utf-8"
    else:
        data = orjson.dumps(body)
        content_type = content_type or GRAPH_JSON
    if resp.status in (204, 304):
        data = b""
    return resp.status, data, headers, content_type


def page_response(req: SimRequest, items: list[dict], *, context: str, page_size: int = 100, max_top: int | None = 999,
                  size_key: str | None = None) -> SimResponse:
    """One page of ``items`` with Graph's ``@odata.nextLink`` paging (signed ``$skiptoken``).

    ``items`` must be the full, stably ordered list (recomputed per page is fine for small
    lists).  ``$top`` (up to ``max_top``) sets the page size; ``sim.set_page_size(size_key, n)``
    overrides the default.  The nextLink repeats the query options, as Graph's do.
    """
    from .odata import ODataError, encode_query, parse_top

    q = dict(req.query)
    token = q.pop("$skiptoken", None)
    offset = 0
    codec = req.sim._codec
    if token is not None:
        try:
            payload = codec.decode(token)
        except ODataError as exc:
            return graph_error(400, exc.code, exc.message)
        if payload.get("k") != "rpage" or payload.get("t") != req.tenant.tenant_id or payload.get("p") != req.path.lower():
            return graph_error(400, "BadRequest", "The provided $skiptoken is invalid: it was not issued for this resource.")
        offset = int(payload.get("o", 0))
    size = req.sim._page_sizes.get((size_key or "").lower()) or page_size
    if "$top" in q:
        if max_top is None:
            return graph_error(400, "BadRequest", "Query option '$top' is not supported on this resource.")
        try:
            size = parse_top(q["$top"], max_top)
        except ODataError as exc:
            return graph_error(400, exc.code, exc.message)
    page = items[offset: offset + size]
    body: dict = {"@odata.context": f"{req.sim.base_url}/{req.version}/$metadata#{context}", "value": page}
    nxt = offset + len(page)
    if nxt < len(items):
        tok = codec.encode({"k": "rpage", "t": req.tenant.tenant_id, "p": req.path.lower(), "o": nxt})
        items_q = [(k, v) for k, v in q.items()] + [("$skiptoken", tok)]
        body["@odata.nextLink"] = f"{req.sim.base_url}/{req.version}{req.path}?{encode_query(items_q)}"
    return SimResponse(200, body)
