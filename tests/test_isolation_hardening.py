"""Issue 13's isolation findings, each with the test that reproduced it.

* High 2 — protected users fail closed: an entry that resolves to nothing refuses the
  isolation and is named; aliases (mail, proxy addresses, a guest's home address) resolve
  through the documented ``$filter``; doctor lists every unresolvable entry.
* High 3 — a separate isolation credential (``tenants[].isolation``): isolate/release use it,
  a problem in it is a configuration error for them only, the collector never reads it;
  doctor warns when the collector's app holds the isolation permissions; no advice gives
  td-graph's app Privileged Authentication Administrator; ``release --force`` runs the
  privileged-role guard.
* Medium 8 — a started record is stored before the first write; Ctrl-C / SIGTERM during a
  write stores an ``interrupted`` record; release understands both.
* Medium 9 — PIM: eligible directory roles and PIM-for-Groups eligible memberships are
  privileged; a check that cannot be made refuses (``--allow-privileged`` overrides).
* Low — the operator is the process's real uid; no raw exception text in an audit record.

Expected values are written by hand; the directory is the simulator's (in-process, see
``isolation_support``), the CLI runs as a subprocess against the TLS simulator.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import pathlib
import pwd
import signal
import subprocess
import threading

import orjson
import pytest
import yaml
from isolation_support import World, steps

from td_graph_plugin.config.model import Config, IsolationCredential, Secret, TenantConfig
from td_graph_plugin.errors import ConfigError, GraphTransient
from td_graph_plugin.isolation import render
from td_graph_plugin.simulator import GraphSimulator, register_route
from td_graph_plugin.simulator import directory_guards as dg
from td_graph_plugin.simulator import directory_writes as dw
from td_graph_plugin.simulator import routes as sim_routes
from td_graph_plugin.state import StateStore

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECRETISH = "client_secret=Zq8~s3cr3tV4lue.DO-NOT-LOG"


@pytest.fixture(scope="module")
def sim():
    dw.install()
    with GraphSimulator() as s:
        yield s


@pytest.fixture
def world(sim, tmp_path):
    w = World(sim, tmp_path)
    yield w
    w.state.close()


def _reads(world: World) -> list[tuple[str, dict]]:
    return [(p, q) for m, p, q, _b in world.client.calls if m == "GET"]


# =========================================================================== High 2: protected users


def test_protected_entries_may_be_mail_proxy_or_a_guests_home_address(sim, tmp_path):
    w = World(sim, tmp_path)
    bg = w.d.add_user("bg@contoso.test", "Break glass")
    dw._update_user(w.t, bg["id"], {"mail": "emergency@contoso.test",
                                    "proxyAddresses": ["SMTP:emergency@contoso.test", "smtp:bg-alias@contoso.test"]})
    guest = w.d.add_user("partner_fabrikam.test#EXT#@contoso.test", "Partner", user_type="Guest")
    dw._update_user(w.t, guest["id"], {"mail": "partner@fabrikam.test"})
    for entry, target in (("emergency@contoso.test", bg), ("smtp:bg-alias@contoso.test", bg),
                          ("bg-alias@contoso.test", bg), ("partner@fabrikam.test", guest)):
        w.protect(entry)
        r = w.isolate(target["id"])
        assert r.outcome == "refused", (entry, r.message)
        assert "protected" in steps(r)["guard"].detail and entry in steps(r)["guard"].detail
    assert w.d.writes == []
    # The alias lookup is the documented default query: $filter on mail / proxyAddresses, no
    # ConsistencyLevel header needed (https://learn.microsoft.com/graph/aad-advanced-queries).
    flt = [q["$filter"] for p, q in _reads(w) if p == "/users"]
    assert "mail eq 'bg-alias@contoso.test' or proxyAddresses/any(p:p eq 'smtp:bg-alias@contoso.test')" in flt
    # Resolved and not the target: the isolation goes ahead.
    w.protect("emergency@contoso.test", "smtp:bg-alias@contoso.test", "partner@fabrikam.test", bg["id"])
    assert w.isolate().outcome == "ok"
    w.state.close()


@pytest.mark.parametrize("entry", [
    "gone@contoso.test",                        # a typo / deleted account
    "00000000-0000-4000-8000-000000000bad",     # an object id that is not (or no longer) a user
    "smtp:nobody@contoso.test",                 # a proxy address no one has
    "breakglass",                               # neither a UPN, an id nor an address
])
def test_an_unresolvable_entry_refuses_and_is_named(world, entry):
    world.protect(entry)
    r = world.isolate()
    guard = steps(r)["guard"]
    assert r.outcome == "refused" and r.exit_code == 1
    assert guard.status == "refused" and entry in guard.detail and "isolation.protected_users" in guard.detail
    assert world.client.writes == [] and world.user(world.alice["id"])["accountEnabled"] is True


def test_a_protected_match_is_reported_even_when_another_entry_is_unresolvable(sim, tmp_path):
    w = World(sim, tmp_path)
    w.protect("gone@contoso.test", "alice@contoso.test")
    r = w.isolate()
    assert r.outcome == "refused" and "is protected" in steps(r)["guard"].detail
    w.state.close()


def test_doctor_lists_every_unresolvable_entry(world):
    from td_graph_plugin.isolation import unresolvable_protected_entries

    bob = world.d.add_user("bob@contoso.test")
    world.protect("gone@contoso.test", "alice@contoso.test", bob["id"], "00000000-0000-4000-8000-000000000bad", "typo")
    got = unresolvable_protected_entries(world.config, world.tenant_cfg, world.client)
    assert got == ["gone@contoso.test", "00000000-0000-4000-8000-000000000bad", "typo"]
    world.protect("alice@contoso.test")
    assert unresolvable_protected_entries(world.config, world.tenant_cfg, world.client) == []


def test_an_entry_whose_lookup_fails_is_unresolvable_for_doctor_too(world):
    from td_graph_plugin.isolation import unresolvable_protected_entries

    world.protect("alice@contoso.test")
    world.client.fail("GET", r"/users/alice@contoso\.test", 503)
    assert unresolvable_protected_entries(world.config, world.tenant_cfg, world.client) == ["alice@contoso.test"]


# =========================================================================== High 3: separate credential


def _iso_tenant(world: World, **iso) -> TenantConfig:
    from dataclasses import replace

    return replace(world.tenant_cfg, isolation=IsolationCredential(**iso))


def test_isolate_and_release_use_the_isolation_credential(world):
    world.tenant_cfg = _iso_tenant(world, client_id="9a1e6c3f-0000-4000-8000-00000000150a",
                                   client_secret=Secret("isolation-app-secret"))
    world.config = Config(tenants=(world.tenant_cfg,))
    world.svc.config = world.config
    assert world.isolate().outcome == "ok"
    assert world.release().outcome == "ok"
    assert len(world.factory_calls) == 2
    for t in world.factory_calls:
        assert t.client_id == "9a1e6c3f-0000-4000-8000-00000000150a"
        assert t.client_secret.reveal() == "isolation-app-secret" and t.certificate is None
        assert t.isolation is None  # nothing downstream can pick the other credential
        assert t.name == "contoso" and t.tenant_id == world.t.tenant_id


def test_an_isolation_credential_problem_is_a_configuration_error_before_any_request(world):
    world.tenant_cfg = _iso_tenant(world, client_id="9a1e6c3f-0000-4000-8000-00000000150a",
                                   problem="tenants[0].isolation.client_secret: ${CONTOSO_ISOLATION_SECRET} is not set")
    world.config = Config(tenants=(world.tenant_cfg,))
    world.svc.config = world.config
    for call in (world.isolate, world.release):
        with pytest.raises(ConfigError) as err:
            call()
        assert "CONTOSO_ISOLATION_SECRET" in str(err.value) and "isolation" in str(err.value)
    assert world.client.calls == [] and world.factory_calls == []


def test_the_collector_never_reads_the_isolation_credential():
    """Only the config loader, the isolation package and the commands that report on it
    (``check``) touch ``TenantConfig.isolation``: nothing the collector runs does."""
    allowed = ("td_graph_plugin/isolation/", "td_graph_plugin/config/", "td_graph_plugin/cli/check_cmd.py")
    offenders = []
    for path in sorted((ROOT / "td_graph_plugin").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "isolation":
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


def test_doctor_warns_when_the_collectors_app_holds_isolation_permissions(world):
    from td_graph_plugin.isolation.doctor import isolation_checks, render_isolation

    world.protect()
    granted = {"User.Read.All", "Directory.Read.All", "User.EnableDisableAccount.All", "User.RevokeSessions.All"}
    section = isolation_checks(world.config, world.tenant_cfg, world.client, granted=granted)
    (warning,) = section["warnings"]
    assert "User.EnableDisableAccount.All" in warning and "User.RevokeSessions.All" in warning
    assert "tenants[].isolation" in warning
    text = "\n".join(render_isolation(section))
    assert "WARNING" in text and "User.EnableDisableAccount.All" in text and "collector's app" in text
    # Directory.ReadWrite.All / User.ReadWrite.All can disable users too.
    section = isolation_checks(world.config, world.tenant_cfg, world.client, granted={"Directory.ReadWrite.All"})
    assert "Directory.ReadWrite.All" in section["warnings"][0]
    # Read-only collector app: no warning.
    section = isolation_checks(world.config, world.tenant_cfg, world.client, granted={"User.Read.All"})
    assert section["warnings"] == [] and section["ok"] is True
    # Unknown grants (could not be read): say so, never claim it is fine.
    section = isolation_checks(world.config, world.tenant_cfg, world.client, granted=None)
    assert section["warnings"] and "could not be read" in section["warnings"][0]


def test_doctor_says_which_credential_isolation_uses(world):
    from td_graph_plugin.isolation.doctor import isolation_checks

    tcfg = _iso_tenant(world, client_id="9a1e6c3f-0000-4000-8000-00000000150a", client_secret=Secret("s"))
    section = isolation_checks(world.config, tcfg, world.client, granted={"User.Read.All"})
    assert section["credential"] == "separate app 9a1e6c3f-0000-4000-8000-00000000150a (tenants[].isolation)"
    bad = _iso_tenant(world, client_id="x", problem="tenants[0].isolation.client_secret: ${ISO} is not set")
    section = isolation_checks(world.config, bad, world.client, granted={"User.Read.All"})
    assert section["ok"] is False and "${ISO}" in section["credential"]


def test_no_advice_gives_the_collectors_app_privileged_authentication_administrator(world):
    world.d.assign_role(world.alice["id"], "Global Administrator")  # the app is only User Administrator
    r = world.isolate(allow_privileged=True)
    hint = steps(r)["disable"].hint
    assert "Privileged Authentication Administrator" in hint and "Global Administrator" in hint
    assert "tenants[].isolation" in hint and "never" in hint.lower()
    assert "to td-graph's service principal" not in hint
    texts = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "td_graph_plugin").rglob("*.py")]
    for path in texts:
        assert "Privileged Authentication Administrator to td-graph's service principal" not in path.read_text(
            encoding="utf-8"), path


def test_release_force_runs_the_privileged_role_guard(world):
    dw._update_user(world.t, world.alice["id"], {"accountEnabled": False})
    world.d.assign_role(world.alice["id"], "Security Administrator")
    r = world.release(force=True)
    assert r.outcome == "refused" and r.exit_code == 1
    assert "Security Administrator" in steps(r)["guard"].detail and "--allow-privileged" in steps(r)["guard"].detail
    assert world.d.writes == [] and world.user(world.alice["id"])["accountEnabled"] is False
    world.d.set_app_roles("Privileged Authentication Administrator")
    r = world.release(force=True, allow_privileged=True)
    assert r.outcome == "ok" and world.user(world.alice["id"])["accountEnabled"] is True


def test_release_force_refuses_a_protected_or_pim_eligible_account(world):
    dw._update_user(world.t, world.alice["id"], {"accountEnabled": False})
    dg.pim(world.t).eligible_role(world.alice["id"], "Security Administrator")
    r = world.release(force=True)
    assert r.outcome == "refused" and "PIM-eligible" in steps(r)["guard"].detail
    world.protect("alice@contoso.test")
    r = world.release(force=True, allow_privileged=True)
    assert r.outcome == "refused" and "protected" in steps(r)["guard"].detail
    assert world.d.writes == []


# =========================================================================== Medium 8: interrupted


def test_a_started_record_is_stored_before_the_first_write(world):
    seen: list[list[dict]] = []

    def spy(method: str, path: str, query: dict) -> None:
        if method != "GET":
            seen.append(world.rows())

    world.client.on_request = spy
    r = world.isolate()
    assert r.outcome == "ok"
    before_patch = seen[0]
    assert len(before_patch) == 1
    started = before_patch[0]
    assert started["data"]["outcome"] == "pending" and started["data"]["action_id"] == r.action_id
    assert started["id"] == r.action_id + ":started"
    assert started["data"]["before"]["accountEnabled"] is True
    assert [s["step"] for s in started["data"]["steps"]] == ["resolve", "guard", "snapshot"]
    rows = world.rows()
    assert [x["data"]["outcome"] for x in rows] == ["pending", "ok"]
    assert rows[-1]["id"] == r.action_id


def test_ctrl_c_during_revoke_is_audited_and_release_restores(world):
    world.client.interrupt("POST", r"/users/[^/]+/revokeSignInSessions")
    with pytest.raises(KeyboardInterrupt) as caught:
        world.isolate()
    assert world.user(world.alice["id"])["accountEnabled"] is False  # the disable took effect
    result = caught.value.isolation_result
    s = steps(result)
    assert result.outcome == "interrupted" and result.exit_code == 1
    assert s["disable"].status == "ok" and s["revoke_sessions"].status == "interrupted"
    assert "may" in s["revoke_sessions"].detail
    rows = world.rows()
    assert [x["data"]["outcome"] for x in rows] == ["pending", "interrupted"]
    assert world.emitted[-1]["data"]["outcome"] == "interrupted" and world.emitted[-1]["id"] == result.action_id
    assert world.metric("isolate", "interrupted") == 1.0
    assert "INTERRUPTED" in render(result)
    # The interrupted isolation is what release restores from.
    rel = world.release()
    assert rel.outcome == "ok" and steps(rel)["enable"].status == "ok"
    assert world.user(world.alice["id"])["accountEnabled"] is True
    # Running isolate again after an interrupt finishes the job: revoke was never confirmed.
    world.client.interrupt("POST", r"/users/[^/]+/revokeSignInSessions")
    with pytest.raises(KeyboardInterrupt):
        world.isolate()
    again = world.isolate()
    assert steps(again)["disable"].status == "skipped" and steps(again)["revoke_sessions"].status == "ok"


def test_a_killed_isolation_leaves_its_started_record_and_release_understands_it(world):
    """kill -9 after the disable: only the started record exists; release still re-enables."""
    world.client.interrupt("POST", r"/users/[^/]+/revokeSignInSessions")
    with pytest.raises(KeyboardInterrupt):
        world.isolate()
    world.state._db.execute("DELETE FROM isolations WHERE record LIKE '%\"outcome\": \"interrupted\"%'")
    assert [x["data"]["outcome"] for x in world.rows()] == ["pending"]
    rel = world.release()
    assert rel.outcome == "ok" and steps(rel)["enable"].status == "ok"
    assert "interrupted" in steps(rel)["record"].detail or "did not finish" in steps(rel)["record"].detail
    assert world.user(world.alice["id"])["accountEnabled"] is True


def test_no_write_when_the_started_record_cannot_be_stored(world, monkeypatch):
    def broken(*a, **kw):
        raise OSError("database is locked " + SECRETISH)

    monkeypatch.setattr(world.state, "add_isolation", broken)
    r = world.isolate()
    assert world.client.writes == [] and world.d.writes == []
    assert r.outcome == "failed" and r.exit_code == 1 and r.audit_error
    assert SECRETISH not in r.audit_error and "OSError" in r.audit_error


def test_dry_runs_and_refusals_store_no_started_record(world):
    world.isolate(dry_run=True)
    world.d.assign_role(world.alice["id"], "Security Administrator")
    world.isolate()
    assert [x["data"]["outcome"] for x in world.rows()] == ["dry_run", "refused"]


# =========================================================================== Medium 9: PIM


def test_a_pim_eligible_directory_role_is_privileged(world):
    dg.pim(world.t).eligible_role(world.alice["id"], "Security Administrator")
    r = world.isolate()
    assert r.outcome == "refused" and "Security Administrator (PIM-eligible)" in steps(r)["guard"].detail
    assert world.d.writes == []
    flt = [q.get("$filter") for p, q in _reads(world) if p == "/roleManagement/directory/roleEligibilityScheduleInstances"]
    assert flt == [f"principalId eq '{world.alice['id']}'"]


def test_pim_for_groups_eligible_membership_of_a_role_assignable_group_is_privileged(world):
    g = world.d.add_group("Tier0-PIM", [], roles=["Helpdesk Administrator"])
    dg.pim(world.t).eligible_for_group(world.alice["id"], g["id"])
    r = world.isolate()
    detail = steps(r)["guard"].detail
    assert r.outcome == "refused" and "Tier0-PIM" in detail and "Helpdesk Administrator" in detail
    assert "PIM-eligible" in detail
    flt = [q.get("$filter") for p, q in _reads(world)
           if p == "/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances"]
    assert flt == [f"principalId eq '{world.alice['id']}'"]


def test_pim_eligible_ownership_of_a_role_assignable_group_is_privileged(world):
    g = world.d.add_group("Tier0-owners", [])
    dg.pim(world.t).eligible_for_group(world.alice["id"], g["id"], access="owner")
    r = world.isolate()
    assert r.outcome == "refused" and "Tier0-owners" in steps(r)["guard"].detail


def test_pim_eligible_membership_of_an_ordinary_group_is_not_privileged(world):
    g = world.d.add_group("Sales approvers", [], assignable=False)
    dg.pim(world.t).eligible_for_group(world.alice["id"], g["id"])
    assert world.isolate().outcome == "ok"


@pytest.mark.parametrize("path", [r"/roleManagement/directory/roleEligibilityScheduleInstances",
                                  r"/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances"])
@pytest.mark.parametrize("status", [403, 503])
def test_a_pim_check_that_cannot_be_made_fails_closed(world, path, status):
    world.client.fail("GET", path, status)
    r = world.isolate()
    detail = steps(r)["guard"].detail
    assert r.outcome == "refused" and "could not check" in detail and "--allow-privileged" in detail
    assert world.client.writes == []
    world.client.fail("GET", path, status)
    r = world.isolate(allow_privileged=True)
    assert r.outcome == "ok" and any("PIM" in w for w in r.warnings)


def test_the_pim_routes_answer_like_graph_over_tls(sim):
    from td_graph_plugin.config.model import HttpConfig
    from td_graph_plugin.errors import GraphBadRequest, GraphPermissionError
    from td_graph_plugin.graph.client import GraphClient

    t = sim.add_tenant(volumes={"users": 2, "sign_ins": 0, "directory_audits": 0, "alerts": 0})
    d = dw.directory(t)
    u = d.add_user("pim@contoso.test")
    g = d.add_group("PIM group", [])
    p = dg.pim(t)
    p.eligible_role(u["id"], "Global Administrator")
    p.eligible_for_group(u["id"], g["id"])
    cfg = TenantConfig(name="sim", tenant_id=t.tenant_id, client_id=t.client_id, client_secret=Secret(t.client_secret),
                       login_endpoint=sim.base_url, graph_endpoint=sim.base_url, ca_bundle=sim.ca_path)
    client = GraphClient(cfg, HttpConfig(max_retries=1), sleep=lambda s: None)
    try:
        got = client.get_json(client.url("v1.0", "/roleManagement/directory/roleEligibilityScheduleInstances"),
                              params={"$filter": f"principalId eq '{u['id']}'"})
        (inst,) = got["value"]
        assert inst["principalId"] == u["id"] and inst["roleDefinitionId"] == "62e90394-69f5-4237-9190-012177145e10"
        assert inst["directoryScopeId"] == "/" and inst["memberType"] == "Direct"
        got = client.get_json(client.url("v1.0", "/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances"),
                              params={"$filter": f"principalId eq '{u['id']}'"})
        (inst,) = got["value"]
        assert inst["groupId"] == g["id"] and inst["accessId"] == "member" and inst["id"] == f"{g['id']}_member_{u['id']}"
        with pytest.raises(GraphBadRequest):  # the documented required $filter
            client.get_json(client.url("v1.0", "/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances"))
        # /users without $filter is still the endpoint table's list (the route delegates to it).
        got = client.get_json(client.url("v1.0", "/users"), params={"$top": "2"})
        assert len(got["value"]) == 2 and "@odata.nextLink" in got
        got = client.get_json(client.url("v1.0", "/users"), params={"$filter": f"mail eq 'pim@contoso.test'"})
        assert [x["id"] for x in got["value"]] == [u["id"]]
        with pytest.raises(GraphBadRequest):
            client.get_json(client.url("v1.0", "/users"), params={"$filter": "jobTitle eq 'x'"})
        got = client.get_json(client.url("v1.0", f"/groups/{g['id']}"), params={"$select": "id,displayName,isAssignableToRole"})
        assert got["isAssignableToRole"] is True and got["displayName"] == "PIM group"
        t.permissions = ["User.Read.All", "Directory.Read.All"]
        for path in ("/roleManagement/directory/roleEligibilityScheduleInstances",
                     "/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances"):
            with pytest.raises(GraphPermissionError):
                client.get_json(client.url("v1.0", path), params={"$filter": f"principalId eq '{u['id']}'"})
    finally:
        client.close()


# =========================================================================== Low


def test_the_operator_is_the_real_uid_not_the_USER_variable(world, monkeypatch):
    monkeypatch.setenv("USER", "attacker")
    monkeypatch.setenv("LOGNAME", "attacker")
    monkeypatch.setenv("USERNAME", "attacker")
    real = pwd.getpwuid(os.getuid()).pw_name
    r = world.isolate(dry_run=True)
    assert r.requested_by == real and r.os_user == real
    assert world.emitted[-1]["data"]["os_user"] == real and "attacker" not in orjson.dumps(world.emitted).decode()
    r = world.isolate(dry_run=True, requested_by="soar-playbook")
    assert r.requested_by == "soar-playbook" and r.os_user == real


def test_no_raw_exception_text_in_any_audit_record_report_or_log(world, caplog):
    caplog.set_level(logging.DEBUG)
    world.client.interrupt("PATCH", r"/users/[^/]+", GraphTransient(f"connection reset ({SECRETISH})",
                                                                    status=503, code="serviceNotAvailable",
                                                                    request_id="rid-1234"))
    world.client.interrupt("POST", r"/users/[^/]+/revokeSignInSessions", RuntimeError(f"bug with {SECRETISH}"))
    r = world.isolate()
    s = steps(r)
    assert s["disable"].status == "failed" and s["disable"].error_code == "serviceNotAvailable"
    assert s["disable"].request_id == "rid-1234" and "503" in s["disable"].detail
    assert s["revoke_sessions"].status == "failed" or s.get("internal") is not None
    blob = orjson.dumps(world.emitted).decode() + render(r) + caplog.text + orjson.dumps(r.to_dict()).decode()
    for row in world.state._db.execute("SELECT record FROM isolations"):
        blob += row[0]
    assert "Zq8~s3cr3tV4lue" not in blob and "connection reset" not in blob and "bug with" not in blob
    assert "RuntimeError" in blob  # the type is said, never the text


def test_graph_error_messages_are_not_copied_into_the_record(world):
    world.d.fail_next("revoke", 403)  # Graph's message: "Insufficient privileges to complete the operation."
    r = world.isolate()
    d = steps(r)["revoke_sessions"]
    assert d.status == "failed" and d.http_status == 403 and d.error_code == "Authorization_RequestDenied"
    assert "Insufficient privileges" not in d.detail and len(d.detail) <= 200


# =========================================================================== the CLI


def _cli_env(sim, tmp_path, tenant_extra: dict, env_extra: dict, protected=("breakglass@contoso.test",)):
    from test_isolation_cli import Env

    e = Env(sim, tmp_path)
    cfg = yaml.safe_load(open(e.config, encoding="utf-8"))
    cfg["tenants"][0].update(tenant_extra)
    cfg["isolation"] = {"protected_users": list(protected)}
    with open(e.config, "w", encoding="utf-8") as fh:
        yaml.safe_dump(cfg, fh)
    base_run = e.run

    def run(*args: str) -> subprocess.CompletedProcess:
        old = dict(os.environ)
        os.environ.update(env_extra)
        try:
            return base_run(*args)
        finally:
            os.environ.clear()
            os.environ.update(old)

    e.run = run
    return e


def test_cli_isolates_with_the_separate_credential_only(sim, tmp_path):
    """The collector's secret is wrong; the isolation app's is right: isolate must work."""
    e = _cli_env(sim, tmp_path, {"client_secret": "${COLLECTOR_SECRET_T13}",
                                 "isolation": {"client_id": "${ISO_APP_T13}", "client_secret": "${ISO_SECRET_T13}"}},
                 {"COLLECTOR_SECRET_T13": "wrong-collector-secret"})
    os.environ["ISO_APP_T13"] = e.t.client_id
    os.environ["ISO_SECRET_T13"] = e.t.client_secret
    try:
        p = e.isolate("alice@contoso.test")
        assert p.returncode == 0, p.stderr
        assert e.d.find_user(e.alice["id"])["accountEnabled"] is False
        r = e.release("alice@contoso.test")
        assert r.returncode == 0, r.stderr
    finally:
        del os.environ["ISO_APP_T13"], os.environ["ISO_SECRET_T13"]


def test_cli_an_unset_variable_in_the_isolation_block_is_exit_2_for_isolate_only(sim, tmp_path):
    e = _cli_env(sim, tmp_path, {"isolation": {"client_id": e_id(), "client_secret": "${UNSET_ISO_SECRET_T13}"}}, {})
    os.environ.pop("UNSET_ISO_SECRET_T13", None)
    p = e.isolate("alice@contoso.test")
    assert p.returncode == 2 and "UNSET_ISO_SECRET_T13" in p.stderr
    assert e.graph_writes() == [] and e.d.find_user(e.alice["id"])["accountEnabled"] is True
    assert e.release("alice@contoso.test", "--force").returncode == 2


def e_id() -> str:
    return "9a1e6c3f-0000-4000-8000-00000000150a"


def test_cli_doctor_names_unresolvable_protected_entries(sim, tmp_path):
    e = _cli_env(sim, tmp_path, {}, {}, protected=("breakglass@contoso.test", "typo@contoso.test"))
    p = e.run("doctor", "-c", e.config, "--format", "json")
    report = json.loads(p.stdout)["tenants"][0]
    assert report["protected_users"]["unresolvable"] == ["typo@contoso.test"]
    assert report["isolation"]["credential"] == "the collector's app (no tenants[].isolation)"
    # The simulator grants every permission: the collector's app can disable users.
    assert "User.EnableDisableAccount.All" in report["isolation"]["warnings"][0]
    table = e.run("doctor", "-c", e.config)
    assert "typo@contoso.test" in table.stdout and "protected_users" in table.stdout
    assert "WARNING: the collector's credential holds" in table.stdout


def test_cli_sigterm_during_revoke_is_audited_as_interrupted(sim, tmp_path):
    from test_isolation_cli import Env, _cli

    e = Env(sim, tmp_path)
    original, _m, _k = sim_routes.match("POST", "v1.0", f"/users/{e.alice['id']}/revokeSignInSessions")
    arrived, go = threading.Event(), threading.Event()

    def blocking(req):
        arrived.set()
        go.wait(60)
        return original.handler(req)

    register_route("POST", original.pattern, blocking, permissions=original.permissions, throttle=original.throttle)
    try:
        env = dict(os.environ, TD_GRAPH_DEMO_SECRET=e.t.client_secret)
        env.pop("REQUESTS_CA_BUNDLE", None)
        proc = subprocess.Popen([*_cli(), "isolate", "-c", e.config, "--tenant", "demo", "alice@contoso.test",
                                 "--reason", "INC-13"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert arrived.wait(60), "the revoke request never arrived"
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            go.set()
            if proc.poll() is None:
                proc.kill()
    finally:
        register_route("POST", original.pattern, original.handler, permissions=original.permissions,
                       throttle=original.throttle)
    assert proc.returncode == 143, err
    assert "INTERRUPTED" in err
    audit = StateStore(str(tmp_path / "state-isolation.db"), exclusive=False)
    try:
        outcomes = [r["data"]["outcome"] for r in audit.isolations("demo", e.alice["id"])]
    finally:
        audit.close()
    assert outcomes == ["pending", "interrupted"]
    assert e.d.find_user(e.alice["id"])["accountEnabled"] is False
    r = e.release("alice@contoso.test")
    assert r.returncode == 0, r.stderr
    assert e.d.find_user(e.alice["id"])["accountEnabled"] is True
