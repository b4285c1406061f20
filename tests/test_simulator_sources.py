"""The simulator's endpoints for every catalogue source, its discovery endpoints and profiles.

Each test drives the simulator over TLS with ``requests`` and asserts the documented behaviour
(graph-facts.md) or the constraint a client must respect.  Sessions set ``trust_env = False`` so
the simulator's CA is used (see tests/test_simulator.py).
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest
import requests

from td_graph_plugin.simulator import GraphSimulator, SimTenant
from td_graph_plugin.simulator.gen_reports import OFFICE365_COLUMNS
from td_graph_plugin.simulator.graph_roles import GRAPH_APP_ID, GRAPH_APP_ROLES
from td_graph_plugin.simulator.profiles import PROFILES
from td_graph_plugin.simulator.timefmt import format_ts, parse_ts
from tests.sim_client import Graph

pytestmark = pytest.mark.timeout(60)

INCIDENT_TOP_MESSAGE = ("The query specified in the URI is not valid. The limit of '50' for Top query has been "
                        "exceeded. The value from the incoming request is '100'.")


@pytest.fixture(scope="module")
def sim():
    s = GraphSimulator()
    s.start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _reset(sim):
    yield
    sim.clear_knobs()
    sim.enforce_budgets = False
    sim.clock_offset = 0.0


def q(text: str) -> str:
    return quote(text, safe="")


def assert_graph_error(r: requests.Response, status: int, code: str, message: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    if message is not None:
        assert err["message"] == message
    inner = err["innerError"]
    assert inner["request-id"] == r.headers["request-id"]
    assert inner["client-request-id"] == r.headers["client-request-id"]
    return err


def visible(t: SimTenant, collection: str, sim: GraphSimulator) -> list[dict]:
    now = sim.now()
    return [o for o in t.collection(collection).items if o["visible_at"] <= now]


# ----------------------------------------------------------------------------- Defender XDR

def test_incidents_top_over_50_is_the_observed_400_with_empty_code(sim):
    t = sim.add_tenant(profile="e5")
    g = Graph(sim, t)
    r = g.get("/v1.0/security/incidents?$top=100")
    assert r.status_code == 400
    err = r.json()["error"]
    assert list(err) == ["code", "message", "details", "innerError"]
    assert err["code"] == "" and err["message"] == INCIDENT_TOP_MESSAGE and err["details"] == []
    assert set(err["innerError"]) >= {"date", "request-id", "client-request-id"}
    assert g.get("/v1.0/security/incidents?$top=50").status_code == 200


def test_incidents_paging_filter_expand_and_sub_resources(sim):
    t = sim.add_tenant(profile="e5", volumes={"alerts": 60})
    g = Graph(sim, t)
    want = visible(t, "incidents", sim)
    items, pages = g.all_pages("/v1.0/security/incidents?$top=7")
    assert pages == -(-len(want) // 7) and sorted(i["id"] for i in items) == sorted(i["id"] for i in want)
    assert all("visible_at" not in i for i in items)
    # Incidents group the alerts; merged ones are redirected to an incident that exists.
    ids = {i["id"] for i in items}
    assert {a["incidentId"] for a in visible(t, "alerts", sim)} <= ids
    for i in items:
        if i["status"] == "redirected":
            assert i["redirectIncidentId"] in ids
        else:
            assert i["redirectIncidentId"] is None
    # $filter on lastUpdateDateTime (the field td-graph polls)
    cut = sorted(i["lastUpdateDateTime"] for i in items)[len(items) // 2]
    f = f"lastUpdateDateTime ge {cut} and lastUpdateDateTime le {format_ts(sim.now())}"
    got, _ = g.all_pages("/v1.0/security/incidents?$top=50&$filter=" + q(f))
    assert {i["id"] for i in got} == {i["id"] for i in items if parse_ts(i["lastUpdateDateTime"]) >= parse_ts(cut)}
    # $expand=alerts alone works and embeds the incident's alerts...
    expanded, _ = g.all_pages("/v1.0/security/incidents?$expand=alerts&$top=50")
    by_incident = {}
    for a in visible(t, "alerts", sim):
        by_incident.setdefault(a["incidentId"], set()).add(a["id"])
    for i in expanded:
        assert {a["id"] for a in i["alerts"]} == by_incident.get(i["id"], set())
    assert any(i["alerts"] for i in expanded)
    # ... but with a $filter it is the documented persistent 500.
    for _ in range(2):
        assert_graph_error(g.get("/v1.0/security/incidents?$expand=alerts&$filter=" + q(f)), 500, "UnknownError")
    assert_graph_error(g.get("/v1.0/security/incidents?$select=id"), 400, "BadRequest")
    # GET /security/incidents/{id}/alerts and /security/incidents/{id}
    target = next(i for i in expanded if len(i["alerts"]) >= 2)
    alerts, _ = g.all_pages(f"/v1.0/security/incidents/{target['id']}/alerts?$top=1")
    assert sorted(a["id"] for a in alerts) == sorted(a["id"] for a in target["alerts"])
    one = g.get(f"/v1.0/security/incidents/{target['id']}?$expand=alerts").json()
    assert one["id"] == target["id"] and len(one["alerts"]) == len(target["alerts"])
    assert g.get("/v1.0/security/incidents/999999999/alerts").status_code == 404
    # update_incidents: same id, later lastUpdateDateTime, status progresses
    before = {i["id"]: i for i in items}
    changed = t.update_incidents(3)
    assert len(changed) == 3
    for c in changed:
        old = before[c["id"]]
        assert c["status"] != old["status"] or old["status"] == "resolved"
        assert parse_ts(c["lastUpdateDateTime"]) >= sim.now() - 120
        assert c["comments"] and c["assignedTo"]
    fresh = {i["id"]: i for i in g.all_pages("/v1.0/security/incidents?$top=50")[0]}
    assert all(fresh[c["id"]]["lastUpdateDateTime"] == c["lastUpdateDateTime"] for c in changed)


def test_defender_unlicensed_and_missing_incident_role(sim):
    t = sim.add_tenant(profile="p1")
    g = Graph(sim, t)
    err = assert_graph_error(g.get("/v1.0/security/incidents"), 403, "Forbidden")
    assert "not licensed" in err["message"]
    e5 = sim.add_tenant(profile="e5", permissions={"SecurityAlert.Read.All"})
    g5 = Graph(sim, e5)
    assert g5.get("/v1.0/security/alerts_v2?$top=1").status_code == 200
    err = assert_graph_error(g5.get("/v1.0/security/incidents"), 403, "Forbidden")
    assert err["message"].startswith("Missing application roles.")


def test_secure_scores_daily_and_control_profiles(sim):
    t = sim.add_tenant(profile="p1", volumes={"secure_score_days": 10})  # no licence needed
    g = Graph(sim, t)
    scores, _ = g.all_pages("/v1.0/security/secureScores")
    assert len(scores) == 10
    today = time.strftime("%Y-%m-%d", time.gmtime(sim.now()))
    assert scores[0]["id"] == f"{t.tenant_id}_{today}"  # newest first
    dates = [s["id"].split("_", 1)[1] for s in scores]
    assert dates == sorted(dates, reverse=True) and len(set(dates)) == 10
    assert g.get("/v1.0/security/secureScores?$top=1").json()["value"][0]["id"] == scores[0]["id"]
    lo = format_ts((int(sim.now() // 86400) - 2) * 86400)
    got, _ = g.all_pages("/v1.0/security/secureScores?$filter=" + q(f"createdDateTime ge {lo}"))
    assert len(got) == 3
    controls, _ = g.all_pages("/v1.0/security/secureScoreControlProfiles")
    assert len(controls) == 20 and all(c["azureTenantId"] == t.tenant_id for c in controls)
    changed = t.change_control_profiles(2)
    after = {c["id"]: c for c in g.all_pages("/v1.0/security/secureScoreControlProfiles")[0]}
    for c in changed:
        assert len(after[c["id"]]["controlStateUpdates"]) == 1
        assert after[c["id"]]["lastModifiedDateTime"] == c["lastModifiedDateTime"]
    t.permissions = {"SecurityAlert.Read.All"}  # takes effect on the next request
    err = assert_graph_error(g.get("/v1.0/security/secureScores"), 403, "Forbidden")
    assert "SecurityEvents.Read.All" in err["message"]


# ----------------------------------------------------------------------------- Identity Protection

def test_risk_detections_top_limit_default_page_and_json_string_info(sim):
    t = sim.add_tenant(profile="e5", volumes={"risk_detections": 45})
    g = Graph(sim, t)
    assert_graph_error(g.get("/v1.0/identityProtection/riskDetections?$top=501"), 400, "BadRequest")
    assert g.get("/v1.0/identityProtection/riskDetections?$top=500").status_code == 200
    want = visible(t, "risk_detections", sim)
    items, pages = g.all_pages("/v1.0/identityProtection/riskDetections")  # default page size 20
    assert len(items) == len(want) and pages == -(-len(want) // 20)
    for d in items:
        assert isinstance(d["additionalInfo"], str) and isinstance(json.loads(d["additionalInfo"]), list)
        if d["detectionTimingType"] == "offline":
            assert parse_ts(d["detectedDateTime"]) - parse_ts(d["activityDateTime"]) >= 3600
    # An offline detection that arrives late is invisible until then, and carries an old activity time.
    late = t.add_risk_detections(1, timing="offline", visible_at=sim.now() + 3600)[0]
    f = "lastUpdatedDateTime ge " + format_ts(sim.now() - 86400 * 2)
    assert late["id"] not in {d["id"] for d in g.all_pages("/v1.0/identityProtection/riskDetections?$top=500&$filter=" + q(f))[0]}
    sim.clock_offset = 3601
    g2 = Graph(sim, t)
    assert late["id"] in {d["id"] for d in g2.all_pages("/v1.0/identityProtection/riskDetections?$top=500&$filter=" + q(f))[0]}


def test_identity_protection_licences_and_scope_error(sim):
    scopes = "You cannot perform the requested operation, required scopes are missing in the token."
    e5 = Graph(sim, e5t := sim.add_tenant(profile="e5"))
    assert e5.get("/v1.0/identityProtection/riskyUsers").status_code == 200
    # E5 has no Workload ID Premium: service principal risk is unlicensed there.
    err = assert_graph_error(e5.get("/v1.0/identityProtection/riskyServicePrincipals"), 403, "Forbidden")
    assert "Workload ID Premium" in err["message"]
    assert e5.get("/v1.0/identityProtection/servicePrincipalRiskDetections").status_code == 403
    full = Graph(sim, sim.add_tenant(profile="all"))
    sps, _ = full.all_pages("/v1.0/identityProtection/riskyServicePrincipals")
    assert sps and all({"appId", "riskLevel", "riskState", "riskLastUpdatedDateTime"} <= set(s) for s in sps)
    spd, _ = full.all_pages("/v1.0/identityProtection/servicePrincipalRiskDetections")
    assert spd and all(d["activity"] == "servicePrincipal" and isinstance(d["additionalInfo"], str) for d in spd)
    p1 = Graph(sim, sim.add_tenant(profile="p1"))
    assert_graph_error(p1.get("/v1.0/identityProtection/riskyUsers"), 403, "Forbidden", "Your tenant is not licensed for this feature.")
    assert p1.get("/v1.0/identityProtection/riskDetections").status_code == 200  # P1 suffices
    free = Graph(sim, sim.add_tenant(profile="free"))
    assert free.get("/v1.0/identityProtection/riskDetections").status_code == 403
    e5t.permissions = {"IdentityRiskEvent.Read.All"}
    assert_graph_error(e5.get("/v1.0/identityProtection/riskyUsers"), 403, "Forbidden", scopes)
    assert e5.get("/v1.0/identityProtection/riskDetections?$top=1").status_code == 200


def test_identity_protection_budget_is_one_per_second_per_tenant_without_retry_after(sim):
    t = sim.add_tenant(profile="all")
    g = Graph(sim, t)
    sim.enforce_budgets = True
    assert g.get("/v1.0/identityProtection/riskyUsers?$top=1").status_code == 200
    r = g.get("/v1.0/identityProtection/riskDetections?$top=1")  # another endpoint of the same class
    assert_graph_error(r, 429, "TooManyRequests")
    assert "Retry-After" not in r.headers
    sim.clock_offset += 1.05  # the 1 s window passes on the simulator's clock, not by sleeping
    assert g.get("/v1.0/identityProtection/servicePrincipalRiskDetections?$top=1").status_code == 200


# ----------------------------------------------------------------------------- audit logs

def test_provisioning_accepts_gt_lt_only_and_needs_audit_log(sim):
    t = sim.add_tenant(profile="e5", volumes={"provisioning": 30})
    g = Graph(sim, t)
    objs = visible(t, "provisioning", sim)
    lo, hi = sorted(o["activityDateTime"] for o in objs)[5], sorted(o["activityDateTime"] for o in objs)[-5]
    got, _ = g.all_pages("/v1.0/auditLogs/provisioning?$filter=" + q(f"activityDateTime gt {lo} and activityDateTime lt {hi}"))
    assert {o["id"] for o in got} == {o["id"] for o in objs if parse_ts(lo) < parse_ts(o["activityDateTime"]) < parse_ts(hi)}
    assert got and all({"provisioningAction", "provisioningStatusInfo", "servicePrincipal", "jobId"} <= set(o) for o in got)
    for bad in (f"activityDateTime ge {lo}", f"activityDateTime le {hi}", f"ActivityDateTime gt {lo}"):
        assert_graph_error(g.get("/v1.0/auditLogs/provisioning?$filter=" + q(bad)), 400, "BadRequest")
    t.permissions = {"Directory.Read.All"}
    assert_graph_error(g.get("/v1.0/auditLogs/provisioning"), 403, "Authentication_MSGraphPermissionMissing")
    free = Graph(sim, sim.add_tenant(profile="free"))
    assert_graph_error(free.get("/v1.0/auditLogs/provisioning"), 403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant")


def test_beta_sign_in_event_types_are_generated_and_filtered(sim):
    t = sim.add_tenant(profile="e5")
    g = Graph(sim, t)
    v1, _ = g.all_pages("/v1.0/auditLogs/signIns")
    assert {s["id"] for s in v1} == {s["id"] for s in t.sign_ins} and all(s["isInteractive"] for s in v1)
    counts = {"nonInteractiveUser": 60, "servicePrincipal": 20, "managedIdentity": 15}
    for event_type, n in counts.items():
        f = f"signInEventTypes/any(t: t eq '{event_type}')"
        got, _ = g.all_pages("/beta/auditLogs/signIns?$filter=" + q(f))
        assert len(got) == n and all(s["signInEventTypes"] == [event_type] for s in got)
        assert all(s["isInteractive"] is False for s in got)
        if event_type == "nonInteractiveUser":
            assert all(s["userPrincipalName"] for s in got)
        else:
            assert all(s["servicePrincipalId"] and s["userPrincipalName"] is None for s in got)
    mi = g.all_pages("/beta/auditLogs/signIns?$filter=" + q("signInEventTypes/any(t: t eq 'managedIdentity')"))[0]
    assert all(s["managedServiceIdentity"]["msiType"] == "systemAssigned" for s in mi)
    f = "signInEventTypes/any(t: t eq 'servicePrincipal') and createdDateTime ge " + format_ts(sim.now() - 3600 * 24)
    assert g.get("/beta/auditLogs/signIns?$filter=" + q(f)).status_code == 200


# ----------------------------------------------------------------------------- directory delta

@pytest.mark.parametrize("path, collection", [
    ("/v1.0/groups/delta", "groups"),
    ("/v1.0/devices/delta", "devices"),
    ("/v1.0/applications/delta", "applications"),
    ("/v1.0/servicePrincipals/delta", "service_principals"),
])
def test_directory_delta_rounds_removals_and_expiry(sim, path, collection):
    t = sim.add_tenant(profile="free")  # directory delta needs no licence
    g = Graph(sim, t)
    sim.set_page_size(path.split("/v1.0")[1], 7)
    items, link, pages = g.delta(path)
    assert {o["id"] for o in items} == {o["id"] for o in t.collection(collection).items} and pages > 1
    assert "$deltatoken=" in link
    changed = t.change_objects(collection, 3)
    soft = t.delete_objects(collection, 1)
    hard = t.delete_objects(collection, 1, permanent=True)
    got, link2, _ = g.delta(link)
    by_id = {o["id"]: o for o in got}
    assert set(by_id) == {o["id"] for o in changed + soft + hard} and len(got) == len(by_id)
    assert by_id[soft[0]["id"]]["@removed"] == {"reason": "changed"}
    assert by_id[hard[0]["id"]]["@removed"] == {"reason": "deleted"}
    for c in changed:
        if c["id"] in by_id and "@removed" not in by_id[c["id"]]:
            assert by_id[c["id"]] == {k: v for k, v in c.items() if k != "visible_at"}
    assert g.delta(link2)[0] == []  # nothing changed since
    t.replay_every = 1
    t.change_objects(collection, 2)
    replayed, link3, _ = g.delta(link2)
    assert len(replayed) == 4 and len({o["id"] for o in replayed}) == 2  # documented replays
    t.expire_delta_tokens("410")
    r = g.get(link3)
    assert_graph_error(r, 410, "resyncRequired")
    assert r.headers["Location"].startswith(sim.base_url + path)


def test_group_delta_rejects_top_and_device_delta_keeps_it_in_links(sim):
    t = sim.add_tenant(profile="free")
    g = Graph(sim, t)
    assert_graph_error(g.get("/v1.0/groups/delta?$top=5"), 400, "Request_UnsupportedQuery")
    first = g.get("/v1.0/devices/delta?$top=5").json()
    assert len(first["value"]) == 5 and "$top" not in first["@odata.nextLink"]
    items, link, pages = g.delta(first["@odata.nextLink"])
    assert len(items) + 5 == len(t.collection("devices").items) and pages == -(-(len(items)) // 5)
    t.permissions = {"User.Read.All"}
    assert_graph_error(g.get("/v1.0/groups/delta"), 403, "Authorization_RequestDenied")


def test_delta_tracks_only_the_selected_or_default_properties(sim):
    """user-delta: "There is no $select parameter, so a default set of properties is tracked and
    returned"; with $select, only the selected properties are tracked (graph-facts §0.5)."""
    t = sim.add_tenant(profile="free", volumes={"users": 12})
    g = Graph(sim, t)
    _, default_link, _ = g.delta("/v1.0/users/delta")
    _, selected_link, _ = g.delta("/v1.0/users/delta?$select=id,accountEnabled,userPrincipalName")
    u = t.users[2]
    t.update_object("users", u["id"], accountEnabled=False)  # not in the default set
    assert g.delta(default_link)[0] == [], "an untracked property's change is no delta record"
    assert g.delta(selected_link)[0] == [{"id": u["id"], "accountEnabled": False, "userPrincipalName": u["userPrincipalName"]}]
    t.update_object("users", u["id"], jobTitle="CISO")  # in the default set, not in the selection
    assert [o["id"] for o in g.delta(default_link)[0]] == [u["id"]]
    assert g.delta(g.delta(selected_link)[1])[0] == []


