"""Response objects and the exact error shapes of Graph and of the Microsoft login service.

Every handler returns a ``Response``; the server only writes it (or mangles it, when a fault
is injected).  Keeping bodies in one place keeps them faithful to graph-facts §0.3 (Graph:
``{"error": {"code", "message", "innerError": {date, request-id, client-request-id}}}``) and
to the AAD token-endpoint shape (``error``, ``error_description`` with an ``AADSTS`` number,
``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``, ``error_uri``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import orjson

from .timefmt import inner_error_date

__all__ = ["Response", "graph_error", "throttled", "aad_error", "json_response", "GRAPH_JSON"]

GRAPH_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = GRAPH_JSON
    tenant_id: str | None = None


@dataclass(frozen=True)
class RequestIds:
    request_id: str
    client_request_id: str


def json_response(status: int, obj: object, content_type: str = GRAPH_JSON,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(status, orjson.dumps(obj), dict(headers or {}), content_type)


def graph_error(status: int, code: str, message: str, ids: RequestIds, headers: dict[str, str] | None = None,
                details: bool = False) -> Response:
    inner = {
        "date": inner_error_date(),
        "request-id": ids.request_id,
        "client-request-id": ids.client_request_id,
    }
    err: dict = {"code": code, "message": message}
    if details:  # some services add an empty details list (graph-facts §0.3, incidents $top)
        err["details"] = []
    err["innerError"] = inner
    return json_response(status, {"error": err}, headers=headers)


_STATUS_ERRORS = {
    429: ("TooManyRequests", "Please retry again later."),
    500: ("generalException", "An unspecified error has occurred."),
    502: ("badGateway", "The server, while acting as a gateway, received an invalid response."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable for maintenance or is overloaded. "
          "You may repeat the request after a delay, the length of which may be specified in a Retry-After header."),
    504: ("gatewayTimeout", "The server, while acting as a proxy, did not receive a timely response from the upstream server."),
}


def throttled(status: int, retry_after: float | None, ids: RequestIds) -> Response:
    """429 in the documented sample's shape (graph-facts §0.6), or a retryable 5xx."""
    code, message = _STATUS_ERRORS.get(status, ("generalException", "An unspecified error has occurred."))
    inner: dict = {}
    if status == 429:
        inner = {"code": "429", "date": inner_error_date(), "message": "Please retry after",
                 "request-id": ids.request_id, "status": "429",
                 "client-request-id": ids.client_request_id}
    else:
        inner = {"date": inner_error_date(), "request-id": ids.request_id,
                 "client-request-id": ids.client_request_id}
    headers = {}
    if retry_after is not None:
        # Graph sends integers; older docs showed 2.128, so floats are passed through verbatim.
        headers["Retry-After"] = str(int(retry_after)) if float(retry_after).is_integer() else repr(float(retry_after))
    return json_response(status, {"error": {"code": code, "innerError": inner, "message": message}}, headers=headers)


def aad_error(status: int, error: str, aadsts: int, text: str) -> Response:
    """A login.microsoftonline.com token-endpoint error body."""
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    desc = f"AADSTS{aadsts}: {text} Trace ID: {trace} Correlation ID: {corr} Timestamp: {stamp}"
    body = {
        "error": error,
        "error_description": desc,
        "error_codes": [aadsts],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
    }
    return Response(status, orjson.dumps(body), {}, "application/json; charset=utf-8")
