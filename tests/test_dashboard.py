"""conf/grafana/td-graph.json is a Grafana dashboard over td-graph's exported metrics only, and
docs/dashboard.md describes every panel."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from prom_server import ROOT, metric_names, promtool
from td_graph_plugin.metrics import EXPORTED_METRICS

DASHBOARD = os.path.join(ROOT, "conf", "grafana", "td-graph.json")
DOC = os.path.join(ROOT, "docs", "dashboard.md")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@pytest.fixture(scope="module")
def dashboard() -> dict:
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # panels inside collapsed rows
    return out


def query_panels(dashboard: dict) -> list[dict]:
    return [p for p in panels(dashboard) if p["type"] != "row"]


def exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in query_panels(dashboard) for t in p["targets"]]


def exported_name(name: str) -> str | None:
    """The contract metric a PromQL name refers to (histogram series map to their family)."""
    if name in EXPORTED_METRICS:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and EXPORTED_METRICS.get(base, ("",))[0] == "histogram":
            return base
    return None


def test_grafana_shape(dashboard):
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 30
    assert dashboard["uid"] == "td-graph" and dashboard["title"]
    assert dashboard["time"]["from"].startswith("now-")
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels(dashboard):
        pos = p["gridPos"]
        assert {"x", "y", "w", "h"} <= set(pos) and 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, p["title"]
    for p in query_panels(dashboard):
        assert p["title"] and p.get("description"), p["id"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip(), p["title"]


def test_templating_tenant_and_source_from_label_values(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("tenant", "source"):
        v = variables[name]
        assert v["type"] == "query" and v["multi"] and v["includeAll"]
        assert re.fullmatch(rf"label_values\(td_graph_[a-z_]+(\{{.*\}})?, {name}\)", v["definition"]), v["definition"]
        assert v["query"]["query"] == v["definition"]
    assert '$tenant' in variables["source"]["definition"], "sources follow the selected tenants"


def test_every_metric_in_the_panels_is_exported(dashboard):
    used = set()
    for expr in exprs(dashboard):
        for name in metric_names(expr):
            assert exported_name(name), f"{name} in {expr!r} is not a td-graph metric"
            used.add(exported_name(name))
    # The panels: records/s, lag, state, throttling, errors, request latency.
    assert {
        "td_graph_records_total",
        "td_graph_checkpoint_lag_seconds",
        "td_graph_source_state",
        "td_graph_throttled_total",
        "td_graph_errors_total",
        "td_graph_request_duration_seconds",
    } <= used


def test_per_tenant_and_source_panels_follow_the_variables(dashboard):
    for p in query_panels(dashboard):
        for t in p["targets"]:
            expr = t["expr"]
            if "td_graph_" not in expr:
                continue  # `up`
            for name in metric_names(expr):
                labels = EXPORTED_METRICS[exported_name(name)][1]
                selectors = re.findall(rf"{name}\{{([^}}]*)\}}", expr)
                assert selectors, f"{p['title']}: {name} without a label selector"
                for sel in selectors:
                    assert 'tenant=~"$tenant"' in sel, p["title"]
                    if "source" in labels:
                        assert 'source=~"$source"' in sel, p["title"]


def test_panel_queries_are_valid_promql(dashboard, tmp_path):
    """Every expression parses (promtool checks them as recording rules, with the Grafana
    variables replaced by what Grafana sends)."""
    rules = []
    for i, expr in enumerate(exprs(dashboard)):
        concrete = expr.replace("$__rate_interval", "2m").replace("$tenant", ".*").replace("$source", ".*")
        rules.append({"record": f"dashboard:expr_{i}", "expr": concrete})
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_state_panel_maps_every_state(dashboard):
    from td_graph_plugin.metrics import SOURCE_STATES

    (panel,) = [p for p in query_panels(dashboard) if p["type"] == "state-timeline"]
    texts = {o["text"] for m in panel["fieldConfig"]["defaults"]["mappings"] for o in m["options"].values()}
    assert texts == set(SOURCE_STATES)
    expr = panel["targets"][0]["expr"]
    for state in SOURCE_STATES:
        assert f'state="{state}"' in expr


def test_doc_describes_every_panel(dashboard):
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    described = set(re.findall(r"^- \*\*(.+?)\*\* — ", doc, flags=re.M))
    titles = {p["title"] for p in query_panels(dashboard)}
    assert titles <= described, f"panels missing from docs/dashboard.md: {titles - described}"
    for name in ("tenant", "source"):
        assert "label_values(td_graph_source_state" in doc and name.capitalize() in doc
