"""conf/prometheus: the alert rules pass promtool's checks and unit tests, use only the metrics
td-graph exports, and fire in a real Prometheus scraping a real metrics endpoint.

These tests FAIL (never skip) when Debian's prometheus package is missing: CI installs it.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

import prom_server
from prom_server import ALERTS, ROOT, PrometheusServer, metric_names, promtool, short_for_rules
from td_graph_plugin.metrics import EXPORTED_METRICS, Metrics
from td_graph_plugin.observability import start_metrics_server

PROM_DIR = os.path.join(ROOT, "conf", "prometheus")
ALERTS_TEST = os.path.join(PROM_DIR, "alerts_test.yml")
EXAMPLE = os.path.join(PROM_DIR, "prometheus.yml")
REQUIRED_ALERTS = {
    "TdGraphDown",
    "TdGraphSourceFailing",
    "TdGraphCheckpointLagHigh",
    "TdGraphNoRecentSuccess",
    "TdGraphThrottledPersistently",
    "TdGraphTokenFailures",
    "TdGraphSourceUnlicensed",
    "TdGraphSourceForbidden",
}
INTERVAL = "td_graph_source_interval_seconds"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, timeout=60)


def _rules() -> list[dict]:
    with open(ALERTS, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, dict]:
    return {r["alert"]: r for r in _rules() if "alert" in r}


def allowed_names() -> set[str]:
    names = {"up"}
    for name, (kind, _) in EXPORTED_METRICS.items():
        names.add(name)
        if kind == "histogram":
            names.update({name + "_bucket", name + "_sum", name + "_count"})
    return names


# --- promtool -------------------------------------------------------------------------------
def test_a_missing_binary_fails_the_test_with_an_install_hint():
    with pytest.raises(pytest.fail.Exception, match="install Debian's prometheus package"):
        prom_server._require("td-graph-no-such-promtool")


def test_promtool_check_rules():
    r = _run(promtool(), "check", "rules", "conf/prometheus/alerts.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr


def test_promtool_test_rules():
    r = _run(promtool(), "test", "rules", "conf/prometheus/alerts_test.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr


def test_example_scrape_config_is_valid_and_targets_the_default_listen():
    r = _run(promtool(), "check", "config", "conf/prometheus/prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    with open(EXAMPLE, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    (job,) = [j for j in cfg["scrape_configs"] if j["job_name"] == "td-graph"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9464"]
    assert cfg["rule_files"] == ["alerts.yml"]


# --- the rules themselves ---------------------------------------------------------------------
def test_the_issue_alerts_exist_with_severity_and_annotations():
    alerts = _alerts()
    assert REQUIRED_ALERTS <= set(alerts), REQUIRED_ALERTS - set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert "for" in rule, f"{name}: a sensible `for:` avoids paging on one bad scrape"
        text = rule["annotations"]["summary"] + rule["annotations"]["description"]
        if "tenant" in rule["expr"]:
            assert "{{ $labels.tenant }}" in text, name
        if re.search(r"\bsource\b", rule["expr"]) and "by (tenant)" not in rule["expr"]:
            assert "{{ $labels.source }}" in text, name


def test_rules_use_only_exported_metrics():
    allowed = allowed_names()
    for rule in _rules():
        expr = rule["expr"]
        used = metric_names(expr)
        assert used <= allowed, f"{rule.get('alert') or rule.get('record')}: {used - allowed}"
        # bare identifiers that are metric selectors: only td_graph_* and up
        assert not re.search(r"\bnode_|\bprocess_|\bpython_|td_graph:", expr)
    assert 'up{job="td-graph"}' in _alerts()["TdGraphDown"]["expr"]


def test_staleness_is_derived_from_the_exported_interval_never_copied_by_hand():
    """Issue 14 item 14: td-graph exports each job's interval (overrides included), so the
    rules hold no table of intervals that goes stale when an operator changes one."""
    rules = _rules()
    assert not [r for r in rules if "record" in r], "no recording rules: nothing is copied from the catalogue"
    assert not [r for r in rules if re.search(r"vector\(\d", r["expr"])]
    alerts = _alerts()
    for name in ("TdGraphNoRecentSuccess", "TdGraphCheckpointLagHigh"):
        assert f"3 * {INTERVAL}" in alerts[name]["expr"], name


def test_every_alert_is_unit_tested_firing_and_not_firing():
    with open(ALERTS_TEST, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    fires: set[str] = set()
    quiet: set[str] = set()
    for test in doc["tests"]:
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = set(_alerts())
    assert names <= fires, f"never tested firing: {names - fires}"
    assert names <= quiet, f"never tested not firing: {names - quiet}"


# --- a real Prometheus scraping a real endpoint -------------------------------------------------
def _firing(prom: PrometheusServer, name: str, **labels: str) -> list[dict]:
    return [
        a for a in prom.alerts()
        if a["labels"].get("alertname") == name and a["state"] == "firing"
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


def test_real_prometheus_scrapes_td_graph_and_fires_alerts(tmp_path):
    metrics = Metrics()
    metrics.set_state("contoso", "audit_logs.sign_ins", "failing")
    metrics.set_state("contoso", "directory.users", "ok")
    metrics.success("contoso", "directory.users")
    metrics.committed("contoso", "directory.users", 5, newest_event=metrics.clock() - 30)
    metrics.observe_request("contoso", "directory.users", 200, 0.2)
    metrics.observe_request("contoso", "directory.users", 429, 0.1)
    metrics.error("contoso", "audit_logs.sign_ins", "transient")
    metrics.token("contoso", "issued")
    metrics.isolation("contoso", "disable", "ok")
    metrics.app_budget_wait("identity_reports", 0.5)  # a request waited for its app's budget
    metrics.cluster_replicas.set(2)  # a cluster replica (state.url), as cluster.Coordinator does
    metrics.tenants_owned.labels("collector-a").set(3)
    metrics.lease_takeovers.labels("collector-a").inc()
    for source in ("audit_logs.sign_ins", "directory.users"):  # as the engine does for each job
        metrics.source_interval("contoso", source, 300)
    rules = short_for_rules(ALERTS, str(tmp_path / "alerts-short.yml"), for_seconds=2)

    with start_metrics_server("127.0.0.1:0", metrics, unhealthy_after=900) as server:
        with PrometheusServer([f"127.0.0.1:{server.port}"], [rules]) as prom:
            prom.wait_for(lambda: prom.query('up{job="td-graph"} == 1'), what="a successful scrape")
            # Prometheus parsed every family with the contract's names (histograms expanded).
            names = {s["metric"]["__name__"] for s in prom.query('{__name__=~"td_graph_.*"}')}
            series = {n for n in allowed_names() - {"up"} if EXPORTED_METRICS.get(n, ("",))[0] != "histogram"}
            assert names == series
            lag = prom.query('td_graph_checkpoint_lag_seconds{source="directory.users"}')
            assert 25 <= float(lag[0]["value"][1]) < 120

            fired = prom.wait_for(
                lambda: _firing(prom, "TdGraphSourceFailing", tenant="contoso", source="audit_logs.sign_ins"),
                what="TdGraphSourceFailing to fire",
            )
            assert fired[0]["labels"]["severity"] == "critical"
            assert "contoso/audit_logs.sign_ins" in fired[0]["annotations"]["summary"]
            assert not _firing(prom, "TdGraphSourceFailing", source="directory.users")
            assert not _firing(prom, "TdGraphDown")

            # The source recovers: the alert goes away.
            metrics.set_state("contoso", "audit_logs.sign_ins", "ok")
            prom.wait_for(
                lambda: not [a for a in prom.alerts() if a["labels"]["alertname"] == "TdGraphSourceFailing"],
                what="TdGraphSourceFailing to resolve",
            )

            # A source that was ok turns forbidden (admin consent removed).
            metrics.set_state("contoso", "directory.users", "forbidden")
            prom.wait_for(
                lambda: _firing(prom, "TdGraphSourceForbidden", tenant="contoso", source="directory.users"),
                what="TdGraphSourceForbidden to fire",
            )

            # td-graph goes away: up == 0 and TdGraphDown fires.
            server.stop()
            prom.wait_for(lambda: _firing(prom, "TdGraphDown"), what="TdGraphDown to fire")
