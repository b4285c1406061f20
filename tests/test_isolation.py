"""User isolation: guard rails, step results, idempotency, release, audit, metric, the API.

The service runs against the simulator's directory model (``simulator/directory_writes.py``)
through ``InProcessGraph``: the routes' handlers are called directly (no TLS, no retries) and
their error bodies go through td-graph's real ``classify``, so the service sees the same typed
errors and request ids as over HTTPS.  The CLI over HTTPS is in test_isolation_cli.py and the
graph.microsoft.com cassettes are in test_isolation_cassettes.py.
"""

from __future__ import annotations

import logging
import os
import pwd

import orjson
import pytest
from isolation_support import StaticTokens, World, steps

from td_graph_plugin.config.model import Config
from td_graph_plugin.isolation import IsolationService, open_store, render
from td_graph_plugin.isolation.resolve import user_path
from td_graph_plugin.plugins import create_plugin_manager
from td_graph_plugin.simulator import GraphSimulator
from td_graph_plugin.simulator import directory_writes as dw


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


# --------------------------------------------------------------------------- happy path and dry run


def test_isolate_disables_revokes_and_verifies(world):
    r = world.isolate("alice@contoso.test")
    s = steps(r)
    assert r.outcome == "ok" and r.exit_code == 0
    assert [x.name for x in r.steps] == ["resolve", "guard", "snapshot", "disable", "revoke_sessions",
                                         "force_password_change", "verify"]
    assert s["disable"].status == "ok" and s["revoke_sessions"].status == "ok"
    assert s["force_password_change"].status == "skipped"
    assert s["verify"].status == "ok" and "accountEnabled=false" in s["verify"].detail
    assert all(s[n].request_id for n in ("resolve", "disable", "revoke_sessions", "verify"))
    assert world.user(world.alice["id"])["accountEnabled"] is False
    assert [(w["method"], w["path"], w["body"]) for w in world.sim_writes()] == [
        ("PATCH", f"/users/{world.alice['id']}", {"accountEnabled": False}),
        ("POST", f"/users/{world.alice['id']}/revokeSignInSessions", None),
    ]
    assert r.before["accountEnabled"] is True and r.after["accountEnabled"] is False
    assert r.after["signInSessionsValidFromDateTime"] != r.before["signInSessionsValidFromDateTime"]


def test_dry_run_resolves_checks_and_plans_but_sends_no_write(world):
    world.d.assign_role(world.alice["id"], "Helpdesk Administrator")
    r = world.isolate("alice@contoso.test", dry_run=True, allow_privileged=True,
                      steps=["disable", "revoke_sessions", "force_password_change"])
    s = steps(r)
    assert r.outcome == "dry_run" and r.exit_code == 0
    assert world.client.writes == [] and world.d.writes == []
    assert {c[0] for c in world.client.calls} == {"GET"}
    assert [s[n].status for n in ("disable", "revoke_sessions", "force_password_change", "verify")] == ["planned"] * 4
    assert world.user(world.alice["id"])["accountEnabled"] is True
    assert world.emitted[0]["data"]["dry_run"] is True
    assert list(world.state.isolations("contoso", world.alice["id"]))[0]["data"]["outcome"] == "dry_run"
    assert world.metric("isolate", "dry_run") == 1.0


def test_dry_run_of_a_refused_target_is_refused(world):
    world.d.assign_role(world.alice["id"], "Global Administrator")
    r = world.isolate(dry_run=True)
    assert r.outcome == "refused" and r.exit_code == 1 and world.client.writes == []


# --------------------------------------------------------------------------- guard rails


@pytest.mark.parametrize("entry_kind,typed_kind", [("id", "upn"), ("upn", "id"), ("upn_case", "upn")])
def test_protected_user_refused_whatever_form_is_typed(sim, tmp_path, entry_kind, typed_kind):
    w = World(sim, tmp_path)
    bg = w.d.add_user("BreakGlass@contoso.test", "Break glass")
    entry = {"id": bg["id"], "upn": "BreakGlass@contoso.test", "upn_case": "breakglass@CONTOSO.test"}[entry_kind]
    w.config = Config(tenants=(w.tenant_cfg,), protected_users=("someone-else@contoso.test", entry))
    w.svc.config = w.config
    r = w.isolate(bg["id"] if typed_kind == "id" else "breakglass@contoso.test")
    assert r.outcome == "refused" and r.exit_code == 1
    assert steps(r)["guard"].status == "refused" and "protected" in steps(r)["guard"].detail
    assert w.client.writes == [] and w.d.writes == []
    assert w.user(bg["id"])["accountEnabled"] is True
    assert w.metric("isolate", "refused") == 1.0
    w.state.close()


