"""Metrics: the contract's names, types and labels; one-hot state; live lag; health; the HTTP
endpoint (/metrics, /healthz); bounded label values; the terminal progress display."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from td_graph_plugin.metrics import EXPORTED_METRICS, SOURCE_STATES, Metrics
from td_graph_plugin.observability import (
    MetricsServerError,
    ProgressDisplay,
    parse_listen,
    start_metrics_server,
)
from td_graph_plugin.observability.progress import format_window

# The contract's Metrics table (/work/shared/contract.md), copied by hand: it is the law.
CONTRACT = {
    "td_graph_records_total": ("counter", {"tenant", "source"}),
    "td_graph_requests_total": ("counter", {"tenant", "source", "code"}),
    "td_graph_throttled_total": ("counter", {"tenant", "source"}),
    "td_graph_request_duration_seconds": ("histogram", {"tenant", "source"}),
    "td_graph_errors_total": ("counter", {"tenant", "source", "kind"}),
    "td_graph_source_state": ("gauge", {"tenant", "source", "state"}),
    "td_graph_last_success_timestamp_seconds": ("gauge", {"tenant", "source"}),
    "td_graph_checkpoint_lag_seconds": ("gauge", {"tenant", "source"}),
    "td_graph_token_requests_total": ("counter", {"tenant", "result"}),
    "td_graph_isolation_actions_total": ("counter", {"tenant", "action", "result"}),
    # Rows the contract's table gained with issue 14 item 14 (build info, and the interval the
    # alert rules derive staleness from).
    "td_graph_build_info": ("gauge", {"version"}),
    "td_graph_source_interval_seconds": ("gauge", {"tenant", "source"}),
    # The cluster (issue 15, state.url): set by cluster.Coordinator.
    "td_graph_cluster_replicas": ("gauge", set()),
    "td_graph_tenants_owned": ("gauge", {"replica"}),
    "td_graph_lease_takeovers_total": ("counter", {"replica"}),
    # App-wide Graph budgets (issue 15 item 3): waiting for a budget shared across tenants.
    "td_graph_app_budget_wait_seconds_total": ("counter", {"class"}),
}
# prometheus_client's process collector (issue 14 item 14): standard names, no labels.
PROCESS_FAMILIES = {
    "process_cpu_seconds_total": "counter",
    "process_virtual_memory_bytes": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
}
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def exercise(m: Metrics) -> None:
    """Touch every family once, as the engine, Graph client and isolation do."""
    m.observe_request("contoso", "audit_logs.sign_ins", 200, 0.3)
    m.observe_request("contoso", "audit_logs.sign_ins", 429, 0.1)
    m.error("contoso", "audit_logs.sign_ins", "throttled")
    m.set_state("contoso", "audit_logs.sign_ins", "ok")
    m.committed("contoso", "audit_logs.sign_ins", 10, m.clock() - 60)
    m.success("contoso", "audit_logs.sign_ins")
    m.token("contoso", "issued")
    m.isolation("contoso", "disable", "ok")
    m.source_interval("contoso", "audit_logs.sign_ins", 300)
    m.cluster_replicas.set(2)
    m.tenants_owned.labels("collector-a").set(1)
    m.lease_takeovers.labels("collector-a").inc()
    m.app_budget_wait("identity_reports", 0.5)


def families(m: Metrics) -> dict:
    return {f.name: f for f in text_string_to_metric_families(m.exposition().decode())}


def sample(m: Metrics, name: str, **labels: str) -> float | None:
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


# --- names, types, labels -------------------------------------------------------------------
def test_exported_table_is_the_contract():
    assert {k: (t, set(ls)) for k, (t, ls) in EXPORTED_METRICS.items()} == CONTRACT


def test_exposition_names_types_and_labels_are_exactly_the_contract():
    m = Metrics()
    exercise(m)
    text = m.exposition().decode()
    declared = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M))
    ours = {name: kind for name, kind in declared.items() if name.startswith("td_graph_")}
    assert ours == {name: kind for name, (kind, _) in CONTRACT.items()}
    others = {name: kind for name, kind in declared.items() if not name.startswith("td_graph_")}
    assert others == PROCESS_FAMILIES
    assert "_created" not in text  # prometheus_client's extra series are not in the contract

    for fam in text_string_to_metric_families(text):
        if not fam.name.startswith("td_graph_"):
            assert all(s.labels == {} for s in fam.samples), fam.name
            continue
        exposed = fam.name + "_total" if fam.type == "counter" else fam.name
        kind, labels = CONTRACT[exposed]
        assert fam.type == kind
        assert fam.samples, f"{exposed} was exercised but has no sample"
        for s in fam.samples:
            if kind == "histogram":
                assert s.name in (exposed + "_bucket", exposed + "_sum", exposed + "_count")
                assert set(s.labels) - {"le"} == labels
            else:
                assert s.name == exposed
                assert set(s.labels) == labels


def test_build_info_is_the_installed_distribution_version():
    from importlib.metadata import version

    m = Metrics()
    assert sample(m, "td_graph_build_info", version=version("td-graph-plugin")) == 1
    assert len(families(m)["td_graph_build_info"].samples) == 1


def test_process_collector_reports_this_process():
    import resource

    m = Metrics()
    started = sample(m, "process_start_time_seconds")
    assert started is not None and 1_500_000_000 < started <= datetime.now(timezone.utc).timestamp()
    rss = sample(m, "process_resident_memory_bytes")
    assert rss is not None and rss >= 1_000_000  # an interpreter with prometheus_client loaded
    assert sample(m, "process_open_fds") >= 3  # stdin, stdout, stderr at least
    assert sample(m, "process_max_fds") == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_engine_exports_each_jobs_effective_interval(tmp_path, catalogue):
    """The alert rules divide by this: it must be the interval the job really runs at, the
    operator's override included (1 h for directory.users instead of its 15m default)."""
    from fakes import ListOutput

    from td_graph_plugin.collector import Engine, SyncSink
    from td_graph_plugin.config.model import Config, Secret, SourceSettings, SourcesConfig, TenantConfig
    from td_graph_plugin.state import StateStore

    tenants = tuple(
        TenantConfig(name=name, tenant_id="0f0e0d0c-0b0a-4909-8807-06050403020" + str(i),
                     client_id="11111111-2222-4333-8444-555555555555", client_secret=Secret("not-a-real-secret-123"))
        for i, name in enumerate(("contoso", "fabrikam"))
    )
    config = Config(
        tenants=tenants,
        sources=SourcesConfig(
            include=("security.alerts_v2", "directory.users", "reports.office365_active_users"),
            settings={"directory.users": SourceSettings(interval=timedelta(hours=1))},
        ),
    )
    state = StateStore(str(tmp_path / "state.db"))
    try:
        m = Metrics()
        engine = Engine(config, catalogue, state=state, sink=SyncSink(ListOutput(), state), metrics=m)
        jobs = engine.jobs(tenants=["fabrikam"])
        assert len(jobs) == 4
        by_source = {s.labels["source"]: s.value for s in families(m)["td_graph_source_interval_seconds"].samples
                     if s.labels["tenant"] == "fabrikam"}
        # The README's source table: alerts_v2 5m, office365_active_users 1d; the feed 15s.
        assert by_source == {
            "security.alerts_v2": 300.0,
            "directory.users": 3600.0,
            "reports.office365_active_users": 86400.0,
            "td_graph.isolation": 15.0,
        }
        assert sample(m, "td_graph_source_interval_seconds", tenant="contoso", source="directory.users") is None
    finally:
        state.close()


