"""Isolation against graph.microsoft.com request/response cassettes (vcrpy, record_mode="none").

Each cassette in ``cassettes/isolation/`` holds one scenario's HTTP exchanges with
``https://graph.microsoft.com``: the bodies are the documented / observed ones of
graph-facts §0.3, §0.6 and §9 (PATCH 204, revoke 200 ``{"value": true}`` and the documented
204, 403 ``Authorization_RequestDenied``, 404 ``Request_ResourceNotFound``, 429 with
``Retry-After``) and the PIM eligibility lists the guard rails read (the documented samples of
https://learn.microsoft.com/graph/api/rbacapplication-list-roleeligibilityscheduleinstances and
https://learn.microsoft.com/graph/api/privilegedaccessgroup-list-eligibilityscheduleinstances).  They are *synthesised* (there is no live tenant here): recorded by vcrpy
from a scripted loopback server with the host rewritten to graph.microsoft.com, the
``Authorization`` header scrubbed to ``Bearer REDACTED`` and tokens injected (no login
exchange).  To regenerate them::

    python tests/test_isolation_cassettes.py --record

Replay runs the real ``GraphClient`` (retries, error classification, request ids) and the
real ``IsolationService``; a request the cassette does not hold fails the test.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import orjson
import vcr

from td_graph_plugin.config.model import Config, HttpConfig, TenantConfig
from td_graph_plugin.graph.client import GraphClient
from td_graph_plugin.graph.ratelimit import RateLimiter
from td_graph_plugin.isolation import IsolationService
from td_graph_plugin.metrics import Metrics
from td_graph_plugin.state import StateStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASSETTES = os.path.join(ROOT, "cassettes", "isolation")
GRAPH = "https://graph.microsoft.com"

TENANT_ID = "3f6a2c1e-8b4d-4e7a-9c2f-5d1b7e0a4c93"
CLIENT_ID = "a7c4e2b9-1d3f-4a6e-8b5c-0f2d9e7a1b46"
SP_ID = "c2e8a4f1-6b9d-4c3e-a7f5-1d0b8e6c2a94"
GRAPH_SP_ID = "e1b7d3a9-4c6f-4e2b-9a8d-7f5c3b1e0d62"
USER_ID = "5f0e1a9c-3b7d-4c1e-9a8f-2d6b4e8c1a77"
UPN = "adele.vance@contoso.onmicrosoft.com"
ADMIN_ID = "9d4b7e2a-5c1f-4a8e-b3d6-0e7c9a2f5b18"
BREAKGLASS_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
SECRET_MARKER = "not-a-real-secret-~Q8"

SELECT = ("id,displayName,userPrincipalName,accountEnabled,userType,onPremisesSyncEnabled,"
          "signInSessionsValidFromDateTime")
ROLES = {  # Microsoft Graph appRole ids (td_graph_plugin/simulator/graph_roles.py)
    "User.Read.All": "df021288-bdef-4463-88db-98f22de89214",
    "Directory.Read.All": "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
    "User.EnableDisableAccount.All": "3011c876-62b7-4ada-afa2-506cbbecc68c",
    "User.RevokeSessions.All": "77f3a031-c388-4f99-b373-dc68676a979e",
}


class StaticTokens:
    """Injected token provider: no MSAL, no login exchange in the cassettes."""

    def token(self) -> str:
        return "REDACTED"

    def invalidate(self) -> None:
        pass


def _tenant(graph_endpoint: str | None = None, ca_bundle: str | None = None) -> TenantConfig:
    from td_graph_plugin.config.model import Secret

    return TenantConfig(name="contoso", tenant_id=TENANT_ID, client_id=CLIENT_ID,
                        client_secret=Secret(SECRET_MARKER), graph_endpoint=graph_endpoint, ca_bundle=ca_bundle)


def _vcr(mode: str, base: str | None = None) -> vcr.VCR:
    def scrub_request(request: Any) -> Any:
        if base:
            request.uri = request.uri.replace(base, GRAPH)
        return request

    def scrub_response(response: dict) -> dict:
        response["headers"] = {k: v for k, v in response["headers"].items() if k.lower() not in ("server",)}
        return response

    return vcr.VCR(
        cassette_library_dir=CASSETTES,
        record_mode=mode,
        match_on=("method", "scheme", "host", "port", "path", "query", "body"),
        filter_headers=[("authorization", "Bearer REDACTED")],
        before_record_request=scrub_request,
        before_record_response=scrub_response,
        decode_compressed_response=True,
    )


# --------------------------------------------------------------------------- Graph bodies

def _rid(n: int) -> str:
    return f"7e3c9a1b-4d2f-4b8e-a6c1-{n:012d}"


def _headers(n: int, **extra: str) -> dict[str, str]:
    h = {
        "Content-Type": "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
        "request-id": _rid(n),
        "client-request-id": _rid(n),
        "x-ms-ags-diagnostic": '{"ServerInfo":{"DataCenter":"West Europe","Slice":"E","Ring":"5","ScaleUnit":"001","RoleInstance":"AM4PEPF00027A3C"}}',
        "Strict-Transport-Security": "max-age=31536000",
        "Cache-Control": "no-cache",
    }
    h.update(extra)
    return h


def _error(n: int, code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message, "innerError": {
        "date": "2026-03-02T03:12:45", "request-id": _rid(n), "client-request-id": _rid(n)}}}


def _user(uid: str, upn: str, name: str, enabled: bool, sessions: str, **kw: Any) -> dict:
    return {"@odata.context": f"{GRAPH}/v1.0/$metadata#users({SELECT})/$entity", "id": uid, "displayName": name,
            "userPrincipalName": upn, "accountEnabled": enabled, "userType": kw.get("userType", "Member"),
            "onPremisesSyncEnabled": kw.get("onPremisesSyncEnabled"),
            "signInSessionsValidFromDateTime": sessions}


def _empty(context: str) -> dict:
    return {"@odata.context": f"{GRAPH}/v1.0/$metadata#{context}", "value": []}


DENIED = ("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def _script(srv: Any, name: str) -> None:
    """Script the loopback server for one scenario (only used to record)."""
    from tls_fake import Resp

    users = "/v1.0/users"
    ra = "/v1.0/roleManagement/directory/roleAssignments"
    re_ = "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances"
    ge = "/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances"

    def no_pim() -> None:  # PIM: no eligible role, no eligible group (issue 13, Medium 9)
        srv.route("GET", re_, Resp(200, json=_empty("roleManagement/directory/roleEligibilityScheduleInstances"),
                                   headers=_headers(11)))
        srv.route("GET", ge, Resp(200, json=_empty("identityGovernance/privilegedAccess/group/eligibilityScheduleInstances"),
                                  headers=_headers(12)))

    member_of = f"{users}/{USER_ID}/transitiveMemberOf"
    before = "2026-02-20T08:15:02Z"
    after = "2026-03-02T03:12:47Z"
    adele = lambda n, enabled, sess=before: Resp(200, json=_user(USER_ID, UPN, "Adele Vance", enabled, sess), headers=_headers(n))  # noqa: E731
    no_roles = Resp(200, json=_empty("roleManagement/directory/roleAssignments"), headers=_headers(3))
    groups = Resp(200, json={"@odata.context": f"{GRAPH}/v1.0/$metadata#directoryObjects(id,displayName,isAssignableToRole,roleTemplateId)",
                             "value": [{"@odata.type": "#microsoft.graph.group", "id": "0b6e2d8f-3a1c-4f5e-9d7b-2c4a6e8f0a13",
                                        "displayName": "Marketing", "isAssignableToRole": None}]}, headers=_headers(4))
    if name == "isolate_ok":
        srv.route("GET", f"{users}/{UPN}", adele(1, True))
        srv.route("GET", f"{users}/breakglass@contoso.onmicrosoft.com",
                  Resp(200, json={"@odata.context": f"{GRAPH}/v1.0/$metadata#users(id,userPrincipalName)/$entity",
                                  "id": BREAKGLASS_ID, "userPrincipalName": "breakglass@contoso.onmicrosoft.com"},
                       headers=_headers(2)))
        srv.route("GET", ra, no_roles)
        srv.route("GET", member_of, groups)
        no_pim()
        srv.route("PATCH", f"{users}/{USER_ID}", Resp(204, headers={"request-id": _rid(5), "client-request-id": _rid(5)}))
        srv.route("POST", f"{users}/{USER_ID}/revokeSignInSessions",
                  Resp(200, json={"@odata.context": f"{GRAPH}/v1.0/$metadata#Edm.Boolean", "value": True}, headers=_headers(6)))
        srv.route("GET", f"{users}/{USER_ID}", adele(7, False, after))
    elif name == "isolate_pim_eligible_refused":
        srv.route("GET", f"{users}/{UPN}", adele(1, True))
        srv.route("GET", ra, no_roles)
        srv.route("GET", member_of, groups)
        srv.route("GET", re_, Resp(200, json={
            "@odata.context": f"{GRAPH}/v1.0/$metadata#roleManagement/directory/roleEligibilityScheduleInstances",
            "value": [{"id": "8MYkhImhnkm70CbBdTyW1BbHHAdHgZdDpbqyEFlRzAs-1-e", "principalId": USER_ID,
                       "roleDefinitionId": "62e90394-69f5-4237-9190-012177145e10", "directoryScopeId": "/",
                       "appScopeId": None, "startDateTime": "2026-01-12T14:44:50.287Z", "endDateTime": None,
                       "memberType": "Direct", "roleEligibilityScheduleId": "77f71919-62f3-4d0c-9f88-0a0391b665cd"}]},
            headers=_headers(11)))
        srv.route("GET", ge, Resp(200, json=_empty("identityGovernance/privilegedAccess/group/eligibilityScheduleInstances"),
                                  headers=_headers(12)))
        srv.route("GET", "/v1.0/roleManagement/directory/roleDefinitions/62e90394-69f5-4237-9190-012177145e10",
                  Resp(200, json={"@odata.context": f"{GRAPH}/v1.0/$metadata#roleManagement/directory/roleDefinitions(id,displayName,templateId)/$entity",
                                  "id": "62e90394-69f5-4237-9190-012177145e10", "displayName": "Global Administrator",
                                  "templateId": "62e90394-69f5-4237-9190-012177145e10"}, headers=_headers(13)))
    elif name == "isolate_not_found_404":
        srv.route("GET", f"{users}/nobody@contoso.onmicrosoft.com", Resp(404, json=_error(1, "Request_ResourceNotFound",
                  "Resource 'nobody@contoso.onmicrosoft.com' does not exist or one of its queried reference-property objects are not present."),
                  headers=_headers(1)))
    elif name in ("isolate_privileged_403", "isolate_missing_permission_403"):
        privileged = name == "isolate_privileged_403"
        uid = ADMIN_ID if privileged else USER_ID
        srv.route("GET", f"{users}/{uid}", Resp(200, json=_user(
            uid, "megan.bowen@contoso.onmicrosoft.com" if privileged else UPN,
            "Megan Bowen" if privileged else "Adele Vance", True, before), headers=_headers(1)))
        if privileged:
            srv.route("GET", ra, Resp(200, json={"@odata.context": f"{GRAPH}/v1.0/$metadata#roleManagement/directory/roleAssignments",
                                                 "value": [{"id": "lAPpYvVpN0KRkAEhdxReEJC2sEqbR_9Hr48lds9SGHI-1",
                                                            "principalId": ADMIN_ID, "directoryScopeId": "/",
                                                            "roleDefinitionId": "62e90394-69f5-4237-9190-012177145e10"}]},
                                      headers=_headers(2)))
            srv.route("GET", "/v1.0/roleManagement/directory/roleDefinitions/62e90394-69f5-4237-9190-012177145e10",
                      Resp(200, json={"@odata.context": f"{GRAPH}/v1.0/$metadata#roleManagement/directory/roleDefinitions(id,displayName,templateId)/$entity",
                                      "id": "62e90394-69f5-4237-9190-012177145e10", "displayName": "Global Administrator",
                                      "templateId": "62e90394-69f5-4237-9190-012177145e10"}, headers=_headers(3)))
            srv.route("GET", f"{users}/{ADMIN_ID}/transitiveMemberOf", Resp(200, json=_empty("directoryObjects"), headers=_headers(4)))
        else:
            srv.route("GET", ra, no_roles)
            srv.route("GET", member_of, groups)
        no_pim()
        srv.route("PATCH", f"{users}/{uid}", Resp(403, json=_error(5, *DENIED), headers=_headers(5)))
        srv.route("POST", f"{users}/{uid}/revokeSignInSessions", Resp(403, json=_error(9, *DENIED), headers=_headers(9)))
        granted = ["User.Read.All", "Directory.Read.All"]
        if privileged:
            granted += ["User.EnableDisableAccount.All", "User.RevokeSessions.All"]
        srv.route("GET", f"/v1.0/servicePrincipals(appId='{CLIENT_ID}')",
                  Resp(200, json={"@odata.context": f"{GRAPH}/v1.0/$metadata#servicePrincipals(id,appId)/$entity",
                                  "id": SP_ID, "appId": CLIENT_ID}, headers=_headers(6)))
        srv.route("GET", "/v1.0/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')",
                  Resp(200, json={"@odata.context": f"{GRAPH}/v1.0/$metadata#servicePrincipals(id,appRoles)/$entity",
                                  "id": GRAPH_SP_ID,
                                  "appRoles": [{"id": rid, "value": v, "allowedMemberTypes": ["Application"], "isEnabled": True}
                                               for v, rid in ROLES.items()]}, headers=_headers(7)))
        srv.route("GET", f"/v1.0/servicePrincipals/{SP_ID}/appRoleAssignments",
                  Resp(200, json={"@odata.context": f"{GRAPH}/v1.0/$metadata#servicePrincipals('{SP_ID}')/appRoleAssignments",
                                  "value": [{"id": f"assignment-{i}", "principalId": SP_ID, "resourceId": GRAPH_SP_ID,
                                             "appRoleId": ROLES[g]} for i, g in enumerate(granted)]}, headers=_headers(8)))
    elif name == "isolate_throttled_429":
        srv.route("GET", f"{users}/{UPN}", adele(1, True))
        srv.route("GET", ra, no_roles)
        srv.route("GET", member_of, groups)
        no_pim()
        srv.route("PATCH", f"{users}/{USER_ID}", [
            Resp(429, json={"error": {"code": "TooManyRequests", "innerError": {
                "code": "429", "date": "2026-03-02T03:12:46", "message": "Please retry after",
                "request-id": _rid(5), "status": "429"}, "message": "Please retry again later."}},
                headers=_headers(5, **{"Retry-After": "3", "Content-Type": "application/json"})),
            Resp(204, headers={"request-id": _rid(6), "client-request-id": _rid(6)}),
        ])
        srv.route("POST", f"{users}/{USER_ID}/revokeSignInSessions",
                  Resp(200, json={"@odata.context": f"{GRAPH}/v1.0/$metadata#Edm.Boolean", "value": True}, headers=_headers(7)))
        srv.route("GET", f"{users}/{USER_ID}", adele(8, False, after))
    elif name == "isolate_password_revoke204":
        srv.route("GET", f"{users}/{UPN}", adele(1, True))
        srv.route("GET", ra, no_roles)
        srv.route("GET", member_of, groups)
        no_pim()
        srv.route("PATCH", f"{users}/{USER_ID}", [
            Resp(204, headers={"request-id": _rid(5), "client-request-id": _rid(5)}),
            Resp(204, headers={"request-id": _rid(7), "client-request-id": _rid(7)}),
        ])
        srv.route("POST", f"{users}/{USER_ID}/revokeSignInSessions", Resp(204, headers={"request-id": _rid(6), "client-request-id": _rid(6)}))

        def readback(req: Any) -> Any:
            if "passwordProfile" in (req.query.get("$select") or [""])[0]:
                return Resp(200, json={"@odata.context": f"{GRAPH}/v1.0/$metadata#users(id,passwordProfile)/$entity",
                                       "id": USER_ID, "passwordProfile": {"password": None, "forceChangePasswordNextSignIn": True,
                                                                          "forceChangePasswordNextSignInWithMfa": False}},
                            headers=_headers(9))
            return adele(8, False, after)

        srv.route("GET", f"{users}/{USER_ID}", readback)
    elif name == "release_ok":
        srv.route("GET", f"{users}/{UPN}", adele(1, False, after))
        srv.route("PATCH", f"{users}/{USER_ID}", Resp(204, headers={"request-id": _rid(2), "client-request-id": _rid(2)}))
        srv.route("GET", f"{users}/{USER_ID}", adele(3, True, after))
    else:  # pragma: no cover
        raise KeyError(name)


# --------------------------------------------------------------------------- scenarios

SCENARIOS: dict[str, dict[str, Any]] = {
    "isolate_ok": {"user": UPN, "protected": ["breakglass@contoso.onmicrosoft.com"]},
    "isolate_not_found_404": {"user": "nobody@contoso.onmicrosoft.com"},
    "isolate_privileged_403": {"user": ADMIN_ID, "allow_privileged": True},
    "isolate_missing_permission_403": {"user": USER_ID},
    "isolate_throttled_429": {"user": UPN},
    "isolate_password_revoke204": {"user": UPN, "steps": ["disable", "revoke_sessions", "force_password_change"]},
    "isolate_pim_eligible_refused": {"user": UPN},
    "release_ok": {"user": UPN, "action": "release"},
}


def _seed_isolation(state: StateStore) -> None:
    """An isolation record as ``isolate`` stores it: enabled before, disabled by the isolation."""
    state.add_isolation("contoso", USER_ID, "isolate", {
        "tenant": "contoso", "tenant_id": TENANT_ID, "source": "td_graph.isolation", "id": "seeded-action",
        "event_time": "2026-03-02T03:12:47Z", "collected_at": "2026-03-02T03:12:47Z",
        "data": {"action": "isolate", "outcome": "ok", "dry_run": False, "requested_by": "analyst",
                 "reason": "INC-1", "before": {"accountEnabled": True},
                 "steps": [{"step": "disable", "status": "ok"}, {"step": "revoke_sessions", "status": "ok"}]},
    })


def run_scenario(name: str, tenant: TenantConfig, tmp_path: Any, session: Any = None) -> tuple[Any, list[float], list[dict], StateStore]:
    spec = SCENARIOS[name]
    sleeps: list[float] = []
    config = Config(tenants=(tenant,), protected_users=tuple(spec.get("protected", ())),
                    http=HttpConfig(max_retries=2, max_retry_wait=30.0))
    state = StateStore(str(tmp_path / f"{name}.db"))
    if name.startswith("release"):
        _seed_isolation(state)
    emitted: list[dict] = []

    clock = [0.0]

    def sleep(seconds: float) -> None:  # no real waiting: a fake clock for client and limiter
        sleeps.append(seconds)
        clock[0] += seconds

    def factory(t: TenantConfig) -> GraphClient:
        limiter = RateLimiter(clock=lambda: clock[0], sleep=sleep)
        return GraphClient(t, config.http, Metrics(), tokens=StaticTokens(), sleep=sleep, limiter=limiter,
                           session=session)

    svc = IsolationService(config, state=state, emit=emitted.append, client_factory=factory, sleep=sleep)
    if spec.get("action") == "release":
        result = svc.release("contoso", spec["user"], "INC-1 closed")
    else:
        result = svc.isolate("contoso", spec["user"], "INC-1", spec.get("steps"), False,
                             allow_privileged=spec.get("allow_privileged", False))
    return result, sleeps, emitted, state


def record(names: list[str] | None = None) -> None:  # pragma: no cover - a maintainer's tool
    import pathlib
    import tempfile

    from tls_fake import FakeServer

    os.makedirs(CASSETTES, exist_ok=True)
    for name in names or list(SCENARIOS):
        path = os.path.join(CASSETTES, f"{name}.yaml")
        if os.path.exists(path):
            os.remove(path)
        with FakeServer() as srv, tempfile.TemporaryDirectory() as tmp:
            _script(srv, name)
            with _vcr("all", srv.base).use_cassette(f"{name}.yaml"):
                result, _, _, state = run_scenario(name, _tenant(srv.base, srv.ca_path), pathlib.Path(tmp))
                state.close()
            print(f"{name}: {result.outcome} ({len(srv.requests)} requests)")


def _replay(name: str, tmp_path: Any):
    with _vcr("none").use_cassette(f"{name}.yaml") as cassette:
        result, sleeps, emitted, state = run_scenario(name, _tenant(), tmp_path)
        assert cassette.all_played, f"{name}: not every recorded request was made"
    state.close()
    return result, sleeps, emitted, cassette


def _by_step(result: Any) -> dict[str, Any]:
    return {s.name: s for s in result.steps}


# --------------------------------------------------------------------------- tests


def test_cassettes_hold_no_secret_and_only_graph_microsoft_com():
    files = sorted(f for f in os.listdir(CASSETTES) if f.endswith(".yaml"))
    assert {f[:-5] for f in files} == set(SCENARIOS)
    for f in files:
        text = open(os.path.join(CASSETTES, f), encoding="utf-8").read()
        assert SECRET_MARKER not in text
        assert "127.0.0.1" not in text and "localhost" not in text
        assert re.findall(r"uri: (\S+)", text) and all(u.startswith(GRAPH + "/v1.0/") for u in re.findall(r"uri: (\S+)", text))
        auths = re.findall(r"(?i)authorization:\s*\n\s*- (.*)", text)
        assert auths and set(auths) == {"Bearer REDACTED"}, f
        assert "eyJ" not in text  # no JWT-looking token anywhere


def test_isolate_ok_replays_every_step_with_graph_request_ids(tmp_path):
    result, sleeps, emitted, cassette = _replay("isolate_ok", tmp_path)
    steps = _by_step(result)
    assert result.outcome == "ok" and result.exit_code == 0
    assert steps["resolve"].request_id == _rid(1)
    assert steps["guard"].status == "ok" and _rid(2) in steps["guard"].request_ids  # protected entry resolved
    assert steps["disable"].status == "ok" and steps["disable"].request_id == _rid(5)
    assert steps["revoke_sessions"].status == "ok" and steps["revoke_sessions"].request_id == _rid(6)
    assert steps["verify"].status == "ok" and "accountEnabled=false" in steps["verify"].detail
    assert result.before["accountEnabled"] is True and result.after["accountEnabled"] is False
    writes = [(r.method, r.uri, r.body) for r in cassette.requests if r.method != "GET"]
    assert writes == [
        ("PATCH", f"{GRAPH}/v1.0/users/{USER_ID}", b'{"accountEnabled": false}'),
        ("POST", f"{GRAPH}/v1.0/users/{USER_ID}/revokeSignInSessions", None),
    ]
    assert emitted and emitted[0]["data"]["steps"][3]["request_id"] == _rid(5)


def test_404_is_a_failure_never_success(tmp_path):
    result, _, emitted, cassette = _replay("isolate_not_found_404", tmp_path)
    resolve = _by_step(result)["resolve"]
    assert result.outcome == "failed" and result.exit_code == 1
    assert resolve.status == "failed" and resolve.http_status == 404
    assert resolve.error_code == "Request_ResourceNotFound" and resolve.request_id == _rid(1)
    assert "not found" in resolve.detail
    assert [r.method for r in cassette.requests] == ["GET"]
    assert emitted[0]["data"]["outcome"] == "failed"


def test_403_on_a_privileged_target_says_the_app_needs_a_higher_role(tmp_path):
    result, _, _, _ = _replay("isolate_privileged_403", tmp_path)
    steps = _by_step(result)
    assert result.outcome == "failed" and result.exit_code == 1
    assert [r["role"] for r in result.roles] == ["Global Administrator"]
    for name, rid in (("disable", _rid(5)), ("revoke_sessions", _rid(9))):
        s = steps[name]
        assert s.status == "failed" and s.http_status == 403 and s.error_code == "Authorization_RequestDenied"
        assert s.request_id == rid
        assert "Privileged Authentication Administrator" in s.hint and "Global Administrator" in s.hint
    assert steps["verify"].status == "skipped"


def test_403_without_the_permission_names_it_and_the_guide(tmp_path):
    result, _, _, _ = _replay("isolate_missing_permission_403", tmp_path)
    steps = _by_step(result)
    assert result.outcome == "failed"
    assert "User.EnableDisableAccount.All" in steps["disable"].hint
    assert "User.RevokeSessions.All" in steps["revoke_sessions"].hint
    assert "User Isolator Permissions" in steps["disable"].hint


def test_429_is_retried_after_retry_after(tmp_path):
    result, sleeps, _, cassette = _replay("isolate_throttled_429", tmp_path)
    steps = _by_step(result)
    assert result.outcome == "ok"
    assert 3.0 in sleeps  # the client honoured Retry-After: 3
    assert steps["disable"].status == "ok" and steps["disable"].request_id == _rid(6)
    assert [r.method for r in cassette.requests].count("PATCH") == 2


def test_revoke_204_and_force_password_change_without_a_password(tmp_path):
    result, _, emitted, cassette = _replay("isolate_password_revoke204", tmp_path)
    steps = _by_step(result)
    assert result.outcome == "ok"
    assert steps["revoke_sessions"].status == "ok" and steps["revoke_sessions"].http_status == 204
    assert steps["force_password_change"].status == "ok"
    assert result.after["forceChangePasswordNextSignIn"] is True
    bodies = [orjson.loads(r.body) for r in cassette.requests if r.method == "PATCH"]
    assert bodies == [{"accountEnabled": False}, {"passwordProfile": {"forceChangePasswordNextSignIn": True}}]
    assert b'"password"' not in orjson.dumps(emitted)


def test_a_pim_eligible_global_administrator_is_refused_before_any_write(tmp_path):
    result, _, emitted, cassette = _replay("isolate_pim_eligible_refused", tmp_path)
    guard = _by_step(result)["guard"]
    assert result.outcome == "refused" and result.exit_code == 1
    assert "Global Administrator (PIM-eligible)" in guard.detail and "--allow-privileged" in guard.detail
    assert _rid(11) in guard.request_ids and _rid(12) in guard.request_ids
    assert [r.method for r in cassette.requests] == ["GET"] * len(cassette.requests)
    queries = [r.uri for r in cassette.requests if "EligibilityScheduleInstances" in r.uri or "eligibilityScheduleInstances" in r.uri]
    assert len(queries) == 2 and all(f"principalId+eq+%27{USER_ID}%27" in q or f"principalId%20eq%20%27{USER_ID}%27" in q
                                     for q in queries), queries
    assert emitted[0]["data"]["outcome"] == "refused"


def test_release_restores_from_the_snapshot(tmp_path):
    result, _, emitted, cassette = _replay("release_ok", tmp_path)
    steps = _by_step(result)
    assert result.outcome == "ok" and steps["enable"].status == "ok" and steps["enable"].request_id == _rid(2)
    assert steps["revoke_sessions"].status == "skipped" and "cannot be restored" in steps["revoke_sessions"].detail
    assert [orjson.loads(r.body) for r in cassette.requests if r.method == "PATCH"] == [{"accountEnabled": True}]
    assert result.after["accountEnabled"] is True


if __name__ == "__main__":  # pragma: no cover
    if "--record" in sys.argv:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        record([a for a in sys.argv[1:] if not a.startswith("--")] or None)
    else:
        print(__doc__)