def test_protected_upn_entries_are_resolved_to_object_ids(sim, tmp_path):
    """UPN entries that do not match the target's UPN textually are resolved and compared by id."""
    w = World(sim, tmp_path)
    other = w.d.add_user("other@contoso.test")
    w.svc.config = Config(tenants=(w.tenant_cfg,), protected_users=("other@contoso.test",))
    r = w.isolate(w.alice["id"])
    assert r.outcome == "ok"
    assert ("GET", "/users/other@contoso.test") in [(m, p) for m, p, _q, _b in w.client.calls]
    # The resolved id is what protects: the same entry refuses the account whatever is typed.
    r2 = w.isolate(other["id"])
    assert r2.outcome == "refused" and w.user(other["id"])["accountEnabled"] is True
    w.state.close()


def test_a_protected_entry_that_cannot_be_checked_fails_closed(world):
    world.svc.config = Config(tenants=(world.tenant_cfg,), protected_users=("bg3@contoso.test",))
    world.client.fail("GET", r"/users/bg3@contoso\.test", 503)
    r = world.isolate()
    assert r.outcome == "refused" and "isolation.protected_users entries that could not be checked" in steps(r)["guard"].detail
    assert "bg3@contoso.test" in steps(r)["guard"].detail
    assert world.client.writes == []


def test_unknown_protected_entry_refuses_and_names_it(world):
    """Fail closed (issue 13, High 2): an entry that resolves to nothing (a typo, a deleted
    account, an alias Graph does not know) refuses the isolation and names the entry."""
    world.svc.config = Config(tenants=(world.tenant_cfg,), protected_users=("gone@contoso.test",))
    r = world.isolate()
    assert r.outcome == "refused" and r.exit_code == 1
    assert "gone@contoso.test" in steps(r)["guard"].detail
    assert world.client.writes == [] and world.d.writes == []
    assert world.user(world.alice["id"])["accountEnabled"] is True


def test_own_application_is_refused(world):
    r = world.isolate(world.t.client_id)
    assert r.outcome == "refused" and "own" in steps(r)["guard"].detail and world.client.writes == []


def test_privileged_direct_role_refused_unless_allowed(world):
    world.d.assign_role(world.alice["id"], "Security Administrator")
    r = world.isolate()
    assert r.outcome == "refused" and "Security Administrator (direct)" in steps(r)["guard"].detail
    assert "--allow-privileged" in steps(r)["guard"].detail and world.d.writes == []
    world.d.set_app_roles("Privileged Authentication Administrator")
    r2 = world.isolate(allow_privileged=True)
    assert r2.outcome == "ok" and any("privileged target" in w for w in r2.warnings)
    assert [x["role"] for x in r2.roles] == ["Security Administrator"]


def test_privileged_via_role_assignable_group_refused(world):
    world.d.add_group("Tier0-Helpdesk", [world.alice["id"]], roles=["Helpdesk Administrator"])
    r = world.isolate()
    assert r.outcome == "refused"
    assert "Helpdesk Administrator (via group Tier0-Helpdesk)" in steps(r)["guard"].detail
    assert world.d.writes == []


def test_role_assignable_group_membership_alone_counts_as_privileged(world):
    world.d.add_group("PIM-eligible-admins", [world.alice["id"]])
    world.d.add_group("Plain group", [world.alice["id"]], assignable=False)
    r = world.isolate()
    assert r.outcome == "refused"
    assert "member of role-assignable group PIM-eligible-admins" in steps(r)["guard"].detail
    assert "Plain group" not in steps(r)["guard"].detail


def test_role_check_failure_fails_closed(world):
    world.client.fail("GET", r"/roleManagement/directory/roleAssignments", 503)
    r = world.isolate()
    assert r.outcome == "refused" and "could not check the user's directory roles" in steps(r)["guard"].detail
    assert world.client.writes == []


def test_allowed_privileged_target_beyond_the_apps_role_gets_403_with_the_role_to_add(world):
    world.d.assign_role(world.alice["id"], "Global Administrator")  # the app is only User Administrator
    r = world.isolate(allow_privileged=True)
    s = steps(r)
    assert r.outcome == "failed" and r.exit_code == 1
    assert s["disable"].http_status == 403 and s["disable"].error_code == "Authorization_RequestDenied"
    assert "Privileged Authentication Administrator" in s["disable"].hint
    assert world.user(world.alice["id"])["accountEnabled"] is True


