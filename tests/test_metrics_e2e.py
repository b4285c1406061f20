"""Issue 5 end to end: a running `td-graph run` against the simulator, scraped over HTTP and by
Debian's real Prometheus server with td-graph's alert rules."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from td_graph_plugin.metrics import EXPORTED_METRICS
from td_graph_plugin.simulator import GraphSimulator
from tests.integration_support import env_for, read_records, write_config
from tests.prom_server import ALERTS, PrometheusServer, short_for_rules

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
SOURCES = ["audit_logs.sign_ins", "audit_logs.directory_audits", "security.alerts_v2", "directory.users"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(url: str) -> dict[tuple[str, tuple], float]:
    text = requests.get(url + "/metrics", timeout=5).text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found, name, **labels) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def wait(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def running(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as sim:
        tenant = sim.add_tenant(profile="e5")
        port = free_port()
        out = tmp_path / "records.ndjson"
        settings = {name: {"interval": "1s"} for name in SOURCES}
        cfg = write_config(sim, tenant, tmp_path, output=str(out), sources=SOURCES, settings=settings, extra={
            "metrics": {"listen": f"127.0.0.1:{port}", "unhealthy_after": "2s"},
            "http": {"max_retries": 1, "max_retry_wait": "5s", "read_timeout": "3s"},
        })
        sim.throttle("/v1.0/security/alerts_v2", 2, retry_after=0.2)  # a 429 burst, healed by the client
        proc = subprocess.Popen([sys.executable, "-m", "td_graph_plugin.cli.main", "run", "-c", cfg],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env_for(tenant))
        try:
            yield sim, tenant, f"http://127.0.0.1:{port}", out, proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_scraped_metrics_match_what_was_emitted(running):
    sim, tenant, url, out, proc = running

    def collected():
        try:
            found = samples(url)
        except requests.RequestException:
            return None
        ok = all(value(found, "td_graph_source_state", tenant="demo", source=s, state="ok") == 1 for s in SOURCES)
        return found if ok else None

    found = wait(collected, what="every source ok on /metrics")
    records = read_records(out)
    found = samples(url)  # after the records were read: counters >= the file
    for source in SOURCES:
        emitted = sum(1 for r in records if r["source"] == source)
        assert emitted > 0
        counted = value(found, "td_graph_records_total", tenant="demo", source=source)
        assert counted is not None and counted >= emitted
        lag = value(found, "td_graph_checkpoint_lag_seconds", tenant="demo", source=source)
        assert lag is not None and 0 <= lag < 600
        assert value(found, "td_graph_last_success_timestamp_seconds", tenant="demo", source=source) > time.time() - 120
        for state in ("unlicensed", "forbidden", "failing", "disabled"):
            assert value(found, "td_graph_source_state", tenant="demo", source=source, state=state) == 0
    # The record counter equals the file once collection is quiet (no new events arrive).
    time.sleep(2.5)
    final = samples(url)
    for source in SOURCES:
        assert value(final, "td_graph_records_total", tenant="demo", source=source) == sum(
            1 for r in read_records(out) if r["source"] == source)
    assert value(final, "td_graph_throttled_total", tenant="demo", source="security.alerts_v2") == 2
    assert value(final, "td_graph_requests_total", tenant="demo", source="security.alerts_v2", code="429") == 2
    assert value(final, "td_graph_token_requests_total", tenant="demo", result="issued") >= 1
    exposition = requests.get(url + "/metrics", timeout=5).text
    for metric in EXPORTED_METRICS:  # every family is exposed (isolation has no sample yet)
        assert re.search(rf"^# TYPE {metric} ", exposition, re.M), metric
    secret = tenant.client_secret
    for (name, labels) in final:
        for key, val in labels:
            assert "@" not in val and "/" not in val and not GUID.search(val) and secret not in val, (name, key, val)
    assert requests.get(url + "/healthz", timeout=5).status_code == 200


def test_real_prometheus_scrapes_and_alerts_on_a_failing_source(running, tmp_path):
    sim, tenant, url, out, proc = running
    rules = short_for_rules(ALERTS, str(tmp_path / "alerts-short.yml"), for_seconds=2)
    target = url.replace("http://", "")
    with PrometheusServer([target], rule_files=[rules]) as prom:
        prom.wait_for(lambda: prom.query('td_graph_records_total{source="audit_logs.sign_ins"} > 0'), timeout=30,
                      what="the records counter in Prometheus")
        # The simulator now breaks directory audits for good: every request is reset.
        sim.fault("/v1.0/auditLogs/directoryAudits", "reset", 100000)

        def alert():
            return [a for a in prom.alerts() if a["labels"].get("alertname") == "TdGraphSourceFailing"
                    and a["labels"].get("source") == "audit_logs.directory_audits" and a["state"] in ("pending", "firing")]

        found = prom.wait_for(alert, timeout=45, what="TdGraphSourceFailing for directory audits")
        assert found[0]["labels"]["tenant"] == "demo"
        # (a Response is falsy when its status is an error, so wait on its text)
        health = wait(lambda: (r := requests.get(url + "/healthz", timeout=5)).status_code == 503 and r.text,
                      timeout=20, what="/healthz unhealthy")
        assert "audit_logs.directory_audits" in health
        sim.clear_knobs()
        wait(lambda: requests.get(url + "/healthz", timeout=5).status_code == 200, timeout=30, what="/healthz healthy again")
