"""Issue 12 (data semantics): directory $select, event_time_field, unknown enum members, the
licence flip-flop, clouds per source, and report row identity.

Every expected value is written by hand from the Microsoft Graph page cited next to it; none is
computed with the product's own functions (catalogue, parse_time, format_time, row_id).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from td_graph_plugin.cli.catalogue_view import render_sources
from td_graph_plugin.collector import Engine, SyncSink
from td_graph_plugin.collector.context import SourceRun
from td_graph_plugin.errors import ConfigError
from td_graph_plugin.config.loader import load_config
from td_graph_plugin.config.model import Config, Secret, SourceSettings, SourcesConfig, TenantConfig
from td_graph_plugin.discovery import Discovery
from td_graph_plugin.licensing import capabilities_from_skus
from td_graph_plugin.plan import verdict_for
from td_graph_plugin.simulator import GraphSimulator
from td_graph_plugin.sources.reports import office365_csv_pager
from td_graph_plugin.spec import SourceSpec
from td_graph_plugin.state import StateStore
from tests.fakes import FakeWindowClient, ListOutput
from tests.integration_support import env_for, read_records, td_graph, write_config

pytestmark = pytest.mark.timeout(120)

PREFER = "include-unknown-enum-members"


# --- item 2: event_time_field ---------------------------------------------------------------
def test_event_time_field_defaults_to_the_time_field_and_may_be_none():
    window = SourceSpec(name="acme.events", path="/acme/events", mode="window", permissions=["A.Read.All"],
                        time_field="createdDateTime")
    assert window.event_time_field == "createdDateTime"
    # The contract's smallest plugin spec has no timestamp: the observed time is used.
    smallest = SourceSpec(name="acme.widgets", path="/acme/widgets", mode="snapshot", permissions=["Acme.Read.All"])
    assert smallest.event_time_field is None
    explicit = SourceSpec(name="acme.risk", path="/acme/risk", mode="window", permissions=["A.Read.All"],
                          time_field="lastUpdatedDateTime", event_time_field="activityDateTime")
    assert (explicit.time_field, explicit.event_time_field) == ("lastUpdatedDateTime", "activityDateTime")


def test_sources_json_names_each_sources_event_time_field(catalogue):
    rows = {r["name"]: r for r in json.loads(render_sources(catalogue, "json"))}
    assert all("event_time_field" in r for r in rows.values())
    # riskDetection: activityDateTime "Date and time that the risky activity occurred";
    # lastUpdatedDateTime stays the cursor (learn.microsoft.com/graph/api/resources/riskdetection).
    assert rows["identity_protection.risk_detections"]["event_time_field"] == "activityDateTime"
    assert rows["identity_protection.risk_detections"]["time_field"] == "lastUpdatedDateTime"
    assert rows["identity_protection.service_principal_risk_detections"]["event_time_field"] == "activityDateTime"
    # The usage report's rows carry "Report Refresh Date" (reportroot-getoffice365activeuserdetail).
    assert rows["reports.office365_active_users"]["event_time_field"] == "Report Refresh Date"
    assert rows["audit_logs.sign_ins"]["event_time_field"] == "createdDateTime"
    # Delta inventory and consent requests carry no timestamp of the change: observed time.
    for name in ("directory.users", "directory.groups", "directory.devices", "directory.applications",
                 "directory.service_principals", "governance.app_consent_requests"):
        assert rows[name]["event_time_field"] is None, name


# --- item 1: directory $select ----------------------------------------------------------------
def test_directory_delta_sources_select_the_security_properties(catalogue):
    # user resource (learn.microsoft.com/graph/api/resources/user); without $select only the
    # default set is tracked (learn.microsoft.com/graph/api/user-delta, Example 1).
    users = set(catalogue["directory.users"].select)
    assert {"id", "accountEnabled", "userType", "createdDateTime", "onPremisesSyncEnabled",
            "externalUserState", "userPrincipalName"} <= users
    assert {"id", "securityEnabled", "isAssignableToRole", "membershipRule"} <= set(catalogue["directory.groups"].select)
    assert {"id", "accountEnabled", "isCompliant", "isManaged", "trustType"} <= set(catalogue["directory.devices"].select)
    assert {"id", "appId", "keyCredentials", "passwordCredentials", "requiredResourceAccess"} <= set(
        catalogue["directory.applications"].select)
    assert {"id", "appId", "accountEnabled", "keyCredentials", "passwordCredentials"} <= set(
        catalogue["directory.service_principals"].select)
    # SharePoint-stored properties are never tracked by delta (delta-query-overview#limitations).
    assert not users & {"skills", "aboutMe", "interests", "mailboxSettings"}


def _run(spec: SourceSpec, settings: SourceSettings) -> SourceRun:
    return SourceRun(tenant=None, spec=spec, settings=settings, client=None, state=None, sink=None,  # type: ignore[arg-type]
                     metrics=None, stop=threading.Event())  # type: ignore[arg-type]


def test_select_setting_replaces_the_spec_list(catalogue):
    spec = catalogue["directory.users"]
    assert _run(spec, SourceSettings()).base_params()["$select"].split(",")[:2] == ["id", "businessPhones"]
    assert _run(spec, SourceSettings(select=("id", "accountEnabled"))).base_params() == {"$select": "id,accountEnabled"}


def _config_file(tmp_path, settings: Any) -> str:
    cfg = {
        "tenants": [{"name": "contoso", "tenant_id": "0f0e0d0c-0b0a-4909-8807-060504030201",
                     "client_id": "11111111-2222-4333-8444-555555555555", "client_secret": "not-a-real-secret-123"}],
        "sources": {"settings": {"directory.users": settings}},
    }
    path = tmp_path / "td-graph.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def test_select_setting_is_read_from_the_config(tmp_path):
    cfg = load_config(_config_file(tmp_path, {"select": ["id", "displayName", "accountEnabled"]}))
    assert cfg.sources.settings["directory.users"].select == ("id", "displayName", "accountEnabled")
    with pytest.raises(ConfigError) as err:
        load_config(_config_file(tmp_path, {"select": "accountEnabled"}))
    assert "sources.settings.directory.users.select" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(_config_file(tmp_path, {"select": []}))
    assert "select" in str(err.value)


# --- item 3: unknown enum members --------------------------------------------------------------
def test_prefer_include_unknown_enum_members_on_sources_with_evolvable_enums(catalogue):
    # riskDetail is an evolvable enum: adminDismissedRiskForSignIn only with the Prefer header
    # (learn.microsoft.com/graph/api/resources/riskdetail); signIn.riskDetail uses it too.
    for name in ("identity_protection.risky_users", "identity_protection.risk_detections",
                 "identity_protection.risky_service_principals",
                 "identity_protection.service_principal_risk_detections", "audit_logs.sign_ins",
                 "audit_logs.sign_ins_non_interactive", "audit_logs.sign_ins_service_principal",
                 "audit_logs.sign_ins_managed_identity", "security.alerts_v2", "security.incidents"):
        assert catalogue[name].headers.get("Prefer") == PREFER, name


# --- item 6: licence flip-flop and service plans ---------------------------------------------------
def test_business_premium_and_defender_for_business_plans_grant_their_capabilities():
    # "Microsoft 365 Business Premium" rows of Microsoft's service-plan table: MDE_SMB
    # (bfc1bbd9-981b-4f71-9b82-17c35fd0e2a4) "Microsoft Defender for Business", INTUNE_SMBIZ
    # (8e9ff0ff-aa7a-4b20-83c1-2f636b600ac2) "Microsoft Intune", AAD_PREMIUM "Microsoft Entra ID P1".
    skus = [{"skuPartNumber": "SPB", "capabilityStatus": "Enabled", "servicePlans": [
        {"servicePlanName": "MDE_SMB", "provisioningStatus": "Success"},
        {"servicePlanName": "INTUNE_SMBIZ", "provisioningStatus": "Success"},
        {"servicePlanName": "AAD_PREMIUM", "provisioningStatus": "Success"},
    ]}]
    assert capabilities_from_skus(skus) == {"defender_xdr", "intune", "entra_id_p1"}
    standalone = [{"skuPartNumber": "MDE_SMB", "capabilityStatus": "Enabled",
                   "servicePlans": [{"servicePlanName": "MDE_SMB", "provisioningStatus": "Success"}]}]
    assert capabilities_from_skus(standalone) == {"defender_xdr"}


class _Planner:
    """A planner whose discovery never knows the tenant's Defender licence (a SKU we miss)."""

    def __init__(self) -> None:
        self.discovery_at = time.time() - 60  # discovered before the probe below
        self.invalidated = 0

    def discovery(self, tenant: str, client: Any) -> Discovery:
        return Discovery(capabilities=set(), permissions={"SecurityAlert.Read.All"}, at=self.discovery_at)

    def invalidate(self, tenant: str) -> None:
        self.invalidated += 1


