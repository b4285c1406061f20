"""Issue 4: licence- and permission-aware collection, and `td-graph doctor`."""

from __future__ import annotations

import collections
import json
import threading
import time

import pytest

from td_graph_plugin.collector import SyncSink
from td_graph_plugin.discovery import Discovery
from td_graph_plugin.licensing import capabilities_from_skus
from td_graph_plugin.plan import TenantPlanner, missing_permissions, verdict_for
from td_graph_plugin.runtime import build_runtime, load_validated
from td_graph_plugin.simulator import GraphSimulator
from tests.fakes import ListOutput
from tests.integration_support import env_for, read_records, td_graph, write_config


def sku(part, status, plans):
    return {"skuPartNumber": part, "capabilityStatus": status,
            "servicePlans": [{"servicePlanName": n, "provisioningStatus": p} for n, p in plans]}


def test_capabilities_count_only_enabled_skus_and_provisioned_plans():
    skus = [
        sku("SPE_E5", "Enabled", [("AAD_PREMIUM", "Success"), ("AAD_PREMIUM_P2", "Success"), ("MTP", "Success"), ("INTUNE_A", "Disabled")]),
        sku("EMS", "Suspended", [("INTUNE_A", "Success")]),
        sku("AAD_WRKLDID", "Warning", [("AAD_WRKLDID_P1", "Success")]),
        sku("TRIAL", "Enabled", [("THREAT_INTELLIGENCE", "PendingActivation")]),
    ]
    assert capabilities_from_skus(skus) == {"entra_id_p1", "entra_id_p2", "defender_xdr", "workload_id_premium"}


def test_verdicts(catalogue):
    d = Discovery(capabilities={"entra_id_p1"}, permissions={"AuditLog.Read.All", "Directory.Read.All"})
    assert verdict_for(catalogue["audit_logs.sign_ins"], "global", d).runs
    v = verdict_for(catalogue["security.incidents"], "global", d)
    assert v.status == "forbidden" and "SecurityIncident.Read.All" in v.reason
    d.permissions |= {"SecurityIncident.Read.All"}
    v = verdict_for(catalogue["security.incidents"], "global", d)
    assert v.status == "unlicensed" and "Defender" in v.reason
    assert verdict_for(catalogue["security.incidents"], "china", d).status == "disabled"
    # Directory.Read.All satisfies the group delta requirement (a higher alternative).
    assert missing_permissions(catalogue["directory.groups"], {"Directory.Read.All"}) == []
    # Unknown discovery never blocks: runtime classification decides.
    assert verdict_for(catalogue["security.incidents"], "global", Discovery()).runs


