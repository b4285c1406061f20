"""Request routing for the simulator: login service vs Graph, and Graph's checks in order.

Graph requests pass, in this order (the order a real service applies them, as far as the
simulator models it): throttle knob -> bearer token -> page delay -> route (routes.py) or
endpoint row -> method -> throttling budget -> app permission -> licence -> query validation
and handler.  Each step answers with Graph's own error body, so a client sees the real
failure shapes.  ``/_download/reports/...`` (the usage reports' pre-authenticated CSV links)
needs no token at all.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, unquote_plus

import orjson

from . import app_limits, auth, request_log, routes
from .downloads import DOWNLOAD_PREFIX
from .endpoints import lookup
from .graph_routes import download
from .handlers import DeltaExpired, GraphRequest, handle
from .odata import ODataError, encode_query, parse_query
from .responses import RequestIds, Response, aad_error, graph_error, throttled

if TYPE_CHECKING:  # pragma: no cover
    from .core import SimCore
    from .tenant import SimTenant

__all__ = ["route"]


def route(sim: "SimCore", method: str, path: str, raw_query: str, headers, body: bytes,
          ids: RequestIds) -> Response:
    if path.startswith("/v1.0/") or path.startswith("/beta/") or path in ("/v1.0", "/beta"):
        return _graph(sim, method, path, raw_query, headers, ids, body)
    if path.startswith(DOWNLOAD_PREFIX):
        if method != "GET":
            return Response(405, b"", {"Allow": "GET"}, "text/plain")
        return download(sim, path, headers)
    return _login(sim, method, path, headers, body)


def _login(sim: "SimCore", method: str, path: str, headers, body: bytes) -> Response:
    parts = [p for p in path.split("/") if p]
    if method == "GET" and len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
        return auth.openid_configuration(sim, parts[0])
    if method == "GET" and len(parts) == 4 and parts[1:] == ["discovery", "v2.0", "keys"]:
        return Response(200, b'{"keys":[]}', {}, "application/json; charset=utf-8")
    if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
        if method != "POST":
            return aad_error(405, "invalid_request", 900561,
                             f"The endpoint only accepts POST, OPTIONS requests. Received a {method} request.")
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            form = {}
        return auth.token_endpoint(sim, parts[0], form, _basic_auth(headers.get("Authorization")))
    return aad_error(404, "invalid_request", 900561, f"The endpoint {path} is not served by this simulator.")


def _graph(sim: "SimCore", method: str, path: str, raw_query: str, headers, ids: RequestIds,
           body: bytes = b"") -> Response:
    knob = sim._knobs.throttles.take(path)
    if knob is not None:
        return throttled(knob[0], knob[1], ids)
    tenant, client_id, problem = _authenticate(sim, headers, ids)
    if problem is not None:
        return problem
    assert tenant is not None
    started = time.time()
    resp = _graph_authenticated(sim, method, path, raw_query, headers, ids, tenant, client_id, body)
    resp.tenant_id = tenant.tenant_id
    request_log.note(sim, tenant, client_id, headers, path, resp.status, started)  # off unless attached
    return resp


def _authenticate(sim: "SimCore", headers, ids: RequestIds):
    www = {"WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
                               'client_id="00000003-0000-0000-c000-000000000000"'}
    authz = headers.get("Authorization") or ""
    scheme, _, token = authz.partition(" ")
    token = token.strip()
    if not authz or scheme.lower() != "bearer" or not token:
        return None, None, graph_error(401, "InvalidAuthenticationToken", "Access token is empty.", ids, www)
    issued = sim.tokens.resolve(token)
    tenant = sim._tenants.get(issued.tenant_id.lower()) if issued else None
    if issued is None or tenant is None or issued.expires_at <= sim.now() or issued.generation != tenant.token_generation:
        return None, None, graph_error(401, "InvalidAuthenticationToken",
                                       "Access token has expired or is not yet valid.", ids, www)
    return tenant, issued.client_id, None


def _graph_authenticated(sim: "SimCore", method: str, path: str, raw_query: str, headers, ids: RequestIds,
                         tenant: "SimTenant", client_id: str, body: bytes = b"") -> Response:
    if sim.page_delay > 0:
        sim._stop_event.wait(sim.page_delay)
    version, _, rest = path.lstrip("/").partition("/")
    rest = "/" + rest
    decoded = unquote(rest)
    route, match, route_known = routes.match(method, version, decoded)
    if route is not None:
        return _routed(sim, route, match, method, version, decoded, raw_query, headers, body, ids, tenant, client_id)
    ep = lookup(version, rest)
    if ep is None:
        if route_known:
            return graph_error(405, "Request_BadRequest",
                               f"The HTTP method '{method}' is not supported on '{decoded}' by the simulator.", ids)
        segment = rest.rstrip("/").rsplit("/", 1)[-1] or version
        return graph_error(400, "BadRequest", f"Resource not found for the segment '{segment}'.", ids)
    if method != "GET":
        return graph_error(405, "Request_BadRequest" if ep.throttle == "directory" else "BadRequest",
                           f"The HTTP method '{method}' is not supported on '{ep.path}' by the simulator.", ids)
    if sim.enforce_budgets:
        ok, retry_after = sim._budgets.check(tenant.tenant_id, client_id, ep.throttle, sim.now())
        if not ok:
            return throttled(429, retry_after, ids)
    refused = app_limits.check(sim, client_id, ep.throttle, ids)  # per app across tenants; opt-in
    if refused is not None:
        return refused
    for requirement in ep.permissions:
        if not tenant.has_permission(requirement):
            status, code, message = ep.missing_permission
            return graph_error(status, code, message, ids)
    if not tenant.has_capability(ep.capability):
        status, code, message = ep.unlicensed or (403, "Forbidden", "The tenant is not licensed for this resource.")
        return graph_error(status, code, message, ids)
    try:
        query = parse_query(raw_query)
        req = GraphRequest(
            tenant=tenant, version=version, endpoint=ep, query=query,
            prefer=(headers.get("Prefer") or "").lower(), base_url=sim.base_url, now=sim.now(),
            codec=sim._codec, snapshots=sim._snapshots, page_size=sim._page_sizes.get(ep.path.lower()),
            take_empty_page=lambda: sim._knobs.empty_pages.take(path) is not None,
        )
        return handle(req)
    except ODataError as exc:
        return graph_error(exc.status, exc.code, exc.message, ids, details=exc.code == "")
    except DeltaExpired as exc:
        if exc.mode == "410":
            items = [("$select", exc.select)] if exc.select else []
            items.append(("$deltatoken", ""))
            location = f"{sim.base_url}/{version}{ep.path}?{encode_query(items)}"
            return graph_error(410, "resyncRequired",
                               "Resync required. Replace any local cached data with the full resync response.",
                               ids, {"Location": location})
        return graph_error(400, "syncStateNotFound",
                           "The sync state generation is not found or has expired. Start a full synchronization.", ids)


def _routed(sim: "SimCore", route: "routes.Route", match, method: str, version: str, path: str, raw_query: str,
            headers, body: bytes, ids: RequestIds, tenant: "SimTenant", client_id: str) -> Response:
    if sim.enforce_budgets:
        cls = route.throttle
        scope = route.throttle_scope(match) if route.throttle_scope else None
        ok, retry_after = sim._budgets.check(tenant.tenant_id, client_id, cls, sim.now(), scope=scope)
        if not ok:
            return throttled(429, retry_after, ids)
    for requirement in route.permissions:
        if not tenant.has_permission(requirement):
            status, code, message = route.missing_permission
            return graph_error(status, code, message, ids)
    if not tenant.has_capability(route.capability):
        status, code, message = route.unlicensed or (403, "Forbidden", "The tenant is not licensed for this resource.")
        return graph_error(status, code, message, ids)
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name.lower() if name.startswith("$") else name] = value
    lower_headers = {k.lower(): v for k, v in headers.items()}
    parsed = None
    if body:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            if "json" in lower_headers.get("content-type", "").lower():
                return graph_error(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type "
                                                      "header is set and payload is of valid JSON format.", ids)
    req = routes.SimRequest(method=method, version=version, path=path, query=query, headers=lower_headers, body=body,
                            json=parsed, tenant=tenant, match=match, sim=sim)
    token = routes.set_current_ids(ids)
    try:
        out = route.handler(req)
    finally:
        routes.reset_current_ids(token)
    status, data, extra, content_type = routes.to_wire(out)
    return Response(status, data, extra, content_type)


def _basic_auth(value: str | None) -> tuple[str, str] | None:
    if not value or not value.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(value[6:].strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote_plus(user), unquote_plus(password)