@pytest.mark.parametrize("path, entity", [
    ("/v1.0/users/delta", "microsoft.graph.user"),
    ("/v1.0/groups/delta", "microsoft.graph.group"),
    ("/v1.0/devices/delta", "microsoft.graph.device"),
    ("/v1.0/applications/delta", "microsoft.graph.application"),
    ("/v1.0/servicePrincipals/delta", "microsoft.graph.servicePrincipal"),
])
def test_delta_rejects_an_unknown_select_property_naming_it(sim, path, entity):
    t = sim.add_tenant(profile="free")
    g = Graph(sim, t)
    assert_graph_error(g.get(f"{path}?$select=id,favouriteColour"), 400, "Request_BadRequest",
                       f"Could not find a property named 'favouriteColour' on type '{entity}'.")
    assert g.get(f"{path}?$select=id,displayName").status_code == 200


def test_update_object_find_object_and_ext(sim):
    t = sim.add_tenant(profile="free", volumes={"users": 15})
    g = Graph(sim, t)
    _, link, _ = g.delta("/v1.0/users/delta?$select=accountEnabled,userPrincipalName")
    u = t.users[3]
    assert t.find_object("users", u["userPrincipalName"].upper(), key_field="userPrincipalName")["id"] == u["id"]
    new = t.update_object("users", u["id"], accountEnabled=False)
    assert new["accountEnabled"] is False and t.find_object("users", u["id"])["accountEnabled"] is False
    assert t.users[3]["id"] == u["id"]  # same place in the collection
    got, _, _ = g.delta(link)
    assert got == [{"id": u["id"], "accountEnabled": False, "userPrincipalName": u["userPrincipalName"]}]
    with pytest.raises(KeyError):
        t.update_object("users", "no-such-id", accountEnabled=False)
    assert t.find_object("groups", "no-such-id") is None
    t.ext["isolation"] = {"x": 1}
    assert t.ext == {"isolation": {"x": 1}}