def test_guest_and_synced_accounts_are_warned_about(world):
    guest = world.d.add_user("ext_partner.example#EXT#@contoso.test", "Partner", user_type="Guest")
    synced = world.d.add_user("bob@contoso.test", "Bob", on_premises_sync=True)
    rg = world.isolate("ext_partner.example#EXT#@contoso.test")
    assert rg.outcome == "ok" and rg.target.id == guest["id"]
    assert any("guest" in w and "home tenant" in w for w in rg.warnings)
    rs = world.isolate("bob@contoso.test")
    assert rs.outcome == "ok" and rs.target.id == synced["id"]
    assert any("on-premises AD" in w and "re-enable" in w for w in rs.warnings)
    assert "WARNING" in render(rs)


def test_user_path_encodes_upns_safely():
    assert user_path("ext_a.b#EXT#@contoso.test") == "/users/ext_a.b%23EXT%23@contoso.test"
    assert user_path("$admin@contoso.test") == "/users('$admin@contoso.test')"
    assert user_path("5F0E1A9C-3B7D-4C1E-9A8F-2D6B4E8C1A77") == "/users/5f0e1a9c-3b7d-4c1e-9a8f-2d6b4e8c1a77"
    for bad in ("", "  ", "../servicePrincipals", "a b@c", "x@y/z", "noatsign"):
        with pytest.raises(ValueError):
            user_path(bad)


def test_bad_arguments_are_usage_errors_before_any_request(world):
    with pytest.raises(ValueError):
        world.isolate(reason="  ")
    with pytest.raises(ValueError):
        world.isolate(steps=["disable", "delete_user"])
    with pytest.raises(ValueError):
        world.isolate("not a user")
    assert world.client.calls == [] and world.emitted == []


# --------------------------------------------------------------------------- failures


def test_404_is_a_failure(world):
    r = world.isolate("nobody@contoso.test")
    s = steps(r)
    assert r.outcome == "failed" and r.exit_code == 1
    assert s["resolve"].status == "failed" and s["resolve"].http_status == 404
    assert s["resolve"].error_code == "Request_ResourceNotFound" and s["resolve"].request_id
    assert world.client.writes == []
    assert world.emitted[0]["data"]["target"] == {"id": None, "input": "nobody@contoso.test"}
    assert world.metric("isolate", "failed") == 1.0


@pytest.mark.parametrize("status,kind", [(503, "transient"), (403, "forbidden")])
def test_revoke_failing_after_disable_is_partial_and_keeps_each_step(world, status, kind):
    world.d.fail_next("revoke", status)
    r = world.isolate()
    s = steps(r)
    assert r.outcome == "partial" and r.exit_code == 1
    assert s["disable"].status == "ok" and s["disable"].request_id
    assert s["revoke_sessions"].status == "failed" and s["revoke_sessions"].http_status == status
    assert s["revoke_sessions"].hint
    assert s["verify"].status == "ok"  # the disable that did happen is verified
    assert "disable took effect" in r.message and "revoke_sessions FAILED" in r.message
    assert world.user(world.alice["id"])["accountEnabled"] is False
    assert world.metric("isolate", "partial") == 1.0
    text = render(r)
    assert "FAILED   revoke sessions" in text and "ok       disable account" in text
    # Running it again finishes the job: disable is skipped, revoke is retried (it never took effect).
    r2 = world.isolate()
    assert steps(r2)["disable"].status == "skipped" and steps(r2)["revoke_sessions"].status == "ok"
    assert r2.outcome == "ok"


def test_read_back_that_disagrees_fails_verify(world, monkeypatch):
    """Graph accepted the PATCH but the account still reads as enabled: verify says so."""
    real = dw._update_user

    def ignore_disable(t, uid, fields):
        return real(t, uid, {k: v for k, v in fields.items() if k != "accountEnabled"} or {"jobTitle": "x"})

    monkeypatch.setattr(dw, "_update_user", ignore_disable)
    r = world.isolate()
    assert steps(r)["disable"].status == "ok"
    assert steps(r)["verify"].status == "failed" and "still true" in steps(r)["verify"].detail
    assert "replication" in steps(r)["verify"].hint
    assert r.outcome == "partial" and r.exit_code == 1


