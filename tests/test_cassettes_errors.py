"""Endpoint constraints and Graph's error bodies, replayed from ``cassettes/errors/``.

(a) td-graph never sends the request a real tenant refuses: each constraint cassette holds the
    forbidden request (answered with the error Graph gives it) *and* the compliant one; the
    source's own run must match only the compliant interaction, and the strict matcher would
    refuse anything else (``gt`` is not ``ge``, ``$top=501`` is not ``$top=500``).
(b) The real ``GraphClient`` classifies each recorded error body as the engine needs it
    (bad request with an empty code, licence, permission, resync with Location, throttling
    with a fractional Retry-After, a 401 answered by one token re-acquisition).
"""

from __future__ import annotations

import pytest
from vcr.request import Request

from td_graph_plugin.collector.window import build_time_filter
from td_graph_plugin.config.model import HttpConfig
from td_graph_plugin.errors import (
    GraphBadRequest,
    GraphLicenceError,
    GraphPermissionError,
    GraphResyncRequired,
    GraphThrottled,
)
from tests.vcr_support import (
    CLIENT_SECRET,
    GRAPH,
    NOW,
    catalogue,
    graph_query,
    make_client,
    normalise_filter,
    planned_windows,
    replay,
    run_source,
)

PREFER = {"Prefer": "include-unknown-enum-members"}


def first_window_filter(name: str) -> str:
    spec = catalogue()[name]
    lo, hi = planned_windows(spec, NOW)[0]
    return build_time_filter(spec.time_field, spec.filter_ops, lo, hi, spec.extra_filter)


def forbidden_index(rep, predicate) -> int:
    (index,) = [i for i, (req, _) in enumerate(rep.cassette.data) if predicate(req)]
    return index


def call(cassette: str, path: str, params=None, headers=None, version="v1.0"):
    """One GET through a real GraphClient against ``cassette``; returns (error, replay, client)."""
    with replay(cassette) as rep:
        client = make_client()
        try:
            client.get_json(client.url(version, path), params=params, headers=headers)
        except Exception as exc:  # noqa: BLE001 - the classification is what is under test
            return exc, rep, client
        finally:
            client.close()
    raise AssertionError(f"{path}: the recorded error was not raised")


# --- (a) the source never sends the forbidden request ------------------------------------
def test_incidents_send_top_50_without_expand(tmp_path):
    run = run_source("security.incidents", "errors/incidents_top_over_50.yaml", tmp_path)
    assert run.result.status == "ok" and run.ids() == ["2972395"]
    (sent,) = run.graph
    assert sent.query["$top"] == "50" and "$expand" not in sent.query
    assert sent.header("Prefer") == "include-unknown-enum-members"
    forbidden = forbidden_index(run.replay, lambda r: "%24top=100" in r.uri)
    assert run.replay.unplayed() == [forbidden], "td-graph sent $top=100"
    assert catalogue()["security.incidents"].max_page_size == 50


def test_risk_detections_send_top_500(tmp_path):
    run = run_source("identity_protection.risk_detections", "errors/risk_detections_top_over_500.yaml", tmp_path)
    assert run.result.status == "ok" and run.ids() == ["6a5874ca-abcd-9d82-5ad39bd71600"]
    assert len(run.graph) == 7 and {p.query["$top"] for p in run.graph} == {"500"}
    forbidden = forbidden_index(run.replay, lambda r: "%24top=501" in r.uri)
    assert run.replay.unplayed() == [forbidden], "td-graph sent $top=501"


def test_sign_ins_filter_only_ge_and_le(tmp_path):
    run = run_source("audit_logs.sign_ins", "errors/sign_ins_gt_filter.yaml", tmp_path)
    assert run.result.status == "ok" and run.ids() == ["66ea54eb-6301-4ee5-be62-ff5a759b0100"]
    (sent,) = run.graph
    f = sent.query["$filter"]
    assert f == first_window_filter("audit_logs.sign_ins")
    assert " ge " in f and " le " in f and " gt " not in f and " lt " not in f
    forbidden = forbidden_index(run.replay, lambda r: "+gt+" in r.uri)
    assert run.replay.unplayed() == [forbidden], "td-graph sent createdDateTime gt"