# ----------------------------------------------------------------------------- governance, Intune, reports

def test_app_consent_requests(sim):
    t = sim.add_tenant(profile="free", volumes={"app_consent_requests": 5})
    g = Graph(sim, t)
    items, pages = g.all_pages("/v1.0/identityGovernance/appConsent/appConsentRequests?$top=2")
    assert len(items) == 5 and pages == 3
    for r in items:
        assert r["pendingScopes"] and all("displayName" in s for s in r["pendingScopes"])
        assert r["userConsentRequests"] and all(u["status"] in ("InProgress", "Completed") for u in r["userConsentRequests"])
    name = items[0]["appDisplayName"]
    got, _ = g.all_pages("/v1.0/identityGovernance/appConsent/appConsentRequests?$filter=" + q(f"appDisplayName eq '{name}'"))
    assert [r["id"] for r in got] == [items[0]["id"]]
    changed = t.change_consent_requests(2)
    after = {r["id"]: r for r in g.all_pages("/v1.0/identityGovernance/appConsent/appConsentRequests")[0]}
    before = {r["id"]: r for r in items}
    assert all(after[c["id"]] != before[c["id"]] for c in changed)
    t.permissions = {"Directory.Read.All"}
    assert_graph_error(g.get("/v1.0/identityGovernance/appConsent/appConsentRequests"), 403, "Authorization_RequestDenied")


