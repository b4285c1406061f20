"""Issue 12: query shapes that heal.

For every source whose default query relies on something Microsoft does not document ([U]),
the simulator's strict mode (``endpoints.strict_undocumented``) refuses that shape with the 400
Graph gives for it.  The source must fall back to its next shape, deliver the window's records
(expected sets computed here from the simulator's objects and the spec's documented lookback /
delay, not with td-graph's functions), remember the shape in the state, log one WARNING naming
the option (not one per poll), start the next run with the remembered shape, and show it in
``status`` and ``doctor``.  A 400 about anything else still fails the source.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import orjson
import pytest
import yaml

from td_graph_plugin.cli.demo import demo_config
from td_graph_plugin.collector import SourceRun, SyncSink
from td_graph_plugin.collector.window import collect_window
from td_graph_plugin.config.model import HttpConfig, Secret, SourceSettings, TenantConfig
from td_graph_plugin.errors import GraphBadRequest
from td_graph_plugin.graph.client import GraphClient
from td_graph_plugin.graph.ratelimit import RateLimiter
from td_graph_plugin.metrics import Metrics
from td_graph_plugin.simulator import GraphSimulator
from td_graph_plugin.simulator.endpoints import relax, strict, strict_undocumented
from td_graph_plugin.sources.catalogue import BUILTIN_SOURCES
from td_graph_plugin.spec import THROTTLE_CLASSES
from td_graph_plugin.state import StateStore
from tests.fakes import ListOutput

pytestmark = pytest.mark.timeout(180)

SPECS = {s.name: s for s in BUILTIN_SOURCES}

# source, endpoint path, simulator collection, the timestamp the window is on, documented
# lookback and delay (the spec's defaults, written here by hand), the shape it must fall back to,
# and what the refused option is.
CASES = [
    ("identity_protection.risk_detections", "/identityProtection/riskDetections", "risk_detections",
     "lastUpdatedDateTime", timedelta(days=7), timedelta(minutes=5), "client_window", "$filter"),
    ("identity_protection.service_principal_risk_detections", "/identityProtection/servicePrincipalRiskDetections",
     "service_principal_risk_detections", "lastUpdatedDateTime", timedelta(days=7), timedelta(minutes=5),
     "client_window", "$filter"),
    ("identity_protection.risky_users", "/identityProtection/riskyUsers", "risky_users",
     "riskLastUpdatedDateTime", timedelta(days=7), timedelta(minutes=5), "client_window", "$filter"),
    ("security.secure_scores", "/security/secureScores", "secure_scores", "createdDateTime",
     timedelta(days=7), timedelta(0), "client_window", "$filter"),
    ("intune.audit_events", "/deviceManagement/auditEvents", "intune_audit_events", "activityDateTime",
     timedelta(hours=24), timedelta(minutes=5), "client_window", "$filter"),
    ("security.alerts_v2", "/security/alerts_v2", "alerts", "lastUpdateDateTime", timedelta(hours=24),
     timedelta(0), "no_top", "$top"),
]

_FRACTION = re.compile(r"\.(\d{1,6})\d*")


def _ts(text: str) -> datetime:
    """Graph's timestamp text, parsed here (7-digit fractions trimmed for fromisoformat)."""
    return datetime.fromisoformat(_FRACTION.sub(lambda m: "." + m.group(1), text).replace("Z", "+00:00"))


