"""Tests of the Graph simulator, driven with real clients (requests + msal) over TLS.

Note: ``requests`` lets ``REQUESTS_CA_BUNDLE`` from the environment override
``Session.verify``; sessions here set ``trust_env = False`` so the simulator's CA is used.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import io
import ssl
import threading
import time

import msal
import orjson
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from td_graph_plugin.simulator import GraphSimulator, SimTenant, serve
from td_graph_plugin.simulator.timefmt import format_ts, parse_ts
from tests.sim_client import SCOPE, Graph, session, token_for

pytestmark = pytest.mark.timeout(60)



# ----------------------------------------------------------------------------- helpers

@pytest.fixture
def sim():
    s = GraphSimulator()
    s.start()
    yield s
    s.stop()


def make_cert(common_name: str = "td-graph-test") -> tuple[str, str, str]:
    """(private key PEM, certificate PEM, SHA-1 thumbprint hex) for a self-signed app cert."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return key_pem, cert_pem, cert.fingerprint(hashes.SHA1()).hex().upper()


def msal_app(sim: GraphSimulator, t: SimTenant, credential) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        t.client_id, client_credential=credential, authority=f"{sim.base_url}/{t.tenant_id}",
        instance_discovery=False, http_client=session(sim))


def assert_graph_error(r: requests.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    inner = err["innerError"]
    assert inner["request-id"] == r.headers["request-id"]
    assert inner["client-request-id"] == r.headers["client-request-id"]
    return err


# ----------------------------------------------------------------------------- login service

def test_msal_client_secret_token_works_on_graph(sim):
    t = sim.add_tenant(profile="e5")
    result = msal_app(sim, t, t.client_secret).acquire_token_for_client(scopes=[SCOPE])
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer" and result["expires_in"] == 3599
    # Shaped like Entra's app-only tokens for Graph: the middle part is base64url JSON carrying
    # the granted app roles (every role for an e5 tenant with nothing withheld); "sim." first.
    head, payload, _sig = result["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert head == "sim" and claims["tid"] == t.tenant_id and claims["appid"] == t.client_id
    assert claims["roles"] == sorted(sim.role_names()) and "AuditLog.Read.All" in claims["roles"]
    paths = [r.path for r in sim.requests]
    assert paths == [f"/{t.tenant_id}/v2.0/.well-known/openid-configuration", f"/{t.tenant_id}/oauth2/v2.0/token"]
    s = session(sim)
    r = s.get(f"{sim.base_url}/v1.0/auditLogs/signIns?$top=5",
              headers={"Authorization": "Bearer " + result["access_token"]})
    assert r.status_code == 200 and len(r.json()["value"]) == 5
    assert sim.requests[-1].tenant_id == t.tenant_id


def test_msal_certificate_credentials_rs256_and_ps256(sim):
    key_pem, cert_pem, thumb = make_cert()
    t = sim.add_tenant(profile="e5", certificate_pem=cert_pem)
    # thumbprint given -> RS256 with x5t (SHA-1)
    r1 = msal_app(sim, t, {"private_key": key_pem, "thumbprint": thumb}).acquire_token_for_client(scopes=[SCOPE])
    assert "access_token" in r1, r1
    # public certificate given -> newer msal signs PS256 with x5t#S256
    r2 = msal_app(sim, t, {"private_key": key_pem, "public_certificate": cert_pem}).acquire_token_for_client(scopes=[SCOPE])
    assert "access_token" in r2, r2
    assert r1["access_token"] != r2["access_token"]
    # a different key claiming the registered thumbprint fails signature validation
    other_key, _, _ = make_cert("attacker")
    r3 = msal_app(sim, t, {"private_key": other_key, "thumbprint": thumb}).acquire_token_for_client(scopes=[SCOPE])
    assert r3.get("error") == "invalid_client" and 7000274 in r3["error_codes"]
    # an unregistered certificate is refused by thumbprint
    k4, c4, th4 = make_cert("unregistered")
    r4 = msal_app(sim, t, {"private_key": k4, "thumbprint": th4}).acquire_token_for_client(scopes=[SCOPE])
    assert r4.get("error") == "invalid_client" and 700027 in r4["error_codes"]
    # moving the simulator clock (for late events / expiry) does not break assertion checks
    sim.clock_offset = 7200
    r5 = msal_app(sim, t, {"private_key": key_pem, "thumbprint": thumb}).acquire_token_for_client(scopes=[SCOPE])
    assert "access_token" in r5, r5


def test_wrong_secret_is_invalid_client_7000215(sim):
    t = sim.add_tenant(profile="e5")
    result = msal_app(sim, t, "not-the-secret").acquire_token_for_client(scopes=[SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert sim.requests[-1].status == 401


def test_token_endpoint_rejects_unknown_tenant_client_and_bad_scope(sim):
    t = sim.add_tenant(profile="e5")
    s = session(sim)
    form = {"grant_type": "client_credentials", "client_id": t.client_id, "client_secret": t.client_secret, "scope": SCOPE}
    r = s.post(f"{sim.base_url}/00000000-0000-0000-0000-000000000001/oauth2/v2.0/token", data=form)
    assert r.status_code == 400 and r.json()["error_codes"] == [90002]
    r = s.post(f"{sim.base_url}/{t.tenant_id}/oauth2/v2.0/token", data={**form, "client_id": "11111111-2222-3333-4444-555555555555"})
    assert r.status_code == 400 and r.json()["error_codes"] == [700016]
    r = s.post(f"{sim.base_url}/{t.tenant_id}/oauth2/v2.0/token", data={**form, "scope": "User.Read"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope" and r.json()["error_codes"] == [70011]
    # the tenant's onmicrosoft.com domain works as the authority segment too
    r = s.post(f"{sim.base_url}/{t.domain}/oauth2/v2.0/token", data=form)
    assert r.status_code == 200


def test_missing_expired_and_revoked_tokens_are_401(sim):
    t = sim.add_tenant(profile="e5")
    g = Graph(sim, t)
    r = g.s.get(sim.base_url + "/v1.0/auditLogs/directoryAudits")
    assert_graph_error(r, 401, "InvalidAuthenticationToken")
    assert "WWW-Authenticate" in r.headers
    assert g.get("/v1.0/auditLogs/directoryAudits").status_code == 200
    t.revoke_tokens()
    err = assert_graph_error(g.get("/v1.0/auditLogs/directoryAudits"), 401, "InvalidAuthenticationToken")
    assert err["message"] == "Access token has expired or is not yet valid."
    sim.token_lifetime = 60
    g2 = Graph(sim, t)
    assert g2.get("/v1.0/auditLogs/directoryAudits").status_code == 200
    sim.clock_offset = 61
    assert_graph_error(g2.get("/v1.0/auditLogs/directoryAudits"), 401, "InvalidAuthenticationToken")


def test_request_log_records_authorization_without_secrets(sim):
    t = sim.add_tenant(profile="e5")
    g = Graph(sim, t)
    g.get("/v1.0/auditLogs/signIns?$top=1", headers={"client-request-id": "abc-123"})
    rec = sim.requests[-1]
    assert rec.has_authorization is True and rec.authorization_scheme == "Bearer"
    assert rec.status == 200 and rec.query == {"$top": "1"} and rec.tenant_id == t.tenant_id
    dump = repr(sim.requests)
    assert g.token not in dump and t.client_secret not in dump
    token_rec = [r for r in sim.requests if r.method == "POST"][0]
    assert token_rec.has_authorization is False and token_rec.query == {}
    # a client that wrongly puts a secret in a URL still does not get it recorded
    g.s.get(f"{sim.base_url}/{t.tenant_id}/oauth2/v2.0/token?client_secret={t.client_secret}")
    assert sim.requests[-1].query == {"client_secret": "<redacted>"}
    assert t.client_secret not in repr(sim.requests)
    sim.clear_requests()
    assert sim.requests == []


# ----------------------------------------------------------------------------- sign-ins and paging

def test_sign_ins_page_newest_first_without_duplicates(sim):
    t = sim.add_tenant(profile="e5", volumes={"sign_ins": 2500})
    g = Graph(sim, t)
    r = g.get("/v1.0/auditLogs/signIns", headers={"client-request-id": "req-1"})
    assert r.headers["client-request-id"] == "req-1" and r.headers["request-id"]
    first = r.json()
    assert len(first["value"]) == 1000  # default = max = 1000
    assert first["@odata.nextLink"].startswith(sim.base_url + "/v1.0/auditLogs/signIns?")
    assert "$skiptoken=" in first["@odata.nextLink"]
    items, pages = g.all_pages("/v1.0/auditLogs/signIns")
    assert pages == 3 and len(items) == 2500
    assert len({o["id"] for o in items}) == 2500
    stamps = [parse_ts(o["createdDateTime"]) for o in items]
    assert stamps == sorted(stamps, reverse=True)
    assert any("." in o["createdDateTime"] for o in items) and any("." not in o["createdDateTime"] for o in items)
    sample = items[0]
    assert "visible_at" not in sample and "signInEventTypes" not in sample  # internal / beta-only
    for key in ("userPrincipalName", "appDisplayName", "ipAddress", "status", "deviceDetail", "location",
                "appliedConditionalAccessPolicies", "riskEventTypes", "conditionalAccessStatus"):
        assert key in sample
    assert sample["location"]["geoCoordinates"]["latitude"] is not None
    assert set(sample["status"]) == {"errorCode", "failureReason", "additionalDetails"}


def test_sign_ins_time_filter_ge_le_eq(sim):
    t = sim.add_tenant(profile="e5", volumes={"sign_ins": 500})
    g = Graph(sim, t)
    stamps = sorted(parse_ts(o["createdDateTime"]) for o in t.sign_ins)
    lo, hi = stamps[100], stamps[300]
    f = f"createdDateTime ge {format_ts(lo, frac=True)} and createdDateTime le {format_ts(hi, frac=True)}"
    items, _ = g.all_pages("/v1.0/auditLogs/signIns?$filter=" + requests.utils.quote(f))
    got = [parse_ts(o["createdDateTime"]) for o in items]
    assert got and all(lo <= x <= hi for x in got)
    assert len(got) == sum(1 for x in stamps if lo <= x <= hi)
    one = t.sign_ins[7]
    items, _ = g.all_pages("/v1.0/auditLogs/signIns?$filter=" + requests.utils.quote(f"createdDateTime eq {one['createdDateTime']}"))
    assert one["id"] in {o["id"] for o in items}
    # an offset literal is accepted and means the same instant
    r = g.get("/v1.0/auditLogs/signIns", params={"$filter": "createdDateTime ge 2020-01-01T01:00:00+01:00"})
    assert r.status_code == 200
    # documented $orderby on createdDateTime, and $select projection
    asc, _ = g.all_pages("/v1.0/auditLogs/signIns?$orderby=createdDateTime%20asc&$select=id,createdDateTime")
    asc_stamps = [parse_ts(o["createdDateTime"]) for o in asc]
    assert asc_stamps == sorted(asc_stamps) and len(asc) == 500 and set(asc[0]) == {"id", "createdDateTime"}


def test_sign_ins_reject_gt_and_bad_filters(sim):
    t = sim.add_tenant(profile="e5")
    g = Graph(sim, t)
    err = assert_graph_error(g.get("/v1.0/auditLogs/signIns", params={"$filter": "createdDateTime gt 2026-01-01T00:00:00Z"}),
                             400, "BadRequest")
    assert err["message"].startswith("Invalid filter clause") and "'gt'" in err["message"]
    for bad in ("createdDateTime ge '2026-01-01T00:00:00Z'", "createdDateTime ge 2026-01-01",
                "userId eq 'x'", "createdDateTime ge 2026-01-01T00:00:00Z or createdDateTime le 2026-01-02T00:00:00Z"):
        assert_graph_error(g.get("/v1.0/auditLogs/signIns", params={"$filter": bad}), 400, "BadRequest")
    assert_graph_error(g.get("/v1.0/auditLogs/signIns", params={"$expand": "x"}), 400, "BadRequest")
    assert_graph_error(g.get("/v1.0/auditLogs/nothing"), 400, "BadRequest")
    r = g.s.post(sim.base_url + "/v1.0/auditLogs/signIns", headers={"Authorization": f"Bearer {g.token}"}, json={})
    assert_graph_error(r, 405, "BadRequest")
    r = g.s.get(f"{sim.base_url}/{t.tenant_id}/oauth2/v2.0/token")
    assert r.status_code == 405 and r.json()["error"] == "invalid_request"


def test_top_limits(sim):
    t = sim.add_tenant(profile="e5")
    g = Graph(sim, t)
    err = assert_graph_error(g.get("/v1.0/auditLogs/signIns?$top=1001"), 400, "BadRequest")
    assert "limit of '1000'" in err["message"]
    assert g.get("/v1.0/auditLogs/signIns?$top=1000").status_code == 200
    assert_graph_error(g.get("/v1.0/security/alerts_v2?$top=1001"), 400, "BadRequest")
    assert_graph_error(g.get("/v1.0/auditLogs/signIns?$top=abc"), 400, "BadRequest")


def test_edited_or_reused_skiptoken_is_rejected(sim):
    t = sim.add_tenant(profile="e5", volumes={"sign_ins": 30})
    g = Graph(sim, t)
    link = g.get("/v1.0/auditLogs/signIns?$top=10").json()["@odata.nextLink"]
    assert g.get(link).status_code == 200
    head, tok = link.split("$skiptoken=")
    flipped = tok[:5] + ("A" if tok[5] != "A" else "B") + tok[6:]
    assert_graph_error(g.get(head + "$skiptoken=" + flipped), 400, "BadRequest")
    # dropping the $top the token was issued with is a different query
    assert_graph_error(g.get(link.replace("$top=10&", "")), 400, "BadRequest")
    # another endpoint's path
    assert_graph_error(g.get(link.replace("/auditLogs/signIns", "/auditLogs/directoryAudits")), 400, "BadRequest")


def test_late_events_invisible_until_visible_at_and_pages_stay_stable(sim):
    t = sim.add_tenant(profile="e5", volumes={"sign_ins": 25})
    g = Graph(sim, t)
    late = t.add_sign_ins(5, visible_at=sim.now() + 600)
    late_ids = {o["id"] for o in late}
    items, _ = g.all_pages("/v1.0/auditLogs/signIns")
    assert len(items) == 25 and not late_ids & {o["id"] for o in items}
    # mid-paging arrivals do not shift the snapshot of the running query
    page1 = g.get("/v1.0/auditLogs/signIns?$top=10").json()
    sim.clock_offset = 601  # the late events are now visible
    rest, _ = g.all_pages(page1["@odata.nextLink"])
    seen = [o["id"] for o in page1["value"] + rest]
    assert len(seen) == 25 and len(set(seen)) == 25 and not late_ids & set(seen)
    again, _ = g.all_pages("/v1.0/auditLogs/signIns")
    assert len(again) == 30 and late_ids <= {o["id"] for o in again}
    # latency mode: visible at createdDateTime + latency
    recent = t.add_sign_ins(3, start=sim.now() - 10, end=sim.now() - 5, latency=(3600, 7200))
    assert all(o["visible_at"] > sim.now() for o in recent)


def test_empty_page_with_next_link_loses_nothing(sim):
    t = sim.add_tenant(profile="e5", volumes={"sign_ins": 30})
    g = Graph(sim, t)
    sim.inject_empty_pages("/v1.0/auditLogs/signIns", count=1)
    first = g.get("/v1.0/auditLogs/signIns?$top=10").json()
    assert first["value"] == [] and "@odata.nextLink" in first
    items, pages = g.all_pages(first["@odata.nextLink"])
    assert len(items) == 30 and pages == 3


def test_beta_sign_ins_event_type_filter(sim):
    t = sim.add_tenant(profile="e5", volumes={"sign_ins": 20, "sign_ins_non_interactive": 0})
    t.add_sign_ins(7, event_type="nonInteractiveUser")
    g = Graph(sim, t)
    v1, _ = g.all_pages("/v1.0/auditLogs/signIns")
    assert len(v1) == 20  # v1.0 is interactive only
    f = "signInEventTypes/any(t: t eq 'nonInteractiveUser')"
    beta, _ = g.all_pages("/beta/auditLogs/signIns?$filter=" + requests.utils.quote(f))
    assert len(beta) == 7 and all(o["signInEventTypes"] == ["nonInteractiveUser"] for o in beta)
    assert all(o["isInteractive"] is False for o in beta)
    assert_graph_error(g.get("/v1.0/auditLogs/signIns", params={"$filter": f}), 400, "BadRequest")


def test_generation_is_fast_and_sign_ins_are_realistically_sized(sim):
    start = time.perf_counter()
    t = sim.add_tenant(profile="e5", volumes={"sign_ins": 50000, "users": 10})
    elapsed = time.perf_counter() - start
    assert len(t.sign_ins) == 50000
    assert elapsed < 3.0, elapsed
    size = len(orjson.dumps(t.sign_ins[:500])) / 500
    assert 1200 < size < 2600, size


def test_a_new_source_is_one_table_row_plus_data(sim):
    from td_graph_plugin.simulator.endpoints import Endpoint, register, unregister

    row = Endpoint(path="/acme/events", versions=("beta",), collection="acme_events", mode="window",
                   entity="acme.event", context="acme/events", permissions=("Acme.Read.All",),
                   time_fields={"eventDateTime": frozenset({"gt", "lt"})}, order_field="eventDateTime",
                   max_top=50, default_top=20, options=frozenset({"$filter", "$top"}))
    register(row)
    try:
        t = sim.add_tenant(profile="free")
        base = sim.now() - 3600
        t.add_objects("acme_events", [{"id": f"e{i}", "eventDateTime": format_ts(base + i)} for i in range(45)])
        t.add_objects("acme_events", [{"id": "late", "eventDateTime": format_ts(base + 50)}], visible_at=sim.now() + 99)
        g = Graph(sim, t)
        items, pages = g.all_pages("/beta/acme/events")
        assert pages == 3 and [o["id"] for o in items] == [f"e{i}" for i in range(44, -1, -1)]
        f = f"eventDateTime gt {format_ts(base + 9)} and eventDateTime lt {format_ts(base + 20)}"
        assert len(g.all_pages("/beta/acme/events?$filter=" + requests.utils.quote(f))[0]) == 10
        assert_graph_error(g.get("/beta/acme/events?$filter=" + requests.utils.quote(f.replace(" gt ", " ge "))),
                           400, "BadRequest")
        assert_graph_error(g.get("/beta/acme/events?$top=51"), 400, "BadRequest")
        t.permissions = {"User.Read.All"}
        assert g.get("/beta/acme/events").status_code == 403
    finally:
        unregister(row)


# ----------------------------------------------------------------------------- licences

def test_free_profile_sign_ins_forbidden_with_exact_code(sim):
    t = sim.add_tenant(profile="free")
    g = Graph(sim, t)
    err = assert_graph_error(g.get("/v1.0/auditLogs/signIns"), 403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant")
    assert err["message"] == "Neither tenant is B2C or tenant doesn't have premium license"
    assert g.get("/v1.0/auditLogs/directoryAudits").status_code == 200  # all editions
    err = assert_graph_error(g.get("/v1.0/security/alerts_v2"), 403, "Forbidden")
    assert "not licensed" in err["message"]
    t.profile = "e5"  # buying the licence takes effect immediately
    assert g.get("/v1.0/auditLogs/signIns").status_code == 200


def test_p1_profile_has_sign_ins_but_no_defender_and_skus_agree(sim):
    t = sim.add_tenant(profile="p1")
    g = Graph(sim, t)
    assert g.get("/v1.0/auditLogs/signIns?$top=1").status_code == 200
    assert_graph_error(g.get("/v1.0/security/alerts_v2"), 403, "Forbidden")

    def plans(tenant):
        gg = Graph(sim, tenant)
        skus = gg.get("/v1.0/subscribedSkus").json()["value"]
        return {p["servicePlanName"] for s in skus if s["capabilityStatus"] == "Enabled"
                for p in s["servicePlans"] if p["provisioningStatus"] == "Success"}

    p1_plans = plans(t)
    assert "AAD_PREMIUM" in p1_plans and not {"AAD_PREMIUM_P2", "MTP", "INTUNE_A"} & p1_plans
    e5_plans = plans(sim.add_tenant(profile="e5"))
    assert {"AAD_PREMIUM", "AAD_PREMIUM_P2", "MTP", "INTUNE_A"} <= e5_plans
    free_plans = plans(sim.add_tenant(profile="free"))
    assert not {"AAD_PREMIUM", "AAD_PREMIUM_P2", "MTP", "INTUNE_A"} & free_plans
    assert_graph_error(g.get("/v1.0/subscribedSkus?$filter=x"), 400, "BadRequest")


def test_missing_permission_is_403_with_documented_codes(sim):
    t = sim.add_tenant(profile="e5")
    t.permissions = {"Directory.Read.All"}
    g = Graph(sim, t)
    err = assert_graph_error(g.get("/v1.0/auditLogs/signIns"), 403, "Authentication_MSGraphPermissionMissing")
    assert "AuditLog.Read.All" in err["message"]
    err = assert_graph_error(g.get("/v1.0/security/alerts_v2"), 403, "Forbidden")
    assert err["message"].startswith("Missing application roles.")
    assert g.get("/v1.0/users/delta").status_code == 200  # Directory.Read.All suffices


# ----------------------------------------------------------------------------- alerts

def test_alert_update_keeps_id_and_moves_last_update(sim):
    t = sim.add_tenant(profile="e5", volumes={"alerts": 20})
    g = Graph(sim, t)
    before = {a["id"]: a for a in g.all_pages("/v1.0/security/alerts_v2")[0]}
    assert len(before) == 20
    target = next(iter(before))
    cutoff = format_ts(sim.now() - 120, frac=True)
    updated = t.update_alerts([target])
    assert updated[0]["id"] == target
    f = f"lastUpdateDateTime gt {cutoff}"
    after, _ = g.all_pages("/v1.0/security/alerts_v2?$filter=" + requests.utils.quote(f))
    assert [a["id"] for a in after] == [target]
    new = after[0]
    assert new["@odata.type"] == "#microsoft.graph.security.alert"
    assert parse_ts(new["lastUpdateDateTime"]) > parse_ts(before[target]["lastUpdateDateTime"])
    assert new["status"] != before[target]["status"] and new["comments"]
    assert len(g.all_pages("/v1.0/security/alerts_v2")[0]) == 20  # same id, no new alert
    more = t.update_alerts(3)
    assert len(more) == 3 and all(a["id"] in before for a in more)


def test_alerts_unknown_future_value_without_prefer_header(sim):
    t = sim.add_tenant(profile="e5", volumes={"alerts": 200})
    g = Graph(sim, t)
    raw = {a["id"]: a["serviceSource"] for a in t.alerts}
    newer = {i for i, s in raw.items() if s in ("microsoftSentinel", "microsoftDefenderForCloud")}
    assert newer, "the generator should produce some newer serviceSource values"
    plain, _ = g.all_pages("/v1.0/security/alerts_v2?$top=1000")
    for a in plain:
        if a["id"] in newer:
            assert a["serviceSource"] == "unknownFutureValue"
        else:
            assert a["serviceSource"] == raw[a["id"]]
    rich, _ = g.all_pages("/v1.0/security/alerts_v2?$top=1000", headers={"Prefer": "include-unknown-enum-members"})
    assert {a["id"]: a["serviceSource"] for a in rich} == raw


def test_alerts_query_options(sim):
    t = sim.add_tenant(profile="e5", volumes={"alerts": 25})
    g = Graph(sim, t)
    assert_graph_error(g.get("/v1.0/security/alerts_v2?$select=id"), 400, "BadRequest")
    assert_graph_error(g.get("/v1.0/security/alerts_v2?$orderby=createdDateTime"), 400, "BadRequest")
    body = g.get("/v1.0/security/alerts_v2?$count=true&$top=10").json()
    assert body["@odata.count"] == 25 and len(body["value"]) == 10
    second = g.get(body["@odata.nextLink"]).json()
    assert "@odata.count" not in second and len(second["value"]) == 10
    assert len(g.get("/v1.0/security/alerts_v2?$skip=20").json()["value"]) == 5
    f = "createdDateTime ge 2000-01-01T00:00:00Z and createdDateTime lt 2100-01-01T00:00:00Z"
    assert len(g.all_pages("/v1.0/security/alerts_v2?$filter=" + requests.utils.quote(f))[0]) == 25


# ----------------------------------------------------------------------------- users delta

def _delta_round(g: Graph, url: str) -> tuple[list[dict], str, int]:
    items, pages = [], 0
    while True:
        r = g.get(url)
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["value"])
        pages += 1
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]


def test_users_delta_initial_incremental_removals_and_resync(sim):
    t = sim.add_tenant(profile="e5", volumes={"users": 120})
    sim.set_page_size("/users/delta", 50)
    g = Graph(sim, t)
    initial, delta_link, pages = _delta_round(g, "/v1.0/users/delta?$select=displayName,jobTitle")
    assert pages == 3 and len(initial) == 120 and len({u["id"] for u in initial}) == 120
    assert set(initial[0]) == {"id", "displayName", "jobTitle"}
    assert "$deltatoken=" in delta_link and delta_link.startswith(sim.base_url + "/v1.0/users/delta?")
    # nothing changed -> empty round
    again, delta_link, _ = _delta_round(g, delta_link)
    assert again == []
    added = t.add_users(2)
    changed = t.change_users(3)
    soft = t.delete_users(1)
    hard = t.delete_users(1, permanent=True)
    inc, delta_link, _ = _delta_round(g, delta_link)
    by_id = {u["id"]: u for u in inc}
    assert {u["id"] for u in added + changed} <= set(by_id)
    assert by_id[soft[0]["id"]] == {"id": soft[0]["id"], "@removed": {"reason": "changed"}}
    assert by_id[hard[0]["id"]] == {"id": hard[0]["id"], "@removed": {"reason": "deleted"}}
    for u in changed:
        if u["id"] not in (soft[0]["id"], hard[0]["id"]):
            assert by_id[u["id"]]["jobTitle"] == u["jobTitle"]  # the $select was kept in the token
    assert len(inc) == len(set(by_id))  # no replays unless asked
    # deterministic replays
    t.replay_every = 2
    t.change_users(4)
    replayed, delta_link, _ = _delta_round(g, delta_link)
    assert len(replayed) == 6 and len({u["id"] for u in replayed}) == 4
    # $deltatoken=latest gives only a deltaLink
    latest = g.get("/v1.0/users/delta?$deltatoken=latest").json()
    assert latest["value"] == [] and "@odata.deltaLink" in latest
    # expiry: 410 Gone with Location, which restarts a full sync
    t.expire_delta_tokens("410")
    r = g.get(delta_link)
    assert_graph_error(r, 410, "resyncRequired")
    location = r.headers["Location"]
    assert location.startswith(sim.base_url + "/v1.0/users/delta?") and "$deltatoken=" in location
    t.replay_every = 0
    full, delta_link, _ = _delta_round(g, location)
    assert len(full) == 120 - 2 + 2
    t.expire_delta_tokens("syncStateNotFound")
    assert_graph_error(g.get(delta_link), 400, "syncStateNotFound")


def test_users_delta_rejects_top(sim):
    t = sim.add_tenant(profile="e5")
    g = Graph(sim, t)
    r = g.get("/v1.0/users/delta?$top=10")
    assert r.status_code == 400 and "$top" in r.json()["error"]["message"]
    assert_graph_error(g.get("/v1.0/users/delta?$orderby=displayName"), 400, "Request_UnsupportedQuery")
    body = g.get("/v1.0/users/delta").json()
    assert set(body["value"][0]) >= {"id", "displayName", "userPrincipalName"}
    assert "accountEnabled" not in body["value"][0]  # default property set only


# ----------------------------------------------------------------------------- throttling and faults

def test_throttle_knob_with_and_without_retry_after(sim):
    t = sim.add_tenant(profile="e5")
    g = Graph(sim, t)
    sim.throttle("/v1.0/auditLogs", 2, retry_after=2.5)
    for _ in range(2):
        r = g.get("/v1.0/auditLogs/signIns")
        assert_graph_error(r, 429, "TooManyRequests")
        assert r.headers["Retry-After"] == "2.5"
        assert r.json()["error"]["innerError"]["status"] == "429"
    assert g.get("/v1.0/auditLogs/signIns").status_code == 200
    sim.throttle("/v1.0/auditLogs/signIns", 1, retry_after=None)
    r = g.get("/v1.0/auditLogs/signIns")
    assert r.status_code == 429 and "Retry-After" not in r.headers
    sim.throttle("/v1.0/security", 1, retry_after=3, status=503)
    r = g.get("/v1.0/security/alerts_v2")
    assert_graph_error(r, 503, "serviceNotAvailable")
    assert r.headers["Retry-After"] == "3"
    assert g.get("/v1.0/auditLogs/signIns").status_code == 200  # other paths unaffected


def test_enforced_budgets_throttle_identity_reports_and_identity_protection_style(sim):
    t = sim.add_tenant(profile="e5")
    g = Graph(sim, t)
    sim.enforce_budgets = True
    codes = [g.get("/v1.0/auditLogs/directoryAudits?$top=1").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    r = g.get("/v1.0/auditLogs/signIns?$top=1")
    assert r.status_code == 429 and 0 < float(r.headers["Retry-After"]) <= 11
    assert g.get("/v1.0/security/alerts_v2?$top=1").status_code == 200  # separate budget


def test_fault_reset_truncated_short_read_not_json_and_slow(sim):
    t = sim.add_tenant(profile="e5", volumes={"sign_ins": 50})
    g = Graph(sim, t)
    sim.fault("/v1.0/auditLogs/signIns", "reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        g.get("/v1.0/auditLogs/signIns")
    assert sim.requests[-1].status == 0 and sim.requests[-1].fault == "reset"
    sim.fault("/v1.0/auditLogs/signIns", "truncated")
    r = g.get("/v1.0/auditLogs/signIns")
    assert r.status_code == 200
    assert sim.requests[-1].fault == "truncated"  # the request log says which answers were mangled
    with pytest.raises(ValueError):
        orjson.loads(r.content)
    sim.fault("/v1.0/auditLogs/signIns", "short_read")
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        g.get("/v1.0/auditLogs/signIns").content
    sim.fault("/v1.0/auditLogs/signIns", "not_json")
    r = g.get("/v1.0/auditLogs/signIns")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    sim.fault("/v1.0/auditLogs/signIns", "slow:0.4")
    start = time.perf_counter()
    r = g.get("/v1.0/auditLogs/signIns")
    assert r.status_code == 200 and time.perf_counter() - start >= 0.4
    # faults are used up: the next request is normal
    assert len(g.get("/v1.0/auditLogs/signIns").json()["value"]) == 50
    # faults apply to the login service too
    sim.fault(f"/{t.tenant_id}/oauth2", "reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        token_for(sim, t)
    assert token_for(sim, t)


def test_page_delay_slows_every_graph_page(sim):
    t = sim.add_tenant(profile="e5", volumes={"sign_ins": 30})
    g = Graph(sim, t)
    sim.page_delay = 0.2
    start = time.perf_counter()
    _, pages = g.all_pages("/v1.0/auditLogs/signIns?$top=10")
    assert pages == 3 and time.perf_counter() - start >= 0.6


def test_stall_times_out_client_and_stop_is_prompt():
    sim = GraphSimulator().start()
    t = sim.add_tenant(profile="e5")
    g = Graph(sim, t)
    sim.fault("/v1.0/", "stall")
    with pytest.raises(requests.exceptions.ReadTimeout):
        g.get("/v1.0/auditLogs/signIns", timeout=0.5)
    # a second stalled request is still hanging in the background when we stop
    sim.fault("/v1.0/", "stall")
    hanging = threading.Thread(target=lambda: _swallow(lambda: g.get("/v1.0/auditLogs/signIns", timeout=30)), daemon=True)
    hanging.start()
    # Stop only once the server holds the second request (a stall is logged when it starts).
    deadline = time.monotonic() + 10
    while sum(1 for r in sim.requests if r.fault == "stall") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sum(1 for r in sim.requests if r.fault == "stall") == 2, "the second request is stalled in the server"
    start = time.perf_counter()
    sim.stop()
    assert time.perf_counter() - start < 1.0
    hanging.join(timeout=5)
    assert not hanging.is_alive()  # the connection was closed on stop, not left to time out


def _swallow(fn):
    try:
        fn()
    except requests.exceptions.RequestException:
        pass


def test_keep_alive_serves_several_requests_on_one_connection(sim):
    t = sim.add_tenant(profile="e5")
    token = token_for(sim, t)
    ctx = ssl.create_default_context(cafile=sim.ca_path)
    conn = http.client.HTTPSConnection("127.0.0.1", sim.port, context=ctx)
    for _ in range(3):
        conn.request("GET", "/v1.0/auditLogs/signIns?$top=2", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        assert resp.status == 200 and int(resp.getheader("Content-Length")) > 0
        assert len(orjson.loads(resp.read())["value"]) == 2
    assert conn.sock is not None  # still the same, open connection
    conn.close()


# ----------------------------------------------------------------------------- CLI entry

def test_serve_prints_a_usable_config_and_stops_on_event(tmp_path):
    out = io.StringIO()
    done = threading.Event()
    rc = []
    th = threading.Thread(target=lambda: rc.append(serve(port=0, profile="p1", workdir=str(tmp_path),
                                                         stop_event=done, out=out)), daemon=True)
    th.start()
    deadline = time.time() + 10
    while "state:" not in out.getvalue() and time.time() < deadline:
        time.sleep(0.05)
    cfg = yaml.safe_load(out.getvalue())
    tenant = cfg["tenants"][0]
    assert tenant["name"] == "sim" and tenant["login_endpoint"] == tenant["graph_endpoint"]
    assert tenant["ca_bundle"] == str(tmp_path / "ca.pem") and cfg["output"]["type"] == "stdout"
    assert cfg["state"]["path"] == "./td-graph-sim-state.db"
    s = requests.Session()
    s.trust_env = False
    r = s.post(f"{tenant['login_endpoint']}/{tenant['tenant_id']}/oauth2/v2.0/token", verify=tenant["ca_bundle"],
               data={"grant_type": "client_credentials", "client_id": tenant["client_id"],
                     "client_secret": tenant["client_secret"], "scope": SCOPE})
    assert r.status_code == 200
    done.set()
    th.join(timeout=5)
    assert rc == [0]


def test_serve_returns_1_when_the_port_is_taken(sim, tmp_path):
    err = io.StringIO()
    assert serve(port=sim.port, workdir=str(tmp_path), stop_event=threading.Event(), out=err) == 1