def test_two_metrics_objects_do_not_share_a_registry():
    a, b = Metrics(), Metrics()
    a.token("contoso", "issued")
    assert sample(a, "td_graph_token_requests_total", tenant="contoso", result="issued") == 1
    assert sample(b, "td_graph_token_requests_total", tenant="contoso", result="issued") is None


def test_request_observation_counts_code_throttling_and_latency():
    m = Metrics()
    m.observe_request("contoso", "security.alerts_v2", 200, 0.2)
    m.observe_request("contoso", "security.alerts_v2", 429, 0.05)
    m.observe_request("contoso", "security.alerts_v2", 0, 10.0)  # no response
    src = dict(tenant="contoso", source="security.alerts_v2")
    assert sample(m, "td_graph_requests_total", code="200", **src) == 1
    assert sample(m, "td_graph_requests_total", code="429", **src) == 1
    assert sample(m, "td_graph_requests_total", code="0", **src) == 1
    assert sample(m, "td_graph_throttled_total", **src) == 1
    assert sample(m, "td_graph_request_duration_seconds_count", **src) == 3
    assert sample(m, "td_graph_request_duration_seconds_sum", **src) == pytest.approx(10.25)
    assert sample(m, "td_graph_request_duration_seconds_bucket", le="0.1", **src) == 1