INTUNE = ("/v1.0/deviceManagement/managedDevices", "/v1.0/deviceManagement/deviceCompliancePolicies",
          "/v1.0/deviceManagement/deviceConfigurations", "/v1.0/deviceManagement/auditEvents")


def test_intune_collections_and_audit_window(sim):
    t = sim.add_tenant(profile="e5", volumes={"managed_devices": 23})
    g = Graph(sim, t)
    devices, pages = g.all_pages(INTUNE[0] + "?$top=10")
    assert len(devices) == 23 and pages == 3 and all(d["userPrincipalName"] and d["complianceState"] for d in devices)
    policies, _ = g.all_pages(INTUNE[1])
    assert len({p["@odata.type"] for p in policies}) >= 3
    assert all(p["@odata.type"].startswith("#microsoft.graph.") and p["@odata.type"].endswith("CompliancePolicy") for p in policies)
    configs, _ = g.all_pages(INTUNE[2])
    assert len({c["@odata.type"] for c in configs}) >= 4
    events = visible(t, "intune_audit_events", sim)
    lo = sorted(e["activityDateTime"] for e in events)[10]
    got, _ = g.all_pages(INTUNE[3] + "?$filter=" + q(f"activityDateTime ge {lo} and activityDateTime le {format_ts(sim.now())}"))
    assert {e["id"] for e in got} == {e["id"] for e in events if parse_ts(e["activityDateTime"]) >= parse_ts(lo)}
    assert_graph_error(g.get(INTUNE[3] + "?$filter=" + q(f"activityDateTime gt {lo}")), 400, "BadRequest")
    # auditEvents needs DeviceManagementApps.Read.All, not a Configuration permission
    t.permissions = {"DeviceManagementConfiguration.Read.All", "DeviceManagementManagedDevices.Read.All"}
    assert g.get(INTUNE[1]).status_code == 200
    assert_graph_error(g.get(INTUNE[3]), 403, "Authorization_RequestDenied")


