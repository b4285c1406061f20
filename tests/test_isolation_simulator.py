"""The simulator's directory writes answer like Graph (graph-facts §9), over TLS with the real client."""

from __future__ import annotations

import orjson
import pytest

from td_graph_plugin.config.model import HttpConfig, Secret, TenantConfig
from td_graph_plugin.errors import GraphNotFound, GraphPermissionError, GraphTransient
from td_graph_plugin.graph.client import GraphClient
from td_graph_plugin.simulator import GraphSimulator
from td_graph_plugin.simulator import directory_writes as dw

SMALL = {"users": 4, "sign_ins": 0, "directory_audits": 0, "alerts": 0}


@pytest.fixture(scope="module")
def sim():
    dw.install()
    dw.install()  # idempotent
    with GraphSimulator() as s:
        yield s


@pytest.fixture
def env(sim):
    t = sim.add_tenant(volumes=SMALL)
    cfg = TenantConfig(name="sim", tenant_id=t.tenant_id, client_id=t.client_id, client_secret=Secret(t.client_secret),
                       login_endpoint=sim.base_url, graph_endpoint=sim.base_url, ca_bundle=sim.ca_path)
    client = GraphClient(cfg, HttpConfig(max_retries=1), sleep=lambda s: None)
    yield t, dw.directory(t), client
    client.close()


def _call(client, method, path, body=None, **kw):
    return client.request(method, client.url("v1.0", path), json=body, expect_json=False, **kw)


def test_patch_204_revoke_200_value_true_and_state_changes(env):
    t, d, client = env
    u = d.add_user("carol@contoso.test")
    r = _call(client, "PATCH", f"/users/{u['id']}", {"accountEnabled": False})
    assert r.status_code == 204 and r.content == b"" and r.headers.get("request-id")
    r = _call(client, "POST", f"/users/{u['id']}/revokeSignInSessions")
    assert r.status_code == 200 and orjson.loads(r.content)["value"] is True
    got = client.get_json(client.url("v1.0", "/users/CAROL@contoso.test"),
                          params={"$select": "id,accountEnabled,signInSessionsValidFromDateTime"})
    assert got["id"] == u["id"] and got["accountEnabled"] is False
    assert got["signInSessionsValidFromDateTime"] > u["createdDateTime"]
    assert [(w["method"], w["status"]) for w in d.writes] == [("PATCH", 204), ("POST", 200)]
    # The change shows in the next /users/delta round like any directory change.
    assert t.find_object("users", u["id"])["accountEnabled"] is False


def test_404_body_and_403_for_privileged_targets_and_missing_permissions(env):
    t, d, client = env
    with pytest.raises(GraphNotFound) as nf:
        _call(client, "PATCH", "/users/00000000-0000-0000-0000-000000000000", {"accountEnabled": False})
    assert nf.value.code == "Request_ResourceNotFound" and "does not exist or one of its queried" in nf.value.detail
    ga = d.add_user("ga@contoso.test")
    d.assign_role(ga["id"], "Global Administrator")
    with pytest.raises(GraphPermissionError) as denied:
        _call(client, "PATCH", f"/users/{ga['id']}", {"accountEnabled": False})
    assert denied.value.code == "Authorization_RequestDenied"
    assert denied.value.detail == "Insufficient privileges to complete the operation."
    d.set_app_roles("Privileged Authentication Administrator")
    assert _call(client, "PATCH", f"/users/{ga['id']}", {"accountEnabled": False}).status_code == 204
    u = d.add_user("dave@contoso.test")
    t.permissions = {"User.Read.All", "Directory.Read.All", "User.EnableDisableAccount.All"}
    assert _call(client, "PATCH", f"/users/{u['id']}", {"accountEnabled": False}).status_code == 204
    for path, body in ((f"/users/{u['id']}/revokeSignInSessions", None),
                       (f"/users/{u['id']}", {"passwordProfile": {"forceChangePasswordNextSignIn": True}})):
        with pytest.raises(GraphPermissionError):
            _call(client, "POST" if body is None else "PATCH", path, body)
    t.permissions = None
    d.set_app_roles()  # no directory role at all: password changes need at least User Administrator
    with pytest.raises(GraphPermissionError):
        _call(client, "PATCH", f"/users/{u['id']}", {"passwordProfile": {"forceChangePasswordNextSignIn": True}})


def test_roles_memberships_and_the_failure_knob(env):
    t, d, client = env
    u = d.add_user("erin@contoso.test")
    d.assign_role(u["id"], "Helpdesk Administrator")
    g = d.add_group("Tier0", [u["id"]], roles=["Security Administrator"])
    items = [i for p in client.pages(client.url("v1.0", "/roleManagement/directory/roleAssignments"),
                                     params={"$filter": f"principalId eq '{g['id']}'"}) for i in p.items]
    assert [i["roleDefinitionId"] for i in items] == [dw.SECURITY_ADMINISTRATOR]
    groups = [i for p in client.pages(client.url("v1.0", f"/users/{u['id']}/transitiveMemberOf"),
                                      params={"$select": "id,displayName,isAssignableToRole"}) for i in p.items]
    assert groups == [{"@odata.type": "#microsoft.graph.group", "id": g["id"], "displayName": "Tier0",
                       "isAssignableToRole": True}]
    rd = client.get_json(client.url("v1.0", f"/roleManagement/directory/roleDefinitions/{dw.GLOBAL_ADMINISTRATOR}"))
    assert rd["displayName"] == "Global Administrator" and rd["templateId"] == dw.GLOBAL_ADMINISTRATOR
    d.fail_next("revoke", 503, count=3, retry_after=0)
    with pytest.raises(GraphTransient) as exc:
        _call(client, "POST", f"/users/{u['id']}/revokeSignInSessions")
    assert exc.value.status == 503
    assert [w["status"] for w in d.writes] == [503, 503]  # the client retried once, then gave up