@pytest.fixture
def sim(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as s:
        yield s


def plan_of(proc) -> dict[str, str]:
    report = json.loads(proc.stdout)
    return {p["source"]: p["status"] for p in report["tenants"][0]["plan"]}


@pytest.mark.parametrize("profile", ["all", "e5", "p1", "free", "restricted"])
def test_doctor_plan_and_exit_code_per_profile(sim, tmp_path, catalogue, profile):
    tenant = sim.add_tenant(profile=profile)
    cfg = write_config(sim, tenant, tmp_path, sources=["all"])
    proc = td_graph("doctor", "-c", cfg, "--format", "json", env=env_for(tenant))
    report = json.loads(proc.stdout)["tenants"][0]
    plan = plan_of(proc)
    assert set(plan) == set(catalogue.names())
    assert report["token"]["ok"] and report["permissions_from"] == "graph"
    if profile == "restricted":
        assert proc.returncode == 1
        assert set(report["missing_required"]) == {"SecurityIncident.Read.All", "IdentityRiskEvent.Read.All"}
        assert plan["security.incidents"] == "forbidden" and plan["identity_protection.risk_detections"] == "forbidden"
        row = next(r for r in report["permissions"] if r["permission"] == "SecurityIncident.Read.All")
        assert row["granted"] is False and row["blocks"] == ["security.incidents"]
        assert report["admin_consent_url"] == f"{sim.base_url}/{tenant.tenant_id}/adminconsent?client_id={tenant.client_id}"
        table = td_graph("doctor", "-c", cfg, env=env_for(tenant)).stdout.decode()
        assert "✗ SecurityIncident.Read.All" in table and "blocks: security.incidents" in table and "adminconsent?client_id=" in table
    else:
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    if profile == "free":
        assert plan["audit_logs.sign_ins"] == "unlicensed"
        assert plan["security.alerts_v2"] == "unlicensed"
        assert plan["audit_logs.directory_audits"] == "ok" and plan["directory.users"] == "ok"
    if profile == "p1":
        assert plan["audit_logs.sign_ins"] == "ok" and plan["identity_protection.risky_users"] == "unlicensed"
    if profile == "all":
        assert set(plan.values()) == {"ok"}


def test_doctor_bad_secret_exits_1_without_printing_it(sim, tmp_path):
    tenant = sim.add_tenant(profile="e5")
    cfg = write_config(sim, tenant, tmp_path)
    env = env_for(tenant)
    env["TD_GRAPH_DEMO_SECRET"] = "wrong-secret-value-123456"
    proc = td_graph("doctor", "-c", cfg, env=env)
    assert proc.returncode == 1
    out = (proc.stdout + proc.stderr).decode()
    assert "FAILED" in out and "7000215" in out and "wrong-secret-value-123456" not in out


def test_free_profile_run_once_exits_0_and_asks_unlicensed_endpoints_at_most_once(sim, tmp_path, catalogue):
    tenant = sim.add_tenant(profile="free")
    out = tmp_path / "records.ndjson"
    cfg = write_config(sim, tenant, tmp_path, output=str(out), sources=["all"])
    proc = td_graph("run", "-c", cfg, "--once", env=env_for(tenant))
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    got = collections.Counter(r["source"] for r in read_records(out))
    for name in ("audit_logs.directory_audits", "directory.users", "directory.groups", "directory.devices"):
        assert got[name] > 0, f"Free allows {name}"
    licensed = [s for s in catalogue if s.licence]
    for spec in licensed:
        assert got[spec.name] == 0
        hits = [r for r in sim.requests if r.path.endswith(spec.path.split("(")[0]) and r.method == "GET"]
        assert len(hits) <= 1, f"{spec.name}: {len(hits)} requests to an unlicensed endpoint"
    assert b"skipped, unlicensed" in proc.stderr
    # A second pass inside the re-check period sends nothing to them at all.
    sim.clear_requests()
    assert td_graph("run", "-c", cfg, "--once", env=env_for(tenant)).returncode == 0
    for spec in licensed:
        assert not [r for r in sim.requests if r.path.endswith(spec.path.split("(")[0])]


def _engine(sim, tenant, tmp_path, sources, ttl, recheck):
    cfg = write_config(sim, tenant, tmp_path, sources=sources)
    import os

    os.environ["TD_GRAPH_DEMO_SECRET"] = tenant.client_secret
    config, pm, catalogue = load_validated(cfg, load_entrypoints=False)
    out = ListOutput()
    rt = build_runtime(config, pm, catalogue, make_sink=lambda st: SyncSink(out, st))
    rt.engine.planner = TenantPlanner(ttl=ttl)
    rt.engine.recheck_min = recheck
    return rt, out


def _run_for(rt, seconds):
    jobs = rt.engine.jobs()
    t = threading.Thread(target=rt.engine.run_forever, args=(jobs,), daemon=True)
    t.start()
    time.sleep(seconds)
    rt.stop.set()
    t.join(timeout=30)
    assert not t.is_alive()


def _run_until(rt, done, timeout: float = 30.0) -> None:
    """Run the engine until ``done()`` holds (checked every 50 ms) or ``timeout`` passes."""
    jobs = rt.engine.jobs()
    t = threading.Thread(target=rt.engine.run_forever, args=(jobs,), daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    rt.stop.set()
    t.join(timeout=30)
    assert not t.is_alive()


def test_source_turning_licensed_mid_run_resumes(sim, tmp_path):
    tenant = sim.add_tenant(profile="free")
    rt, out = _engine(sim, tenant, tmp_path, ["audit_logs.sign_ins", "audit_logs.directory_audits"], ttl=1.0, recheck=1.0)
    # The licence is bought exactly when the engine re-checks the source (its 2nd sign-ins
    # request), inside the simulator: no thread sleeping a guessed time while the engine runs.
    sim.at_request("/v1.0/auditLogs/signIns", 2, lambda: setattr(tenant, "profile", "e5"))

    def sign_ins_emitted() -> int:
        return sum(1 for line in list(out.lines) if __import__("orjson").loads(line)["source"] == "audit_logs.sign_ins")

    try:
        _run_until(rt, lambda: sign_ins_emitted() >= len(tenant.sign_ins))
        hits = [r for r in sim.requests if r.path == "/v1.0/auditLogs/signIns"]
        assert hits[0].status == 403, "the source was unlicensed when the run started"
        sources = collections.Counter(__import__("orjson").loads(l)["source"] for l in out.lines)
        assert sources["audit_logs.sign_ins"] == len(tenant.sign_ins)
        assert rt.state.source_status("demo", "audit_logs.sign_ins")["state"] == "ok"
    finally:
        rt.close()


def test_unlicensed_source_sends_at_most_one_request_per_recheck_period(sim, tmp_path):
    tenant = sim.add_tenant(profile="free")
    rt, _ = _engine(sim, tenant, tmp_path, ["audit_logs.sign_ins"], ttl=3600.0, recheck=1.0)
    try:
        started = time.monotonic()
        _run_for(rt, 5.0)
        elapsed = time.monotonic() - started
        hits = [r for r in sim.requests if r.path == "/v1.0/auditLogs/signIns"]
        # Re-checks back off 1 s, 2 s, 4 s ...: at most one request per elapsed period.
        assert len(hits) <= 2, f"{len(hits)} requests in {elapsed:.1f}s"
        assert all(r.status == 403 for r in hits)
    finally:
        rt.close()