@pytest.mark.parametrize("name", ["directory.users", "directory.groups", "directory.devices",
                                  "directory.applications", "directory.service_principals"])
def test_delta_sources_never_send_top(tmp_path, name):
    run = run_source(name, f"sources/{name}.yaml", tmp_path, runs=2 if name in ("directory.users", "directory.groups") else 1)
    assert all(r.status == "ok" for r in run.results)
    assert run.graph and not any("$top" in p.query for p in run.graph)
    assert catalogue()[name].page_size is None


def test_provisioning_sends_gt_and_lt_only(tmp_path):
    run = run_source("audit_logs.provisioning", "sources/audit_logs.provisioning.yaml", tmp_path)
    assert run.result.status == "ok"
    first = run.graph[0]
    assert first.query["$filter"] == first_window_filter("audit_logs.provisioning")
    assert normalise_filter(first.query["$filter"]) == (
        "activityDateTime gt <datetime> and activityDateTime lt <datetime>")


def _req(query: str) -> Request:
    return Request("GET", f"{GRAPH}/v1.0/auditLogs/signIns?{query}", None, {})


def test_matcher_normalises_instants_but_not_fields_operators_or_tokens():
    recorded = _req("%24top=1000&%24filter=createdDateTime+ge+2026-11-25T12%3A00%3A00Z+and+createdDateTime+le+2026-11-26T11%3A58%3A00Z")
    later = _req("%24filter=createdDateTime%20ge%202027-01-01T00:00:00.1234567Z%20and%20createdDateTime%20le%202027-01-02T00:00:00Z&%24top=1000")
    graph_query(later, recorded)  # other instants, other encoding, other order: same request
    for other in (
        "%24top=1000&%24filter=createdDateTime+gt+2026-11-25T12%3A00%3A00Z+and+createdDateTime+le+2026-11-26T11%3A58%3A00Z",
        "%24top=1000&%24filter=createdDateTime+ge+2026-11-25T12%3A00%3A00Z+and+createdDateTime+lt+2026-11-26T11%3A58%3A00Z",
        "%24top=1000&%24filter=activityDateTime+ge+2026-11-25T12%3A00%3A00Z+and+activityDateTime+le+2026-11-26T11%3A58%3A00Z",
        "%24top=999&%24filter=createdDateTime+ge+2026-11-25T12%3A00%3A00Z+and+createdDateTime+le+2026-11-26T11%3A58%3A00Z",
        "%24filter=createdDateTime+ge+2026-11-25T12%3A00%3A00Z+and+createdDateTime+le+2026-11-26T11%3A58%3A00Z",
    ):
        with pytest.raises(AssertionError):
            graph_query(_req(other), recorded)
    a = Request("GET", f"{GRAPH}/v1.0/users/delta?$skiptoken=abc", None, {})
    b = Request("GET", f"{GRAPH}/v1.0/users/delta?$skiptoken=abd", None, {})
    c = Request("GET", f"{GRAPH}/v1.0/users/delta?$deltatoken=2026-11-25T12:00:00Z", None, {})
    d = Request("GET", f"{GRAPH}/v1.0/users/delta?$deltatoken=2027-11-25T12:00:00Z", None, {})
    graph_query(a, a)
    with pytest.raises(AssertionError):
        graph_query(a, b)
    with pytest.raises(AssertionError):  # tokens are compared exactly, even if they look like instants
        graph_query(c, d)


# --- (b) the client's classification of each recorded body ------------------------------
def test_incidents_top_100_is_a_bad_request_with_an_empty_code():
    err, rep, _ = call("errors/incidents_top_over_50.yaml", "/security/incidents",
                       {"$top": "100", "$filter": first_window_filter("security.incidents"), "$count": "true"}, PREFER)
    assert type(err) is GraphBadRequest
    assert err.status == 400 and err.code == ""
    assert err.detail == ("The query specified in the URI is not valid. The limit of '50' for Top query has been "
                          "exceeded. The value from the incoming request is '100'.")
    assert err.request_id and err.path == "/v1.0/security/incidents"
    assert [p.status for p in rep.graph] == [400], "a 400 must not be retried"