def test_intune_unlicensed_is_400_request_not_applicable(sim):
    g = Graph(sim, sim.add_tenant(profile="p1"))
    for path in INTUNE:
        assert_graph_error(g.get(path), 400, "BadRequest", "Request not applicable to target tenant.")


def test_user_registration_details(sim):
    t = sim.add_tenant(profile="p1", volumes={"users": 30})
    g = Graph(sim, t)
    # "supports only the $filter and $orderBy OData query parameters" (no $top): the page size is
    # the server's, set here to 10.
    sim.set_page_size("/reports/authenticationMethods/userRegistrationDetails", 10)
    items, pages = g.all_pages("/v1.0/reports/authenticationMethods/userRegistrationDetails")
    assert pages == 3 and {i["id"] for i in items} == {u["id"] for u in t.users}
    admins, _ = g.all_pages("/v1.0/reports/authenticationMethods/userRegistrationDetails?$filter=" + q("isAdmin eq true"))
    assert {a["id"] for a in admins} == {i["id"] for i in items if i["isAdmin"]}
    free = Graph(sim, sim.add_tenant(profile="free"))
    assert_graph_error(free.get("/v1.0/reports/authenticationMethods/userRegistrationDetails"), 403,
                       "Authentication_RequestFromNonPremiumTenantOrB2CTenant")


