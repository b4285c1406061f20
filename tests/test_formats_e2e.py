"""End to end: ``td-graph run --once`` with ``output.format: ecs`` / ``ocsf`` against the
simulator's all-licensed tenant writes, for every source, documents that validate against the
vendored ECS and OCSF schemas (tests/formats_schema.py) and read back to the envelope."""

from __future__ import annotations

import collections
import os
import subprocess
import sys

import orjson
import pytest
import yaml

from td_graph_plugin.cli.demo import demo_config
from td_graph_plugin.formats import envelope_of
from td_graph_plugin.simulator import GraphSimulator
from tests.formats_schema import ecs_errors, ocsf_errors

pytestmark = pytest.mark.timeout(180)

# The mapped sources and what they become (written out here, not read from the tables).
ECS_KIND = {
    "audit_logs.sign_ins": "event", "audit_logs.sign_ins_non_interactive": "event",
    "audit_logs.sign_ins_service_principal": "event", "audit_logs.sign_ins_managed_identity": "event",
    "audit_logs.directory_audits": "event", "audit_logs.provisioning": "event", "security.alerts_v2": "alert",
    "security.incidents": "alert", "identity_protection.risk_detections": "alert",
    "identity_protection.risky_users": "event", "directory.users": "asset", "directory.devices": "asset",
    "intune.audit_events": "event",
}
OCSF_CLASS = {
    "audit_logs.sign_ins": {3002}, "audit_logs.sign_ins_non_interactive": {3002},
    "audit_logs.sign_ins_service_principal": {3002}, "audit_logs.sign_ins_managed_identity": {3002},
    "audit_logs.directory_audits": {3001, 6003}, "security.alerts_v2": {2004},
    "identity_protection.risk_detections": {2004}, "security.incidents": {2005},
    "directory.users": {5003}, "directory.devices": {5001},
}


def _run_once(sim, tenant, tmp_path, fmt: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    out = tmp_path / f"records.{fmt}.ndjson"
    cfg = demo_config(sim, tenant, str(tmp_path / f"state-{fmt}.db"),
                      output={"type": "file", "path": str(out), "format": fmt})
    path = tmp_path / f"td-graph-{fmt}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = dict(os.environ, TD_GRAPH_DEMO_SECRET=tenant.client_secret)
    proc = subprocess.run([sys.executable, "-m", "td_graph_plugin.cli.main", "run", "-c", str(path), "--once"],
                          capture_output=True, env=env, timeout=170)
    docs = [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()] if out.exists() else []
    return proc, docs


@pytest.fixture(scope="module")
def tenant_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("formats_e2e")
    with GraphSimulator(workdir=str(tmp / "sim")) as sim:
        tenant = sim.add_tenant(profile="all")
        yield {fmt: _run_once(sim, tenant, tmp, fmt) for fmt in ("ecs", "ocsf")}


@pytest.mark.parametrize("fmt", ["ecs", "ocsf"])
def test_run_once_writes_valid_documents_for_every_source(tenant_runs, catalogue, fmt):
    proc, docs = tenant_runs[fmt]
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
    validate = ecs_errors if fmt == "ecs" else ocsf_errors
    by_source: dict[str, list[dict]] = collections.defaultdict(list)
    problems = []
    for doc in docs:
        envelope = envelope_of(doc)
        assert envelope is not None and envelope["data"] is not None, doc
        by_source[envelope["source"]].append(doc)
        errors = validate(doc)
        if errors:
            problems.append((envelope["source"], envelope["id"], errors[:5]))
    assert not problems, problems[:10]
    graph_sources = sorted(spec.name for spec in catalogue if spec.reads_graph)
    missing = [s for s in graph_sources if not by_source.get(s)]
    assert not missing, missing
    for source, docs_of_source in by_source.items():
        for doc in docs_of_source:
            if fmt == "ecs" and source in ECS_KIND:
                assert doc["event"]["kind"] == ECS_KIND[source], (source, doc["event"])
            if fmt == "ocsf":
                assert doc["class_uid"] in OCSF_CLASS.get(source, {doc["class_uid"]}), (source, doc["class_uid"])


def test_both_formats_wrote_the_same_records(tenant_runs):
    """Formatting changes the shape, never which records are written."""
    keys = {}
    for fmt, (_, docs) in tenant_runs.items():
        keys[fmt] = sorted((e["source"], e["id"], e.get("removed") or "") for e in map(envelope_of, docs))
    assert keys["ecs"] and keys["ecs"] == keys["ocsf"]