def test_risk_detections_top_501_is_a_bad_request():
    err, rep, _ = call("errors/risk_detections_top_over_500.yaml", "/identityProtection/riskDetections",
                       {"$top": "501", "$filter": first_window_filter("identity_protection.risk_detections")})
    assert type(err) is GraphBadRequest and err.status == 400 and err.code == ""
    assert "The limit of '500' for Top query has been exceeded" in err.detail
    assert len(rep.graph) == 1


def test_sign_ins_gt_filter_is_a_bad_request():
    spec = catalogue()["audit_logs.sign_ins"]
    lo, hi = planned_windows(spec, NOW)[0]
    err, rep, _ = call("errors/sign_ins_gt_filter.yaml", "/auditLogs/signIns",
                       {"$top": "1000", "$filter": build_time_filter("createdDateTime", ("gt", "lt"), lo, hi)})
    assert type(err) is GraphBadRequest and err.code == "BadRequest" and err.detail == "Invalid filter clause"
    assert err.request_id == rep.cassette.data[rep.graph[0].index][1]["headers"]["request-id"][0]


def test_throttled_429_waits_the_fractional_retry_after_then_succeeds(tmp_path):
    run = run_source("audit_logs.sign_ins", "errors/sign_ins_throttled.yaml", tmp_path)
    assert run.result.status == "ok" and run.ids() == ["66ea54eb-6301-4ee5-be62-ff5a759b0100"]
    assert [p.status for p in run.graph] == [429, 200]
    assert run.sleeps == [2.128], "Retry-After: 2.128 must be honoured as a float, once"
    # The class penalty set by the 429 has elapsed when the retry goes out: no second wait.
    assert run.pacing == []


def test_throttled_429_is_classified_with_retry_after():
    with replay("errors/sign_ins_throttled.yaml") as rep:
        sleeps: list[float] = []
        client = make_client(sleeps=sleeps, http=HttpConfig(max_retries=0))
        with pytest.raises(GraphThrottled) as info:
            client.get_json(client.url("v1.0", "/auditLogs/signIns"),
                            params={"$top": "1000", "$filter": first_window_filter("audit_logs.sign_ins")})
        client.close()
    err = info.value
    assert err.status == 429 and err.code == "TooManyRequests" and err.retry_after == 2.128
    assert err.detail == "Please retry again later."
    assert err.request_id == "94fb3b52-452a-4535-a601-69e0a90e3aa2"  # from innerError (no header)
    assert sleeps == [] and len(rep.graph) == 1


def test_non_premium_tenant_is_a_licence_error(tmp_path):
    err, _, _ = call("errors/sign_ins_non_premium.yaml", "/auditLogs/signIns",
                     {"$top": "1000", "$filter": first_window_filter("audit_logs.sign_ins")})
    assert type(err) is GraphLicenceError
    assert err.status == 403 and err.code == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
    assert err.detail == "Neither tenant is B2C or tenant doesn't have premium license"
    assert err.request_id == "2501535b-2fd7-43e3-87db-c12cbe31fca0"
    run = run_source("audit_logs.sign_ins", "errors/sign_ins_non_premium.yaml", tmp_path)
    assert run.result.status == "unlicensed" and run.records == []


def test_missing_application_roles_is_a_permission_error(tmp_path):
    err, _, _ = call("errors/alerts_missing_roles.yaml", "/security/alerts_v2",
                     {"$top": "1000", "$filter": first_window_filter("security.alerts_v2"), "$count": "true"},
                     PREFER)
    assert type(err) is GraphPermissionError
    assert err.status == 403 and err.code == "Forbidden"
    assert err.detail.startswith("Missing application roles. API required roles: SecurityAlert.Read.All,")
    run = run_source("security.alerts_v2", "errors/alerts_missing_roles.yaml", tmp_path)
    assert run.result.status == "forbidden" and run.records == []