# --- state ----------------------------------------------------------------------------------
def test_state_gauge_is_one_hot():
    m = Metrics()
    for state in SOURCE_STATES:
        m.set_state("contoso", "directory.users", state)
        values = {
            s: sample(m, "td_graph_source_state", tenant="contoso", source="directory.users", state=s)
            for s in SOURCE_STATES
        }
        assert values == {s: (1.0 if s == state else 0.0) for s in SOURCE_STATES}
        assert m.state("contoso", "directory.users") == state


def test_unknown_state_is_refused():
    m = Metrics()
    with pytest.raises(ValueError, match="unknown source state"):
        m.set_state("contoso", "directory.users", "sleeping")


# --- lag ------------------------------------------------------------------------------------
def test_lag_is_computed_at_scrape_time_and_keeps_growing_while_nothing_commits():
    clock = Clock()
    m = Metrics(clock=clock)
    key = dict(tenant="contoso", source="audit_logs.sign_ins")
    assert sample(m, "td_graph_checkpoint_lag_seconds", **key) is None  # nothing known yet
    m.committed("contoso", "audit_logs.sign_ins", 3, clock() - 120)
    assert sample(m, "td_graph_checkpoint_lag_seconds", **key) == 120
    assert sample(m, "td_graph_records_total", **key) == 3
    clock.t += 600  # data silently stops: no commit, no success...
    assert sample(m, "td_graph_checkpoint_lag_seconds", **key) == 720  # ...and the lag shows it
    m.committed("contoso", "audit_logs.sign_ins", 2, clock() - 30)
    assert sample(m, "td_graph_checkpoint_lag_seconds", **key) == 30
    m.committed("contoso", "audit_logs.sign_ins", 1, clock() - 5000)  # an older page: no step back
    assert sample(m, "td_graph_checkpoint_lag_seconds", **key) == 30
    assert m.lag("contoso", "audit_logs.sign_ins") == 30


def test_checkpoint_accepts_a_finished_window_bound():
    clock = Clock(datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc).timestamp())
    m = Metrics(clock=clock)
    m.checkpoint("contoso", "audit_logs.provisioning", "2026-11-26T11:58:00Z")
    assert m.lag("contoso", "audit_logs.provisioning") == 120
    m.checkpoint("contoso", "audit_logs.provisioning", datetime(2026, 11, 26, 11, 59, tzinfo=timezone.utc))
    assert m.lag("contoso", "audit_logs.provisioning") == 60
    m.checkpoint("contoso", "audit_logs.provisioning", None)
    m.checkpoint("contoso", "audit_logs.provisioning", "not a time")
    assert m.lag("contoso", "audit_logs.provisioning") == 60


def test_success_sets_last_success_timestamp():
    clock = Clock()
    m = Metrics(clock=clock)
    m.success("contoso", "directory.users")
    key = dict(tenant="contoso", source="directory.users")
    assert sample(m, "td_graph_last_success_timestamp_seconds", **key) == clock.t
    m.success("contoso", "directory.users", when=1234.0)
    assert sample(m, "td_graph_last_success_timestamp_seconds", **key) == 1234.0


