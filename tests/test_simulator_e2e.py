"""End to end: the real ``td-graph run --once`` against an all-licensed simulated tenant.

Every source of the catalogue must be collected (exit 0) and appear in the output, with the
simulator enforcing each endpoint's documented constraints along the way.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys

import orjson
import pytest
import yaml

from td_graph_plugin.cli.demo import demo_config
from td_graph_plugin.simulator import GraphSimulator

pytestmark = pytest.mark.timeout(120)


def _run_once(sim, tenant, tmp_path):
    out = tmp_path / "records.ndjson"
    cfg = demo_config(sim, tenant, str(tmp_path / "state.db"), output={"type": "file", "path": str(out)})
    # Pace loosely: the simulator does not enforce Graph's budgets here (sim.enforce_budgets is off),
    # and Identity Protection's documented 1 request/s would make this test take half a minute.
    cfg.setdefault("throttling", {cls: {"requests": 10000, "per": "10s"}
                                  for cls in ("default", "security", "identity_protection", "identity_reports",
                                              "directory", "intune")})
    path = tmp_path / "td-graph.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = dict(os.environ, TD_GRAPH_DEMO_SECRET=tenant.client_secret)
    proc = subprocess.run([sys.executable, "-m", "td_graph_plugin.cli.main", "run", "-c", str(path), "--once"],
                          capture_output=True, env=env, timeout=110)
    records = [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()] if out.exists() else []
    return proc, records


def test_run_once_collects_every_catalogue_source_from_an_all_licensed_tenant(tmp_path, catalogue):
    names = sorted(spec.name for spec in catalogue if spec.reads_graph)  # the Graph sources
    with GraphSimulator(workdir=str(tmp_path / "sim")) as sim:
        tenant = sim.add_tenant(profile="all")
        proc, records = _run_once(sim, tenant, tmp_path)
        stderr = proc.stderr.decode(errors="replace")
        assert proc.returncode == 0, stderr[-4000:]
        by_source = collections.defaultdict(list)
        for r in records:
            by_source[r["source"]].append(r)
        missing = [n for n in names if not by_source.get(n)]
        assert not missing, f"sources without records: {missing}\n{stderr[-4000:]}"
        # A few exact checks against the tenant's own data.
        assert {r["id"] for r in by_source["security.incidents"]} <= {i["id"] for i in tenant.incidents}
        report = by_source["reports.office365_active_users"]
        assert {r["data"]["User Principal Name"] for r in report} == {u["userPrincipalName"] for u in tenant.users}
        assert len({r["id"] for r in report}) == len(report), "report row ids are unique (not the UPN alone)"
        assert {r["id"] for r in by_source["directory.groups"]} == {g["id"] for g in tenant.collection("groups").items}
        sp = by_source["audit_logs.sign_ins_service_principal"]
        assert all(r["data"]["signInEventTypes"] == ["servicePrincipal"] for r in sp)
        assert all(isinstance(r["data"]["additionalInfo"], str) for r in by_source["identity_protection.risk_detections"])
        # td-graph discovered its permissions from Graph and sent no token to the report download.
        paths = [r.path for r in sim.requests]
        assert any(p.endswith("/appRoleAssignments") for p in paths)
        downloads = [r for r in sim.requests if r.path.startswith("/_download/")]
        assert downloads and not any(r.has_authorization for r in downloads)
        assert all(r.status < 400 for r in sim.requests), [(r.path, r.status) for r in sim.requests if r.status >= 400]