def test_office365_report_redirects_to_a_csv_that_must_be_fetched_without_the_token(sim):
    t = sim.add_tenant(profile="free", volumes={"users": 12})
    g = Graph(sim, t)
    r = g.get("/v1.0/reports/getOffice365ActiveUserDetail(period='D7')", allow_redirects=False)
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.startswith(sim.base_url + "/_download/reports/") and location.endswith(".csv")
    sim.clear_requests()
    plain = g.s.get(location)  # no Authorization header
    assert plain.status_code == 200 and plain.headers["Content-Type"].startswith("text/csv")
    assert plain.content.startswith(b"\xef\xbb\xbf")
    lines = plain.content.decode("utf-8-sig").splitlines()
    assert lines[0] == ",".join(OFFICE365_COLUMNS)
    assert len(lines) == 1 + len(t.users)
    assert {line.split(",")[1] for line in lines[1:]} == {u["userPrincipalName"] for u in t.users}
    rec = [x for x in sim.requests if x.path.startswith("/_download/")]
    assert len(rec) == 1 and rec[0].has_authorization is False and rec[0].status == 200
    # Sending the Graph token there is a leak: refused (ASSUMED behaviour, makes it testable).
    leaked = g.s.get(location, headers={"Authorization": f"Bearer {g.token}"})
    assert leaked.status_code == 400
    assert [x.has_authorization for x in sim.requests if x.path.startswith("/_download/")] == [False, True]
    # Other periods and date=; anything else is a 400.
    for arg in ("period='D30'", "period='D90'", "period='D180'",
                "date=" + time.strftime("%Y-%m-%d", time.gmtime(sim.now() - 86400))):
        assert g.get(f"/v1.0/reports/getOffice365ActiveUserDetail({arg})", allow_redirects=False).status_code == 302
    for arg in ("period='D8'", "period=D7", "date=2001-01-01", ""):
        assert_graph_error(g.get(f"/v1.0/reports/getOffice365ActiveUserDetail({arg})", allow_redirects=False), 400, "BadRequest")
    # The link lives a few minutes.
    sim.clock_offset = 301
    assert g.s.get(location).status_code == 403
    sim.clock_offset = 0
    t.permissions = {"Directory.Read.All"}
    assert_graph_error(g.get("/v1.0/reports/getOffice365ActiveUserDetail(period='D7')", allow_redirects=False),
                       403, "Authorization_RequestDenied")


def test_usage_report_budget_is_14_per_10_minutes(sim):
    t = sim.add_tenant(profile="free", volumes={"users": 2})
    g = Graph(sim, t)
    sim.enforce_budgets = True
    codes = [g.get("/v1.0/reports/getOffice365ActiveUserDetail(period='D7')", allow_redirects=False).status_code
             for _ in range(15)]
    assert codes == [302] * 14 + [429]
    r = g.get("/v1.0/reports/getOffice365ActiveUserDetail(period='D30')", allow_redirects=False)
    assert r.status_code == 429 and float(r.headers["Retry-After"]) > 0


# ----------------------------------------------------------------------------- discovery and profiles

GUIDE_PERMISSIONS = {
    "Application.Read.All", "ConsentRequest.Read.All", "Directory.Read.All", "DeviceManagementConfiguration.Read.All",
    "DeviceManagementManagedDevices.Read.All", "SecurityAlert.Read.All", "SecurityIncident.Read.All",
    "IdentityRiskyUser.Read.All", "IdentityRiskyServicePrincipal.Read.All", "IdentityRiskEvent.Read.All",
    "User.EnableDisableAccount.All", "User.RevokeSessions.All", "User.Read.All", "Device.Read.All", "Reports.Read.All",
    "SecurityEvents.Read.All", "AuditLog.Read.All", "User-PasswordProfile.ReadWrite.All",
}


def _granted(g: Graph, t: SimTenant) -> set[str]:
    """What td-graph's discovery does: our SP, Graph's appRoles, our appRoleAssignments."""
    ours = g.get(f"/v1.0/servicePrincipals(appId='{t.client_id}')?$select=id,appId").json()
    graph = g.get(f"/v1.0/servicePrincipals(appId='{GRAPH_APP_ID}')?$select=id,appRoles").json()
    names = {r["id"]: r["value"] for r in graph["appRoles"]}
    items, _ = g.all_pages(f"/v1.0/servicePrincipals/{ours['id']}/appRoleAssignments?$top=10")
    assert all(a["resourceId"] == graph["id"] and a["principalId"] == ours["id"] for a in items)
    return {names[a["appRoleId"]] for a in items}