def test_a_successful_probe_keeps_an_unlicensed_planned_source_running(tmp_path, catalogue):
    tenant = TenantConfig(name="contoso", tenant_id="0f0e0d0c-0b0a-4909-8807-060504030201",
                          client_id="11111111-2222-4333-8444-555555555555", client_secret=Secret("not-a-real-secret-123"))
    config = Config(tenants=(tenant,), sources=SourcesConfig(include=("security.alerts_v2",)))
    state = StateStore(str(tmp_path / "state.db"))
    alert = {"id": "a1", "createdDateTime": "2026-12-01T10:00:00Z", "lastUpdateDateTime": "2026-12-01T10:00:00Z"}
    client = FakeWindowClient([alert])
    try:
        engine = Engine(config, catalogue, state=state, sink=SyncSink(ListOutput(), state),
                        client_factory=lambda t: client, planner=_Planner())  # type: ignore[arg-type]
        job = engine.jobs()[0]
        assert engine.run_job(job).status == "unlicensed" and client.calls == []  # the plan skips it
        # Its re-check time comes: one probing attempt, and Graph answers 200.
        row = state.source_status("contoso", "security.alerts_v2")
        state.set_source_status("contoso", "security.alerts_v2", "unlicensed", row["reason"], time.time() - 1)
        assert engine.run_job(job).status == "ok" and len(client.calls) == 1
        # The next job runs too (before the fix it was skipped again for an hour).
        result = engine.run_job(job)
        assert result.status == "ok", result.error
        assert len(client.calls) == 2
    finally:
        state.close()