def test_msgraph_permission_missing_is_a_permission_error(tmp_path):
    err, _, _ = call("errors/provisioning_permission_missing.yaml", "/auditLogs/provisioning",
                     {"$filter": first_window_filter("audit_logs.provisioning")})
    assert type(err) is GraphPermissionError
    assert err.code == "Authentication_MSGraphPermissionMissing"
    assert err.detail == "Calling principal does not have required MSGraph permissions AuditLog.Read.All"
    run = run_source("audit_logs.provisioning", "errors/provisioning_permission_missing.yaml", tmp_path)
    assert run.result.status == "forbidden"


def test_request_not_applicable_to_target_tenant_is_a_licence_error(tmp_path):
    err, _, _ = call("errors/intune_not_applicable.yaml", "/deviceManagement/managedDevices")
    assert type(err) is GraphLicenceError
    assert err.status == 400 and err.code == "BadRequest" and err.detail == "Request not applicable to target tenant."
    run = run_source("intune.managed_devices", "errors/intune_not_applicable.yaml", tmp_path)
    assert run.result.status == "unlicensed"


def test_gone_delta_link_is_a_resync_with_location():
    delta_link = ("https://graph.microsoft.com/v1.0/users/delta?$deltatoken=oEcOySpF_hWYmTIUZBOIfPzcwisr_rPe8o9M54L45qEXQG"
                  "mvQC6T2dbL-9O7nSU-njKhFiGlAZqewNAThmCVnNxqPu5gOBegrm1CaVZ-ZtFZ2tPOAO98OD9y0ao460")
    with replay("errors/users_delta_gone.yaml") as rep:
        client = make_client()
        with pytest.raises(GraphResyncRequired) as info:
            client.get_json(delta_link)
        client.close()
    err = info.value
    assert err.status == 410 and err.location == "https://graph.microsoft.com/v1.0/users/delta?$deltatoken="
    assert [p.status for p in rep.graph] == [410]


def test_gone_delta_link_restarts_a_full_sync(tmp_path):
    run = run_source("directory.users", "errors/users_delta_gone.yaml", tmp_path, runs=2)
    assert [r.status for r in run.results] == ["ok", "ok"]
    assert run.replay.unplayed() == []
    statuses = [p.status for p in run.graph]
    assert statuses == [200, 200, 200, 410, 200, 200, 200]
    restart = run.graph[4]
    assert restart.path == "/v1.0/users/delta" and "$top" not in restart.query and "$select" in restart.query
    # The resync re-reads unchanged objects without emitting them again; the documented
    # permanent deletion on page 1 is reported again (removals are always delivered).
    second = run.records[8:]
    assert [(r["id"], r.get("removed")) for r in second] == [("86462606-fde0-4fc4-9e0c-a20eb73e54c6", "deleted")]


def test_expired_token_mid_paging_is_reacquired_once(tmp_path):
    run = run_source("audit_logs.directory_audits", "errors/directory_audits_token_expired.yaml", tmp_path)
    assert run.result.status == "ok"
    assert run.ids() == ["id", "SSGM_b662f17a-4e4d-4e1c-9248-cdec180024b2_MCDC4_88453290"]
    assert [p.status for p in run.graph] == [200, 401, 200]
    assert len(run.replay.token_posts) == 2, "exactly one new token after the 401"
    order = [("token" if p.path.endswith("/token") else p.status) for p in run.played[1:]]
    assert order == ["token", 200, 401, "token", 200]
    assert run.graph[1].uri == run.graph[2].uri  # the same nextLink is retried
    assert run.replay.unplayed() == []
    assert run.sleeps == []  # a 401 is not a backoff


def test_error_messages_carry_no_secret():
    for cassette, path, params in (
        ("errors/sign_ins_non_premium.yaml", "/auditLogs/signIns",
         {"$top": "1000", "$filter": first_window_filter("audit_logs.sign_ins")}),
        ("errors/intune_not_applicable.yaml", "/deviceManagement/managedDevices", None),
    ):
        err, _, _ = call(cassette, path, params)
        assert CLIENT_SECRET not in str(err) and "REDACTED" not in str(err)