# --- health ---------------------------------------------------------------------------------
def test_health_flips_after_the_bound_and_recovers():
    clock = Clock()
    m = Metrics(clock=clock)
    m.set_state("contoso", "directory.users", "ok")
    ok, detail = m.health(900)
    assert ok and detail["status"] == "ok" and detail["failing"] == []

    start = clock.t
    m.set_state("contoso", "audit_logs.sign_ins", "failing")
    clock.t += 899
    m.set_state("contoso", "audit_logs.sign_ins", "failing")  # failing again: keeps its start
    ok, detail = m.health(900)
    assert ok and detail["pending"][0]["source"] == "audit_logs.sign_ins"
    assert detail["states"] == {"ok": 1, "unlicensed": 0, "forbidden": 0, "failing": 1, "disabled": 0}

    clock.t += 1
    ok, detail = m.health(900)
    assert not ok
    assert detail["status"] == "unhealthy"
    assert detail["failing"] == [{
        "tenant": "contoso",
        "source": "audit_logs.sign_ins",
        "since": datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": 900.0,
    }]
    assert m.failing_since("contoso", "audit_logs.sign_ins") == start
    assert m.health(3600)[0], "the bound is the caller's"

    m.set_state("contoso", "audit_logs.sign_ins", "ok")
    ok, detail = m.health(900)
    assert ok and detail["failing"] == [] and detail["pending"] == []
    assert m.failing_since("contoso", "audit_logs.sign_ins") is None


@pytest.mark.parametrize("other", ["unlicensed", "forbidden", "disabled"])
def test_any_other_state_clears_failing(other):
    clock = Clock()
    m = Metrics(clock=clock)
    m.set_state("contoso", "security.alerts_v2", "failing")
    clock.t += 10_000
    assert not m.health(900)[0]
    m.set_state("contoso", "security.alerts_v2", other)
    assert m.health(900)[0]
    m.set_state("contoso", "security.alerts_v2", "failing")  # fails again: a new start
    assert m.failing_since("contoso", "security.alerts_v2") == clock.t


# --- the HTTP endpoint ----------------------------------------------------------------------
def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_server_serves_metrics_and_healthz_over_http():
    clock = Clock()
    m = Metrics(clock=clock)
    exercise(m)
    with start_metrics_server("127.0.0.1:0", m, unhealthy_after=60) as server:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"

        status, headers, body = get(server.url + "/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        assert "td_graph_records" in names and "td_graph_source_state" in names
        assert 'td_graph_records_total{source="audit_logs.sign_ins",tenant="contoso"} 10.0' in body.decode()

        status, headers, body = get(server.url + "/healthz")
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert json.loads(body)["status"] == "ok"

        m.set_state("contoso", "audit_logs.sign_ins", "failing")
        clock.t += 61
        status, _, body = get(server.url + "/healthz")
        assert status == 503
        doc = json.loads(body)
        assert doc["status"] == "unhealthy"
        assert [(f["tenant"], f["source"]) for f in doc["failing"]] == [("contoso", "audit_logs.sign_ins")]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["failing"][0]["since"])

        m.set_state("contoso", "audit_logs.sign_ins", "ok")
        assert get(server.url + "/healthz")[0] == 200

        assert get(server.url + "/")[0] == 404
        assert get(server.url + "/metrics/extra")[0] == 404
        assert get(server.url + "/metrics?name[]=x")[0] == 200

        req = urllib.request.Request(server.url + "/metrics", method="HEAD")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200 and r.read() == b"" and int(r.headers["Content-Length"]) > 0
        port = server.port
    # stopped: the port is closed
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    server.stop()  # idempotent


def test_server_binds_exactly_the_given_host():
    with start_metrics_server("127.0.0.1:0", Metrics()) as server:
        assert server._httpd.server_address[0] == "127.0.0.1"
        assert server._httpd.socket.family == socket.AF_INET


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_server_on_ipv6_loopback():
    with start_metrics_server("[::1]:0", Metrics()) as server:
        assert server._httpd.socket.family == socket.AF_INET6
        assert server._httpd.server_address[0] == "::1"
        assert server.url == f"http://[::1]:{server.port}"
        assert get(server.url + "/healthz")[0] == 200
        # not on the IPv4 loopback
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_port_in_use_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(MetricsServerError, match=f"cannot listen on 127.0.0.1:{port}"):
            start_metrics_server(f"127.0.0.1:{port}", Metrics())


