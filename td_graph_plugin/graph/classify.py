"""Turn a failed Graph request into the right ``GraphError`` (graph-facts §0.3), and say
whether another attempt can help.

Graph's error body is ``{"error": {"code", "message", "innerError"|"innererror": {...}}}``;
``code`` may be empty and the inner key's casing varies.  Classification prefers the code;
two signals only exist in the message (Intune's licence error, Identity Protection's
missing scope), and those are matched on the message as documented.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from http import HTTPStatus

import orjson
import requests

from ..errors import (
    GraphBadRequest,
    GraphConditionalAccess,
    GraphError,
    GraphForbidden,
    GraphLicenceError,
    GraphNotFound,
    GraphPermissionError,
    GraphResponseError,
    GraphResyncRequired,
    GraphThrottled,
    GraphTransient,
    GraphUnauthorized,
)

__all__ = [
    "classify",
    "classify_transport",
    "is_retryable",
    "parse_retry_after",
    "header",
    "scrub",
    "PERMISSION_CODES",
    "RETRY_STATUSES",
    "TRANSPORT_ERRORS",
]

PERMISSION_CODES = frozenset(
    c.lower()
    for c in (
        "Authentication_MSGraphPermissionMissing",
        "Authentication_ApplicationHasNoReadAuditLogDataAccess",
        "Authorization_RequestDenied",
        "accessDenied",
    )
)
LICENCE_CODES = frozenset(c.lower() for c in ("Authentication_RequestFromNonPremiumTenantOrB2CTenant",))
RESYNC_CODES = frozenset(c.lower() for c in ("syncStateNotFound", "resyncRequired"))
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError,  # includes ConnectTimeout, SSLError, ProxyError
    requests.exceptions.Timeout,  # ReadTimeout
    requests.exceptions.ChunkedEncodingError,  # truncated chunked body / IncompleteRead
    requests.exceptions.ContentDecodingError,
)

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_MAX_MESSAGE = 600


def scrub(text: str) -> str:
    """Remove anything that looks like a bearer token from text meant for an operator."""
    text = _JWT.sub("***", text)
    text = _BEARER.sub(r"\1***", text)
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 3] + "..."
    return text


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup on any mapping."""
    if not headers:
        return None
    try:
        v = headers.get(name)
    except Exception:
        v = None
    if v is not None:
        return v
    lname = name.lower()
    for k, v in headers.items():
        if isinstance(k, str) and k.lower() == lname:
            return v
    return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a (possibly fractional) number or an HTTP-date."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT
            from datetime import timezone

            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


def _error_object(body: bytes | None) -> dict:
    if not body:
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            return err
    return {}


def _inner(err: dict) -> dict:
    for k in ("innerError", "innererror", "InnerError"):
        v = err.get(k)
        if isinstance(v, dict):
            return v
    return {}


def _describe(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "unexpected status"
    return f"Graph answered {status} {phrase}"


def classify(status: int, body: bytes | None, headers: Mapping[str, str], path: str) -> GraphError:
    """The ``GraphError`` subclass for a non-success Graph response.

    ``path`` is the URL path without its query string (nextLinks and report URLs carry
    tokens); a query string, if passed anyway, is cut off.
    """
    path = (path or "").split("?", 1)[0].split("#", 1)[0] or None
    err = _error_object(body)
    inner = _inner(err)
    code = err.get("code") if isinstance(err.get("code"), str) else ""
    message = err.get("message") if isinstance(err.get("message"), str) else ""
    message = scrub(message.strip()) if message else _describe(status)
    request_id = header(headers, "request-id") or inner.get("request-id") or inner.get("requestId")
    if request_id is not None and not isinstance(request_id, str):
        request_id = str(request_id)
    lcode = code.lower()
    lmsg = message.lower()
    retry_after = parse_retry_after(header(headers, "Retry-After"))
    kw = dict(status=status, code=code, request_id=request_id, path=path)

    if status == 410 or lcode in RESYNC_CODES:
        e = GraphResyncRequired(message, **kw)
        e.location = header(headers, "Location")
        return e
    if status == 401:
        return GraphUnauthorized(message, **kw)
    if status == 429:
        return GraphThrottled(message, retry_after=retry_after, **kw)
    if status == 400 and "request not applicable to target tenant" in lmsg:
        return GraphLicenceError(message, **kw)
    if status == 403:
        if lcode in LICENCE_CODES:
            return GraphLicenceError(message, **kw)
        www = (header(headers, "WWW-Authenticate") or "").lower()
        raw = (body or b"")[:65536].lower()
        if "insufficient_claims" in www or b"insufficient_claims" in raw or lcode == "insufficient_claims":
            return GraphConditionalAccess(message, **kw)
        if (
            lcode in PERMISSION_CODES
            or (lcode == "forbidden" and lmsg.startswith("missing application roles"))
            or "required scopes are missing in the token" in lmsg
        ):
            return GraphPermissionError(message, **kw)
        return GraphForbidden(message, **kw)
    if status == 404:
        return GraphNotFound(message, **kw)
    if 500 <= status <= 599:
        return GraphTransient(message, retry_after=retry_after, **kw)
    if 400 <= status <= 499:
        return GraphBadRequest(message, **kw)
    return GraphResponseError(message if err else _describe(status), **kw)


def is_retryable(err: GraphError) -> bool:
    """Whether the same request may succeed when sent again: 429, 500, 502, 503, 504, a
    2xx body that is not the JSON it should be, and a request that got no response."""
    return isinstance(err, (GraphThrottled, GraphResponseError)) or (
        isinstance(err, GraphTransient) and (err.status is None or err.status in RETRY_STATUSES)
    )


def _transport_message(host: str, e: BaseException) -> str:
    if isinstance(e, requests.exceptions.SSLError):
        return f"cannot reach {host}: TLS verification failed (add the CA with ca_bundle if a proxy inspects TLS)"
    if isinstance(e, requests.exceptions.ProxyError):
        return f"cannot reach {host}: the proxy failed the connection"
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return f"cannot reach {host}: connection timed out"
    if isinstance(e, requests.exceptions.ReadTimeout):
        return f"{host} did not answer in time (read timeout)"
    if isinstance(e, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return f"{host} closed the connection mid-response (truncated body)"
    text = str(e)
    if "Connection refused" in text:
        return f"cannot reach {host}: connection refused"
    if "resolution" in text or "not known" in text or "getaddrinfo" in text:
        return f"cannot reach {host}: the host name does not resolve"
    return f"connection to {host} failed ({type(e).__name__})"


def classify_transport(e: BaseException, host: str, path: str) -> tuple[GraphTransient, bool]:
    """A request that got no response (one of ``TRANSPORT_ERRORS``) as a ``GraphTransient``
    saying what failed, and whether to retry it: not after a TLS verification failure,
    since a certificate that does not verify will not verify on the next attempt either."""
    err = GraphTransient(_transport_message(host, e), path=path)
    return err, not isinstance(e, requests.exceptions.SSLError)
