"""classify(): every documented Graph error shape maps to the right GraphError."""

from __future__ import annotations

import email.utils
import time

import orjson
import pytest

from td_graph_plugin.errors import (
    GraphBadRequest,
    GraphConditionalAccess,
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
from td_graph_plugin.graph.classify import classify, parse_retry_after


def body(code: str, message: str, inner_key: str = "innerError", rid: str | None = "rid-1") -> bytes:
    inner = {"date": "2026-01-01T00:00:00"}
    if rid:
        inner["request-id"] = rid
    return orjson.dumps({"error": {"code": code, "message": message, inner_key: inner}})


CASES = [
    # (status, code, message, headers, expected class)
    (401, "InvalidAuthenticationToken", "Access token has expired.", {}, GraphUnauthorized),
    (403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
     "Neither tenant is B2C or tenant doesn't have premium license", {}, GraphLicenceError),
    (400, "BadRequest", "Request not applicable to target tenant.", {}, GraphLicenceError),
    (403, "Authentication_MSGraphPermissionMissing",
     "Calling principal does not have required MSGraph permissions AuditLog.Read.All", {}, GraphPermissionError),
    (403, "Authentication_ApplicationHasNoReadAuditLogDataAccess",
     "Application missing MSGraph API 'Read all audit log data' permission", {}, GraphPermissionError),
    (403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", {},
     GraphPermissionError),
    (403, "accessDenied", "Access denied", {}, GraphPermissionError),
    (403, "Forbidden", "Missing application roles. API required roles: SecurityAlert.Read.All,"
                       "SecurityAlert.ReadWrite.All, application roles: .", {}, GraphPermissionError),
    (403, "", "You cannot perform the requested operation, required scopes are missing in the token.", {},
     GraphPermissionError),
    (403, "Forbidden", "Access has been blocked by Conditional Access policies. error=insufficient_claims", {},
     GraphConditionalAccess),
    (403, "Forbidden", "Blocked", {"WWW-Authenticate": 'Bearer realm="", error="insufficient_claims", '
                                                        'claims="eyJhY2Nlc3MiOnt9fQ=="'}, GraphConditionalAccess),
    (403, "Forbidden", "Something else", {}, GraphForbidden),
    (403, "", "", {}, GraphForbidden),
    (404, "Request_ResourceNotFound", "Resource does not exist", {}, GraphNotFound),
    (410, "", "", {"Location": "https://graph.microsoft.com/v1.0/users/delta?$deltatoken="}, GraphResyncRequired),
    (400, "syncStateNotFound", "The sync state is not found", {}, GraphResyncRequired),
    (400, "resyncRequired", "Resync required", {}, GraphResyncRequired),
    (429, "TooManyRequests", "Please retry again later.", {"Retry-After": "10"}, GraphThrottled),
    (500, "UnknownError", "", {}, GraphTransient),
    (502, "", "", {}, GraphTransient),
    (503, "ServiceUnavailable", "Service unavailable", {"Retry-After": "3"}, GraphTransient),
    (504, "GatewayTimeout", "", {}, GraphTransient),
    (400, "", "The query specified in the URI is not valid. The limit of '50' for Top query has been exceeded.",
     {}, GraphBadRequest),
    (405, "Request_BadRequest", "Method not allowed", {}, GraphBadRequest),
    (409, "Conflict", "conflict", {}, GraphBadRequest),
]


@pytest.mark.parametrize("status,code,message,headers,cls", CASES)
def test_mapping(status, code, message, headers, cls):
    err = classify(status, body(code, message), headers, "/v1.0/thing")
    assert type(err) is cls
    assert err.status == status
    assert err.code == code
    assert err.path == "/v1.0/thing"
    assert err.request_id == "rid-1"
    if message:
        assert err.detail == message
    else:
        assert err.detail  # a short description instead of nothing
        assert str(status) in err.detail


def test_kinds_are_distinct_labels():
    kinds = {type(classify(s, body(c, m), h, "/p")).kind for s, c, m, h, _ in CASES}
    assert {"auth", "licence", "permission", "conditional_access", "forbidden", "not_found", "resync",
            "throttled", "transient", "bad_request"} <= kinds


def test_innererror_lowercase_and_header_request_id():
    e = classify(403, body("accessDenied", "no", inner_key="innererror", rid="inner-rid"), {}, "/p")
    assert e.request_id == "inner-rid"
    # The header wins, looked up case-insensitively on any mapping.
    e = classify(403, body("accessDenied", "no", rid="inner-rid"), {"Request-Id": "hdr-rid"}, "/p")
    assert e.request_id == "hdr-rid"
    e = classify(404, None, {}, "/p")
    assert e.request_id is None


def test_resync_keeps_location():
    loc = "https://graph.microsoft.com/v1.0/users/delta?$deltatoken="
    e = classify(410, b"", {"location": loc}, "/v1.0/users/delta")
    assert isinstance(e, GraphResyncRequired) and e.location == loc
    e = classify(400, body("syncStateNotFound", "x"), {}, "/v1.0/users/delta")
    assert e.location is None


def test_retry_after_parsing():
    e = classify(429, body("TooManyRequests", "x"), {"Retry-After": "2.128"}, "/p")
    assert e.retry_after == pytest.approx(2.128)
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    e = classify(429, b"", {"retry-after": when}, "/p")
    assert 117 <= e.retry_after <= 121
    assert classify(429, b"", {}, "/p").retry_after is None  # Identity Protection sends none
    assert classify(503, b"", {"Retry-After": "7"}, "/p").retry_after == 7
    assert parse_retry_after("garbage") is None
    assert parse_retry_after("-5") == 0
    assert parse_retry_after("nan") is None
    assert parse_retry_after(email.utils.formatdate(0, usegmt=True)) == 0  # in the past


def test_non_json_and_odd_bodies():
    e = classify(502, b"<html>Bad gateway</html>", {}, "/p")
    assert isinstance(e, GraphTransient) and "502" in e.detail
    e = classify(403, b'{"error": "string-not-object"}', {}, "/p")
    assert type(e) is GraphForbidden
    e = classify(403, b'[1,2]', {}, "/p")
    assert type(e) is GraphForbidden
    e = classify(302, b"", {}, "/p")
    assert isinstance(e, GraphResponseError)


def test_query_string_never_in_path_and_tokens_scrubbed():
    jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwcyJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    e = classify(401, body("InvalidAuthenticationToken", f"Token {jwt} is invalid, Bearer {jwt}"), {},
                 "/v1.0/auditLogs/signIns?$skiptoken=SECRETSKIP")
    assert e.path == "/v1.0/auditLogs/signIns"
    assert "SECRETSKIP" not in str(e)
    assert jwt not in str(e)
    assert "***" in str(e)


def test_message_is_graphs_message():
    e = classify(403, body("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
                 {}, "/v1.0/users/x")
    assert str(e).startswith("Insufficient privileges to complete the operation.")
    assert "HTTP 403" in str(e) and "Authorization_RequestDenied" in str(e) and "rid-1" in str(e)