# --------------------------------------------------------------------------- idempotency


def test_reisolating_changes_nothing_and_says_so(world):
    assert world.isolate().outcome == "ok"
    writes = len(world.d.writes)
    r = world.isolate()
    s = steps(r)
    assert r.outcome == "noop" and r.exit_code == 0
    assert s["disable"].status == "skipped" and "already disabled" in s["disable"].detail
    assert s["revoke_sessions"].status == "skipped" and "--revoke-again" in s["revoke_sessions"].detail
    assert len(world.d.writes) == writes
    assert world.metric("isolate", "noop") == 1.0
    r3 = world.isolate(revoke_again=True)
    assert steps(r3)["revoke_sessions"].status == "ok" and r3.outcome == "ok"


# --------------------------------------------------------------------------- release


def test_release_reenables_and_says_what_is_not_undone(world):
    world.isolate(steps=["disable", "revoke_sessions", "force_password_change"])
    assert world.d.extras(world.alice)["passwordProfile"]["forceChangePasswordNextSignIn"] is True
    r = world.release()
    s = steps(r)
    assert r.outcome == "ok" and s["enable"].status == "ok" and s["verify"].status == "ok"
    assert world.user(world.alice["id"])["accountEnabled"] is True
    assert "NOT reverted" in s["force_password_change"].detail
    assert "cannot be restored" in s["revoke_sessions"].detail
    assert world.d.extras(world.alice)["passwordProfile"]["forceChangePasswordNextSignIn"] is True
    # Released: a second release has nothing to restore from.
    r2 = world.release()
    assert r2.outcome == "refused" and "last released" in steps(r2)["record"].detail


def test_release_keeps_an_account_that_was_disabled_before_isolation_disabled(world):
    _update = dw._update_user
    _update(world.t, world.alice["id"], {"accountEnabled": False})  # disabled by IT, for other reasons
    r1 = world.isolate()
    assert r1.outcome == "ok"  # sessions revoked; disable skipped
    assert steps(r1)["disable"].status == "skipped"
    world.isolate(revoke_again=True)  # a second isolation must not change the baseline
    r = world.release()
    s = steps(r)
    assert r.outcome == "ok" and s["enable"].status == "skipped"
    assert "already disabled before isolation" in s["enable"].detail
    assert world.user(world.alice["id"])["accountEnabled"] is False
    assert not [w for w in world.d.writes if w["body"] == {"accountEnabled": True}]


def test_release_without_a_record_is_refused_unless_forced(world):
    _update = dw._update_user
    _update(world.t, world.alice["id"], {"accountEnabled": False})
    r = world.release()
    assert r.outcome == "refused" and r.exit_code == 1
    assert "no active isolation record" in steps(r)["record"].detail and "--force" in steps(r)["record"].detail
    assert world.d.writes == []
    assert world.metric("release", "refused") == 1.0
    dry = world.release(force=True, dry_run=True)
    assert dry.outcome == "dry_run" and steps(dry)["enable"].status == "planned" and world.d.writes == []
    r2 = world.release(force=True)
    assert r2.outcome == "ok" and steps(r2)["enable"].status == "ok"
    assert world.user(world.alice["id"])["accountEnabled"] is True


def test_release_does_not_reenable_when_the_isolation_did_not_disable(world):
    world.isolate(steps=["revoke_sessions"])
    r = world.release()
    assert r.outcome == "ok" and "did not disable" in steps(r)["enable"].detail
    assert not [w for w in world.d.writes if w["body"] == {"accountEnabled": True}]


# --------------------------------------------------------------------------- audit, metric, secrets