# --- item 7: clouds per source -----------------------------------------------------------------------
CHINA_SKIPPED = {
    # "global-us" national-cloud tables: Global, US Gov L4, L5 - not China (21Vianet).
    "identity_protection.risk_detections": "https://learn.microsoft.com/graph/api/riskdetection-list",
    "audit_logs.provisioning": "https://learn.microsoft.com/graph/api/provisioningobjectsummary-list",
    # alerts_v2: ✅ Global, L4, L5, ❌ China (graph-facts §0.1 [S1]).
    "security.alerts_v2": "https://learn.microsoft.com/graph/api/security-list-alerts_v2",
}


def test_china_verdict_names_the_cloud_and_the_page(catalogue):
    for name, page in CHINA_SKIPPED.items():
        v = verdict_for(catalogue[name], "china", None)
        assert (v.status, v.reason) == ("disabled", f"not offered in the china cloud (see {page})")
        assert verdict_for(catalogue[name], "usgov", None).runs
    assert verdict_for(catalogue["identity_protection.risky_users"], "china", None).status == "disabled"
    assert verdict_for(catalogue["directory.users"], "china", None).runs  # delta: all clouds


def _china_config(sim, tenant, tmp_path, sources) -> str:
    path = write_config(sim, tenant, tmp_path, output=str(tmp_path / "records.ndjson"), sources=sources)
    cfg = yaml.safe_load(open(path))
    cfg["tenants"][0]["cloud"] = "china"
    with open(path, "w") as fh:
        yaml.safe_dump(cfg, fh, sort_keys=False)
    return path