@pytest.mark.parametrize(
    "listen, expected",
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        ("[::]:9464", ("::", 9464)),
        ("0.0.0.0:9464", ("0.0.0.0", 9464)),
        ("localhost:0", ("localhost", 0)),
        (":9464", ("127.0.0.1", 9464)),  # no host given: loopback, never every interface
    ],
)
def test_parse_listen(listen, expected):
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9464", "::1:9464", "[::1:9464", "host:port", "127.0.0.1:70000", ""])
def test_parse_listen_refuses(listen):
    with pytest.raises(MetricsServerError):
        parse_listen(listen)


def test_server_logs_quietly(caplog):
    caplog.set_level(logging.INFO, logger="td_graph_plugin")
    with start_metrics_server("127.0.0.1:0", Metrics()) as server:
        for _ in range(3):
            get(server.url + "/metrics")
    per_request = [r for r in caplog.records if r.levelno >= logging.INFO and "GET" in r.getMessage()]
    assert per_request == []


# --- a scraper cannot exhaust the process (issue 13, Low) -------------------------------------
def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """True once the server closed the connection without answering; the blocking recv with
    a timeout is the wait (no sleep)."""
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_server_serves_at_most_max_connections_and_closes_one_more_at_once():
    with start_metrics_server("127.0.0.1:0", Metrics(), max_connections=2, request_timeout=30) as server:
        # Accepted in order: the two idle connections hold both slots when the third arrives.
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)]
        extra = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        try:
            assert _closed_by_server(extra, within=5), "a third connection must be closed at once"
            for conn in idle:  # the two in their slots are still served
                conn.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                assert _answer(conn).startswith(b"HTTP/1.0 200 ")
            # Their slots are free again before their close was visible: the next one is served.
            assert get(server.url + "/healthz")[0] == 200
        finally:
            for conn in (*idle, extra):
                conn.close()


@pytest.mark.parametrize("trickle", [False, True], ids=["idle", "trickling"])
def test_a_half_sent_request_is_cut_off_at_the_request_deadline(trickle):
    """Half a request, then silence (or a byte every 0.1 s, which no per-read timeout would
    ever stop): the server closes the connection, unanswered, once ``request_timeout`` is up."""
    deadline = 0.5
    with start_metrics_server("127.0.0.1:0", Metrics(), request_timeout=deadline) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            started = time.monotonic()
            conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: td-graph\r\n")
            closed_after = None
            while time.monotonic() - started < deadline + 5:
                if _closed_by_server(conn, within=0.1 if trickle else deadline + 5):
                    closed_after = time.monotonic() - started
                    break
                if trickle:
                    try:
                        conn.sendall(b"X")
                    except OSError:
                        pass  # closed meanwhile: the next recv says so
            assert closed_after is not None, "the server kept a half-sent request open"
            assert deadline - 0.05 <= closed_after < deadline + 5
        assert get(server.url + "/healthz")[0] == 200  # and still serves the next scrape