def test_every_action_is_stored_and_emitted_as_an_envelope(world):
    operator = pwd.getpwuid(os.getuid()).pw_name  # the real uid's login (issue 13: never $USER)
    r = world.isolate(reason="INC-4711 phishing")
    rec = world.emitted[-1]
    assert set(rec) == {"tenant", "tenant_id", "source", "id", "event_time", "collected_at", "data"}
    assert rec["source"] == "td_graph.isolation" and rec["id"] == r.action_id and rec["tenant_id"] == world.t.tenant_id
    d = rec["data"]
    assert d["requested_by"] == operator and d["reason"] == "INC-4711 phishing"
    assert d["target"] == {"id": world.alice["id"], "userPrincipalName": "alice@contoso.test", "displayName": "Alice Example"}
    assert d["before"]["accountEnabled"] is True and d["after"]["accountEnabled"] is False
    assert [x["step"] for x in d["steps"]][3:5] == ["disable", "revoke_sessions"]
    assert all(x["request_id"] for x in d["steps"] if x["status"] == "ok" and x["step"] != "guard")
    assert d["dry_run"] is False and d["outcome"] == "ok"
    stored = list(world.state.isolations("contoso", world.alice["id"]))
    assert stored[-1]["action"] == "isolate" and stored[-1]["id"] == r.action_id and stored[-1]["data"] == d
    # Before the first write a started record was stored (issue 13, Medium 8).
    assert stored[-2]["id"] == r.action_id + ":started" and stored[-2]["data"]["outcome"] == "pending"
    world.release(requested_by="lead-analyst")
    assert world.emitted[-1]["data"]["requested_by"] == "lead-analyst"
    assert world.emitted[-1]["data"]["os_user"] == operator  # who really ran it stays on record
    assert world.metric("isolate", "ok") == 1.0 and world.metric("release", "ok") == 1.0
    assert b'td_graph_isolation_actions_total{action="isolate",result="ok",tenant="contoso"} 1.0' in world.metrics.exposition()


def test_no_secret_or_token_in_records_reports_or_logs(world, caplog):
    caplog.set_level(logging.DEBUG)
    world.d.fail_next("revoke", 403)
    results = [world.isolate(steps=["disable", "revoke_sessions", "force_password_change"], dry_run=True),
               world.isolate(steps=["disable", "revoke_sessions", "force_password_change"]), world.release()]
    blob = orjson.dumps(world.emitted).decode() + "".join(render(r) for r in results) + caplog.text
    blob += orjson.dumps([r.to_dict() for r in results]).decode()
    for row in world.state._db.execute("SELECT record FROM isolations"):
        blob += row[0]
    assert world.t.client_secret not in blob
    assert StaticTokens().token() not in blob
    assert '"password"' not in blob  # no password field is ever sent or recorded


def test_audit_failure_is_reported_and_not_hidden(world):
    def broken(record):
        raise OSError("disk full")

    world.svc.emit = broken
    r = world.isolate()
    assert r.outcome == "ok" and r.exit_code == 1 and "written to the output" in r.audit_error
    assert "OSError" in r.audit_error and "disk full" not in r.audit_error  # the kind, never the raw text
    assert list(world.state.isolations("contoso", world.alice["id"]))  # still stored
    assert "AUDIT ERROR" in render(r)


# --------------------------------------------------------------------------- the API (no hook)


def test_the_api_is_the_one_entry_point_a_soar_calls(world, tmp_path):
    pm = create_plugin_manager(load_entrypoints=False)
    assert not hasattr(pm.hook, "td_graph_isolate_user") and not hasattr(pm.hook, "td_graph_release_user")
    config = Config(tenants=(world.tenant_cfg,), isolation_state=str(tmp_path / "soar-isolation.db"))
    emitted: list[dict] = []
    with open_store(config) as store:  # an already loaded config, the store, an emit callable
        svc = IsolationService(config, state=store, emit=emitted.append, client_factory=lambda t: world.client,
                               sleep=lambda s: None)
        out = svc.isolate("contoso", "alice@contoso.test", "INC-9", ["disable", "revoke_sessions"], False,
                          requested_by="soar-playbook").to_dict()
        assert out["outcome"] == "ok" and out["exit_code"] == 0 and out["requested_by"] == "soar-playbook"
        assert [s["status"] for s in out["steps"] if s["step"] in ("disable", "revoke_sessions")] == ["ok", "ok"]
        rel = svc.release("contoso", "alice@contoso.test", "INC-9 closed", False, force=False,
                          requested_by="soar-playbook").to_dict()
        stored = list(store.isolations("contoso", world.alice["id"]))
        assert [(r["action"], r["data"]["outcome"]) for r in stored] == [
            ("isolate", "pending"), ("isolate", "ok"), ("release", "pending"), ("release", "ok")]
    assert rel["outcome"] == "ok" and world.user(world.alice["id"])["accountEnabled"] is True
    assert [r["data"]["action"] for r in emitted] == ["isolate", "release"]


def test_the_api_cannot_bypass_the_guard_rails(world):
    world.d.assign_role(world.alice["id"], "User Administrator")
    out = world.svc.isolate("contoso", world.alice["id"], "x", ["disable"], False, requested_by=None).to_dict()
    assert out["outcome"] == "refused" and world.d.writes == []