@pytest.fixture
def sim(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as s:
        yield s
    relax()


@pytest.fixture
def tenant(sim):
    return sim.add_tenant(profile="all")


@pytest.fixture
def state_path(tmp_path):
    return str(tmp_path / "state.db")


class Harness:
    def __init__(self, sim, tenant, state_path, spec):
        self.cfg = TenantConfig(
            name="demo", tenant_id=tenant.tenant_id, client_id=tenant.client_id,
            client_secret=Secret(tenant.client_secret), login_endpoint=sim.base_url,
            graph_endpoint=sim.base_url, ca_bundle=sim.ca_path,
        )
        self.client = GraphClient(self.cfg, HttpConfig(max_retries=1), Metrics(),
                                  limiter=RateLimiter({c: (100000, 1.0) for c in THROTTLE_CLASSES}))
        self.state_path, self.spec, self.out = state_path, spec, ListOutput()
        self.now = datetime.now(timezone.utc)

    def run(self) -> None:
        state = StateStore(self.state_path)
        try:
            sink = SyncSink(self.out, state)
            sink.open()
            run = SourceRun(tenant=self.cfg, spec=self.spec, client=self.client, state=state, sink=sink,
                            settings=SourceSettings(), metrics=Metrics(), stop=threading.Event(),
                            now=lambda: self.now)
            collect_window(run)
        finally:
            state.close()

    def shape(self) -> str | None:
        state = StateStore(self.state_path)
        try:
            return state.query_shape("demo", self.spec.name)
        finally:
            state.close()

    def ids(self) -> list[str]:
        return [orjson.loads(line)["id"] for line in self.out.lines]


def _expected(tenant, collection, field, now, lookback, delay) -> set[str]:
    lower, upper = now - lookback, now - delay
    out = set()
    for o in tenant.collection(collection).items:
        if o["visible_at"] > now.timestamp() or not o.get(field):
            continue
        if lower <= _ts(o[field]) <= upper:
            out.add(o["id"])
    return out


def _warnings(caplog, option: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "query shape" in r.getMessage() and option in r.getMessage()]


@pytest.mark.parametrize("source, path, collection, field, lookback, delay, fallback, option", CASES,
                         ids=[c[0] for c in CASES])
def test_a_refused_undocumented_shape_falls_back_and_keeps_collecting(
        sim, tenant, state_path, caplog, source, path, collection, field, lookback, delay, fallback, option):
    caplog.set_level(logging.INFO, logger="td_graph_plugin")
    h = Harness(sim, tenant, state_path, SPECS[source])
    with strict_undocumented(path):
        h.run()
        first = list(sim.requests)
        refused = [r for r in first if r.path.endswith(path) and r.status == 400]
        assert refused, "the strict simulator did not refuse the default shape"
        assert h.shape() == fallback
        want = _expected(tenant, collection, field, h.now, lookback, delay)
        assert want, "the case needs records in its window"
        assert sorted(h.ids()) == sorted(want)
        assert len(_warnings(caplog, option)) == 1, [r.getMessage() for r in caplog.records]

        # The next poll starts with the remembered shape: no 400, still one warning.
        sim.clear_requests()
        h.now = datetime.now(timezone.utc)
        h.run()
        again = [r for r in sim.requests if r.path.endswith(path)]
        assert again and all(r.status == 200 for r in again), [(r.status, r.query) for r in again]
        q = {k.lower(): v for k, v in again[0].query.items()}
        if option == "$filter":
            assert field not in q.get("$filter", ""), q
        else:
            assert "$top" not in q, q
        assert len(_warnings(caplog, option)) == 1
    h.client.close()


def test_risky_service_principals_default_sends_no_range_on_an_eq_only_field(sim, tenant, state_path):
    """riskLastUpdatedDateTime "Supports $filter (eq)" only (riskyserviceprincipal resource):
    the default shape sends no range on it and applies the window itself."""
    spec = SPECS["identity_protection.risky_service_principals"]
    h = Harness(sim, tenant, state_path, spec)
    h.run()
    sent = [r for r in sim.requests if r.path.endswith("/identityProtection/riskyServicePrincipals")]
    assert sent and all(r.status == 200 for r in sent)
    assert all("riskLastUpdatedDateTime" not in r.query.get("$filter", "") for r in sent)
    want = _expected(tenant, "risky_service_principals", "riskLastUpdatedDateTime", h.now,
                     timedelta(days=7), timedelta(minutes=5))
    assert want and sorted(h.ids()) == sorted(want)
    assert h.shape() is None  # nothing to remember: the default worked
    h.client.close()


def test_a_400_about_something_else_still_fails_the_source(sim, tenant, state_path):
    strict("/security/alerts_v2", reject={"$count": ("BadRequest", "Query option 'Count' is not allowed.")})
    h = Harness(sim, tenant, state_path, SPECS["security.alerts_v2"])
    with pytest.raises(GraphBadRequest):
        h.run()
    assert h.shape() is None
    h.client.close()


def test_status_and_doctor_show_the_remembered_shape(sim, tenant, state_path, tmp_path):
    for source, path in (("identity_protection.risky_users", "/identityProtection/riskyUsers"),
                         ("security.alerts_v2", "/security/alerts_v2")):
        h = Harness(sim, tenant, state_path, SPECS[source])
        with strict_undocumented(path):
            h.run()
        h.client.close()
    cfg = demo_config(sim, tenant, state_path, sources={
        "include": ["identity_protection.risky_users", "security.alerts_v2", "audit_logs.sign_ins"]})
    cfg_path = tmp_path / "td-graph.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = dict(os.environ, TD_GRAPH_DEMO_SECRET=tenant.client_secret)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "td_graph_plugin.cli.main", *args, "-c", str(cfg_path),
                               "--format", "json"], capture_output=True, env=env, timeout=120)

    status = cli("status")
    rows = {r["source"]: r for r in json.loads(status.stdout)}
    assert rows["identity_protection.risky_users"]["query_shape"] == "client_window"
    assert rows["security.alerts_v2"]["query_shape"] == "no_top"
    assert rows["audit_logs.sign_ins"]["query_shape"] == "default"

    doctor = cli("doctor")
    assert doctor.returncode in (0, 1), doctor.stderr.decode(errors="replace")[-2000:]
    report = json.loads(doctor.stdout)
    plan = {p["source"]: p for p in report["tenants"][0]["plan"]}
    risky = plan["identity_protection.risky_users"]
    assert risky["query_shape"] == "client_window"
    assert "$filter" in risky["query_shape_reason"] and "400" in risky["query_shape_reason"]
    assert plan["security.alerts_v2"]["query_shape"] == "no_top"
    assert "$top" in plan["security.alerts_v2"]["query_shape_reason"]
    assert plan["audit_logs.sign_ins"]["query_shape"] == "default"