# --- bounded labels, through the real engine and Graph client --------------------------------
def test_label_values_are_bounded_through_engine_and_graph_client(tmp_path, catalogue):
    from tls_fake import FakeServer, Resp

    from td_graph_plugin.collector import Engine, SyncSink
    from td_graph_plugin.config.model import Config, HttpConfig, Secret, SourcesConfig, TenantConfig
    from td_graph_plugin.state import StateStore
    from td_graph_plugin.timeutil import format_time
    from fakes import ListOutput

    tid = "0f0e0d0c-0b0a-4909-8807-060504030201"
    now = datetime.now(timezone.utc)
    with FakeServer(tmp_dir=str(tmp_path)) as srv:
        srv.add_oidc(tid)
        items = [
            {
                "id": f"da63{i:04d}-2b3c-4d5e-8f70-112233445566",
                "lastUpdateDateTime": format_time(now - timedelta(minutes=30 + i)),
                "title": "Suspicious sign-in",
                "evidence": [{"userAccount": {"userPrincipalName": f"user{i}@contoso.example",
                                              "azureAdUserId": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"}}],
                "alertWebUrl": "https://security.microsoft.com/alerts/da63",
            }
            for i in range(4)
        ]
        # security.alerts_v2 collects (after one 429), directory_audits is forbidden,
        # directory.users fails with a message full of things that must not become labels.
        srv.route("GET", "/v1.0/security/alerts_v2", [
            Resp(429, json={"error": {"code": "TooManyRequests", "message": "slow down"}}, headers={"Retry-After": "0"}),
            Resp(json={"value": items[:2], "@odata.nextLink": f"{srv.base}/v1.0/security/alerts_v2?$skiptoken=abc%40def"}),
            Resp(json={"value": items[2:]}),
        ])
        srv.route("GET", "/v1.0/auditLogs/directoryAudits", Resp(403, json={
            "error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges for user@contoso.example"}}))
        srv.route("GET", "/v1.0/users/delta", Resp(400, json={
            "error": {"code": "BadRequest", "message": f"Invalid request for {tid} at https://graph.example/v1.0/users"}}))
        tenant = TenantConfig(
            name="contoso", tenant_id=tid, client_id="11111111-2222-4333-8444-555555555555",
            client_secret=Secret("not-a-real-secret-123"), login_endpoint=srv.base, graph_endpoint=srv.base,
            ca_bundle=srv.ca_path,
        )
        config = Config(
            tenants=(tenant,),
            sources=SourcesConfig(include=("security.alerts_v2", "audit_logs.directory_audits", "directory.users")),
            http=HttpConfig(max_retries=2, connect_timeout=5, read_timeout=5),
        )
        state = StateStore(str(tmp_path / "state.db"))
        output = ListOutput()
        sink = SyncSink(output, state)
        sink.open()
        metrics = Metrics()
        engine = Engine(config, catalogue, state=state, sink=sink, metrics=metrics)
        try:
            results = {r.job.spec.name: r.status for r in engine.run_once(engine.jobs())}
        finally:
            engine.close()
            state.close()

    assert results == {
        "security.alerts_v2": "ok",
        "audit_logs.directory_audits": "forbidden",
        "directory.users": "failing",
        "td_graph.isolation": "ok",  # the isolation audit feed (empty here)
    }
    assert len(output.lines) == 4
    src = dict(tenant="contoso", source="security.alerts_v2")
    assert sample(metrics, "td_graph_records_total", **src) == 4
    assert sample(metrics, "td_graph_throttled_total", **src) == 1
    assert sample(metrics, "td_graph_requests_total", code="200", **src) >= 2
    assert sample(metrics, "td_graph_source_state", tenant="contoso", source="directory.users", state="failing") == 1
    assert sample(metrics, "td_graph_source_state", tenant="contoso", source="audit_logs.directory_audits", state="forbidden") == 1
    assert sample(metrics, "td_graph_token_requests_total", tenant="contoso", result="issued") >= 1

    allowed_values = {
        "tenant": {"contoso"},
        "source": {"security.alerts_v2", "audit_logs.directory_audits", "directory.users", "td_graph.isolation"},
        "state": set(SOURCE_STATES),
        "result": {"cache", "issued", "failed"},
    }
    seen = 0
    for fam in text_string_to_metric_families(metrics.exposition().decode()):
        for s in fam.samples:
            for label, value in s.labels.items():
                seen += 1
                assert "@" not in value and "/" not in value and "https" not in value, (s.name, label, value)
                assert not GUID.search(value), (s.name, label, value)
                if label in allowed_values:
                    assert value in allowed_values[label], (s.name, label, value)
                elif label == "code":
                    assert re.fullmatch(r"\d{1,3}", value)
                elif label in ("kind", "le"):
                    assert re.fullmatch(r"[a-z_]+|[0-9.+Inf]+", value), (label, value)
    assert seen > 50


# --- progress display -----------------------------------------------------------------------
class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def fake_run(tenant: str, source: str, records: int, pages: int, window=(None, None)):
    return SimpleNamespace(
        tenant=SimpleNamespace(name=tenant),
        spec=SimpleNamespace(name=source),
        stats=SimpleNamespace(records=records, pages=pages, window=window),
    )


class FakeEngine:
    def __init__(self, runs):
        self.runs = runs

    def active_runs(self):
        return list(self.runs)


def test_progress_is_silent_when_not_a_terminal():
    stream = io.StringIO()
    engine = FakeEngine([fake_run("contoso", "audit_logs.sign_ins", 10, 1)])
    display = ProgressDisplay(engine, stream=stream, interval=0.01, min_age=0)
    assert not display.enabled
    display.start()
    assert display._thread is None  # no thread at all
    display.refresh()
    display.stop()
    assert stream.getvalue() == ""


def test_progress_draws_one_line_per_run_and_redraws_in_place():
    clock = Clock(0.0)
    stream = FakeTTY()
    run = fake_run("contoso", "audit_logs.sign_ins", 12345, 13, ("2026-11-25T12:00:00Z", "2026-11-25T18:00:00Z"))
    engine = FakeEngine([run, fake_run("fabrikam", "directory.users", 7, 1)])
    display = ProgressDisplay(engine, stream=stream, min_age=0, clock=clock)
    assert display.enabled

    display.refresh()
    first = stream.getvalue()
    assert first == (
        "contoso/audit_logs.sign_ins  12,345 records  13 pages  window 2026-11-25T12:00Z..18:00Z  0s\n"
        "fabrikam/directory.users  7 records  1 pages  0s\n"
    )
    run.stats.records, run.stats.pages = 20000, 20
    clock.t = 65
    display.refresh()
    second = stream.getvalue()[len(first):]
    assert second.startswith("\x1b[2F\x1b[J")  # back up over the 2 lines drawn, clear, redraw
    assert "20,000 records  20 pages" in second and "1m05s" in second

    engine.runs.pop()  # fabrikam finished
    display.refresh()
    third = stream.getvalue()[len(first) + len(second):]
    assert third.startswith("\x1b[2F\x1b[J") and third.count("\n") == 1


def test_progress_hides_runs_younger_than_min_age():
    clock = Clock(0.0)
    stream = FakeTTY()
    engine = FakeEngine([fake_run("contoso", "directory.users", 1, 1)])
    display = ProgressDisplay(engine, stream=stream, min_age=2.0, clock=clock)
    display.refresh()
    assert stream.getvalue() == ""
    clock.t = 2.5
    display.refresh()
    assert stream.getvalue().startswith("contoso/directory.users  1 records")


def test_progress_thread_draws_and_stop_erases_and_log_lines_are_not_overdrawn():
    stream = FakeTTY()
    engine = FakeEngine([fake_run("contoso", "audit_logs.sign_ins", 5, 1)])
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        display = ProgressDisplay(engine, stream=stream, interval=0.02, min_age=0).start()
        drawn = threading.Event()
        for _ in range(200):
            if "5 records" in stream.getvalue():
                drawn.set()
                break
            threading.Event().wait(0.01)
        assert drawn.is_set()
        logging.getLogger("td_graph_plugin.test").warning("a log line")
        display.stop()
        out = stream.getvalue()
        before_log = out[: out.index("a log line")]
        assert before_log.endswith("\x1b[1F\x1b[J"), "the block is erased before the log line"
        assert out.endswith("\x1b[1F\x1b[J") or out.endswith("a log line\n")
        assert handler.stream is stream, "the handler gets its stream back"
        assert display._thread is None
    finally:
        root.removeHandler(handler)


def test_format_window():
    assert format_window(("2026-11-25T12:00:00Z", "2026-11-25T18:00:00Z")) == "2026-11-25T12:00Z..18:00Z"
    assert format_window(("2026-11-25T23:00:00Z", "2026-11-26T01:00:00Z")) == "2026-11-25T23:00Z..2026-11-26T01:00Z"
    assert format_window((None, None)) == ""