def test_china_tenant_skips_global_us_sources_without_a_request(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as sim:
        tenant = sim.add_tenant(profile="all")
        cfg = _china_config(sim, tenant, tmp_path, sorted(CHINA_SKIPPED))
        proc = td_graph("run", "-c", cfg, "--once", env=env_for(tenant))
        err = proc.stderr.decode()
        assert proc.returncode == 0, err[-3000:]
        for name in CHINA_SKIPPED:
            assert f"{name}: not offered in the china cloud" in err
        assert not [r.path for r in sim.requests], "no request at all: every chosen source is skipped"
        # doctor's plan line prints verdict_for's reason (test_china_verdict_names_the_cloud_and_the_page);
        # against the simulator a china tenant gets no token (its scope is the china cloud's), and
        # doctor prints no plan without a token.


# --- item 8: report row identity ------------------------------------------------------------------------
_CSV = (
    "\ufeffReport Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Assigned Products\r\n"
    "2026-11-29,alice@contoso.com,Alice,False,,OFFICE 365 E3\r\n"
    "2026-11-29,alice@contoso.com,Alice,True,2026-11-02,OFFICE 365 E3\r\n"
    "2026-11-29,alice@contoso.com,Alice (old),True,2026-10-15,\r\n"
)


class _ReportClient:
    def __init__(self, body: str) -> None:
        self.body = body.encode("utf-8")

    def request(self, method: str, url: str, **kw: Any) -> Any:
        return SimpleNamespace(status_code=200, headers={}, url=url, content=self.body)


def _rows(body: str) -> list[dict[str, Any]]:
    spec = SimpleNamespace(name="reports.office365_active_users", throttle_class="usage_reports", path="/r")
    pages = list(office365_csv_pager(_ReportClient(body), spec, "https://graph.test/r", None))
    return pages[0].items


def _expected_id(key: str) -> str:
    """The id spelled out: sha256 of "UPN, Is Deleted, Deleted Date" (lower-cased, unit-separated)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def test_report_rows_get_a_stable_composite_id(catalogue):
    spec = catalogue["reports.office365_active_users"]
    rows = _rows(_CSV)
    ids = [r[spec.id_field] for r in rows]
    # A live and two deleted users share the UPN: three distinct ids.
    assert ids == [_expected_id("alice@contoso.com\x1ffalse\x1f"),
                   _expected_id("alice@contoso.com\x1ftrue\x1f2026-11-02"),
                   _expected_id("alice@contoso.com\x1ftrue\x1f2026-10-15")]
    # Stable: a display-name or licence change, or a UPN's letter case, does not change it.
    renamed = _CSV.replace("Alice,False,,OFFICE 365 E3", "Alice Smith,False,,OFFICE 365 E5").replace(
        "alice@contoso.com,Alice Smith", "Alice@Contoso.com,Alice Smith")
    assert _rows(renamed)[0][spec.id_field] == ids[0]
    assert all(r["User Principal Name"] == "alice@contoso.com" for r in rows)  # the columns unchanged


# --- item 1 end to end: disabling a user is a record on the next pass ---------------------------------------
def _fast(cfg_path: str) -> None:
    cfg = yaml.safe_load(open(cfg_path))
    cfg["throttling"] = {cls: {"requests": 10000, "per": "10s"} for cls in ("default", "directory")}
    with open(cfg_path, "w") as fh:
        yaml.safe_dump(cfg, fh, sort_keys=False)


def test_disabling_a_user_is_a_directory_users_record_on_the_next_pass(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as sim:
        tenant = sim.add_tenant(profile="all")
        out = tmp_path / "records.ndjson"
        cfg = write_config(sim, tenant, tmp_path, output=str(out), sources=["directory.users"])
        _fast(cfg)
        first = td_graph("run", "-c", cfg, "--once", env=env_for(tenant))
        assert first.returncode == 0, first.stderr.decode()[-3000:]
        before = len(read_records(out))
        victim = next(u for u in tenant.users if u.get("accountEnabled") is not False)
        tenant.update_object("users", victim["id"], accountEnabled=False)  # the simulator's state API
        second = td_graph("run", "-c", cfg, "--once", env=env_for(tenant))
        assert second.returncode == 0, second.stderr.decode()[-3000:]
        new = read_records(out)[before:]
        mine = [r for r in new if r["source"] == "directory.users" and r["id"] == victim["id"]]
        assert mine and mine[-1]["data"]["accountEnabled"] is False, new


def test_an_unknown_select_property_fails_the_first_call_naming_it(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as sim:
        tenant = sim.add_tenant(profile="all")
        cfg = write_config(sim, tenant, tmp_path, output=str(tmp_path / "r.ndjson"), sources=["directory.users"],
                           settings={"directory.users": {"select": ["id", "accountEnabled", "favouriteColour"]}})
        proc = td_graph("run", "-c", cfg, "--once", env=env_for(tenant))
        assert proc.returncode == 1
        assert "favouriteColour" in proc.stderr.decode()