def test_discovery_endpoints_resolve_granted_roles(sim, catalogue):
    t = sim.add_tenant(profile="all")
    g = Graph(sim, t)
    ours = g.get(f"/v1.0/servicePrincipals(appId='{t.client_id}')?$select=id,appId,displayName")
    assert ours.status_code == 200
    body = ours.json()
    assert set(body) == {"@odata.context", "id", "appId", "displayName"} and body["appId"] == t.client_id
    graph = g.get(f"/v1.0/servicePrincipals(appId='{GRAPH_APP_ID}')?$select=id,appRoles").json()
    roles = {r["value"]: r for r in graph["appRoles"]}
    needed = set(GUIDE_PERMISSIONS) | {"Organization.Read.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}
    for spec in catalogue:
        if not spec.reads_graph:
            continue  # the isolation audit feed reads a local store
        for req in spec.permissions:
            needed.update(req.split("|"))
    assert needed <= set(roles)
    for r in roles.values():
        assert r["allowedMemberTypes"] == ["Application"] and r["isEnabled"] is True and r["displayName"]
    assert roles["AuditLog.Read.All"]["id"] == "b0afded3-3588-46d8-8b3d-9842eff778da"  # Microsoft's real GUIDs
    assert roles["User.Read.All"]["id"] == "df021288-bdef-4463-88db-98f22de89214"
    assert all(roles[n]["id"] == GRAPH_APP_ROLES[n][0] for n in GRAPH_APP_ROLES)
    # None = every permission; a set = exactly those (effective on the next request).
    assert _granted(g, t) == set(roles)
    t.permissions = {"Application.Read.All", "AuditLog.Read.All", "Acme.Read.All"}
    assert _granted(g, t) == {"Application.Read.All", "AuditLog.Read.All", "Acme.Read.All"}
    t.permissions = {"Directory.Read.All"}  # also allowed to read service principals
    assert _granted(g, t) == {"Directory.Read.All"}
    t.permissions = {"AuditLog.Read.All"}
    for path in (f"/v1.0/servicePrincipals(appId='{t.client_id}')", f"/v1.0/servicePrincipals/{t.sp_id}/appRoleAssignments"):
        assert_graph_error(g.get(path), 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    t.permissions = None
    assert_graph_error(g.get("/v1.0/servicePrincipals(appId='00000000-0000-0000-0000-00000000dead')"), 404, "Request_ResourceNotFound")
    assert_graph_error(g.get(f"/v1.0/servicePrincipals(appId='{t.client_id}')?$select=nope"), 400, "Request_BadRequest")
    assert g.get(f"/v1.0/servicePrincipals/{t.sp_id}?$select=id").json()["id"] == t.sp_id
    assert g.get("/v1.0/servicePrincipals/delta").status_code == 200  # the table row, not the {id} route


def test_add_tenant_permissions_parameter(sim):
    t = sim.add_tenant(profile="e5", permissions=["Application.Read.All", "User.Read.All"])
    g = Graph(sim, t)
    assert t.permissions == {"Application.Read.All", "User.Read.All"}
    assert _granted(g, t) == {"Application.Read.All", "User.Read.All"}
    assert g.get("/v1.0/users/delta").status_code == 200
    assert g.get("/v1.0/auditLogs/signIns").status_code == 403


def test_restricted_profile_withholds_incident_and_risk_event_permissions(sim):
    t = sim.add_tenant(profile="restricted")
    g = Graph(sim, t)
    withheld = {"SecurityIncident.Read.All", "SecurityIncident.ReadWrite.All", "IdentityRiskEvent.Read.All",
                "IdentityRiskEvent.ReadWrite.All"}
    granted = _granted(g, t)
    assert not granted & withheld and GUIDE_PERMISSIONS - withheld <= granted
    assert g.get("/v1.0/security/alerts_v2?$top=1").status_code == 200
    assert g.get("/v1.0/identityProtection/riskyUsers").status_code == 200
    err = assert_graph_error(g.get("/v1.0/security/incidents"), 403, "Forbidden")
    assert err["message"].startswith("Missing application roles.")
    assert_graph_error(g.get("/v1.0/identityProtection/riskDetections"), 403, "Forbidden",
                       "You cannot perform the requested operation, required scopes are missing in the token.")
    skus = g.get("/v1.0/subscribedSkus").json()["value"]
    assert [s["skuPartNumber"] for s in skus] == ["SPE_E5"]  # E5 licences
    t.profile = "e5"  # consent granted: the next request sees it
    assert g.get("/v1.0/security/incidents").status_code == 200 and t.permissions is None
    t.profile = "restricted"
    assert g.get("/v1.0/security/incidents").status_code == 403


def test_all_profile_has_every_capability_and_e5_is_realistic(sim):
    from td_graph_plugin.licensing import CAPABILITIES as TD_CAPABILITIES

    assert PROFILES["all"].capabilities == set(TD_CAPABILITIES)
    assert PROFILES["e5"].capabilities == set(TD_CAPABILITIES) - {"workload_id_premium"}
    assert PROFILES["restricted"].capabilities == PROFILES["e5"].capabilities
    g = Graph(sim, sim.add_tenant(profile="all"))
    plans = {p["servicePlanName"] for s in g.get("/v1.0/subscribedSkus").json()["value"] for p in s["servicePlans"]}
    assert {"AAD_WRKLDID_P2", "MTP", "INTUNE_A", "AAD_PREMIUM_P2"} <= plans


# ----------------------------------------------------------------------------- routes API

def test_routes_api_with_a_toy_route(sim):
    from td_graph_plugin.simulator.routes import SimResponse, graph_error, register_route, unregister_route

    seen = []

    def widget(req):
        seen.append(req)
        if req.method == "DELETE":
            return SimResponse(204)
        if req.method == "GET" and req.match.group(1) == "missing":
            return graph_error(404, "Request_ResourceNotFound", "Resource 'missing' does not exist.")
        if req.method == "GET" and req.match.group(1) == "raw":
            return SimResponse(200, b"a,b\n1,2\n", {"Content-Type": "text/csv"})
        return SimResponse(201 if req.method == "POST" else 200,
                           {"id": req.match.group(1), "got": req.json, "top": req.query.get("$top")})

    pattern = r"/acme/widgets/([^/]+)"
    for method in ("GET", "POST", "PATCH", "DELETE"):
        register_route(method, pattern, widget, permissions=["Acme.ReadWrite.All|Directory.ReadWrite.All"])
    register_route("GET", r"/acme/betaOnly", lambda req: SimResponse(200, {"value": []}), versions=("beta",))
    try:
        t = sim.add_tenant(profile="free", volumes={"users": 3})
        g = Graph(sim, t)
        r = g.send("PATCH", "/v1.0/acme/widgets/w%201?$TOP=3&x=1", json={"accountEnabled": False},
                   headers={"X-Custom": "yes"})
        assert r.status_code == 200 and r.json() == {"id": "w 1", "got": {"accountEnabled": False}, "top": "3"}
        req = seen[-1]
        assert (req.method, req.version, req.path) == ("PATCH", "v1.0", "/acme/widgets/w 1")
        assert req.query == {"$top": "3", "x": "1"} and req.headers["x-custom"] == "yes"
        assert req.body == b'{"accountEnabled": false}' and req.tenant is t and req.sim is sim
        assert g.send("POST", "/beta/acme/widgets/new", json={"a": 1}).status_code == 201
        d = g.send("DELETE", "/v1.0/acme/widgets/w1")
        assert d.status_code == 204 and d.content == b""
        raw = g.get("/v1.0/acme/widgets/raw")
        assert raw.content == b"a,b\n1,2\n" and raw.headers["Content-Type"] == "text/csv"
        assert_graph_error(g.get("/v1.0/acme/widgets/missing"), 404, "Request_ResourceNotFound")
        assert_graph_error(g.send("PATCH", "/v1.0/acme/widgets/w1", data=b"{not json",
                                  headers={"Content-Type": "application/json"}), 400, "BadRequest")
        assert_graph_error(g.send("PUT", "/v1.0/acme/widgets/w1"), 405, "Request_BadRequest")
        assert g.get("/beta/acme/betaOnly").status_code == 200
        assert g.get("/v1.0/acme/betaOnly").status_code == 400
        # Routes come before the table: POST to a table path is still 405, a routed path is not.
        assert g.send("POST", "/v1.0/users/delta").status_code == 405
        t.permissions = {"User.Read.All"}
        assert_graph_error(g.send("PATCH", "/v1.0/acme/widgets/w1", json={}), 403, "Authorization_RequestDenied",
                           "Insufficient privileges to complete the operation.")
        t.permissions = {"Acme.ReadWrite.All"}
        assert g.send("PATCH", "/v1.0/acme/widgets/w1", json={}).status_code == 200
        logged = [x for x in sim.requests if x.path.startswith("/v1.0/acme/widgets/")]
        assert [x.status for x in logged][-2:] == [403, 200]  # routed requests are in the request log
        assert all(x.tenant_id == t.tenant_id and x.has_authorization for x in logged)
    finally:
        for method in ("GET", "POST", "PATCH", "DELETE"):
            unregister_route(method, pattern)
        unregister_route("GET", r"/acme/betaOnly")
    assert_graph_error(g.get("/v1.0/acme/widgets/w1"), 400, "BadRequest")


def test_default_volumes_are_modest_and_overridable(sim):
    t = sim.add_tenant(profile="all")
    sizes = {name: len(c) for name, c in t.collections.items()}
    assert all(0 < n <= 400 for n in sizes.values()), sizes
    small = sim.add_tenant(profile="all", volumes={"groups": 3, "managed_devices": 2, "risk_detections": 4})
    assert (len(small.collection("groups")), len(small.collection("managed_devices")),
            len(small.collection("risk_detections"))) == (3, 2, 4)
    with pytest.raises(ValueError):
        sim.add_tenant(volumes={"nope": 1})
