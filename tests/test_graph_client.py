"""GraphClient, build_session and clouds against tests/tls_fake.py (real TLS, real MSAL)."""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from functools import partial

import certifi
import pytest
import requests

from td_graph_plugin.config.model import HttpConfig, Secret, TenantConfig
from td_graph_plugin.errors import (
    ConfigError,
    GraphForeignLink,
    GraphNotFound,
    GraphResponseError,
    GraphStopped,
    GraphThrottled,
    GraphTransient,
    GraphUnauthorized,
)
from td_graph_plugin.graph import (
    CLOUDS,
    GraphClient,
    RateLimiter,
    build_session,
    resolve_endpoints,
)
from td_graph_plugin.metrics import Metrics
from tests.fakes import FakeClock as _FakeClock

try:  # tests/ is on sys.path when it is not a package (pytest rootdir insertion)
    from tls_fake import FakeServer, Req, Resp
except ImportError:  # pragma: no cover - tests/ became a package
    from tests.tls_fake import FakeServer, Req, Resp

TID = "00000000-0000-0000-0000-0000000000aa"
SECRET = "client-secret-value-Q7~x"



FakeClock = partial(_FakeClock, 1000.0)


@pytest.fixture
def srv(tmp_path):
    with FakeServer(tmp_dir=str(tmp_path)) as s:
        s.add_oidc(TID)
        yield s


def make_tenant(srv: FakeServer, **kw) -> TenantConfig:
    base = dict(
        name="contoso",
        tenant_id=TID,
        client_id="11111111-1111-1111-1111-111111111111",
        client_secret=Secret(SECRET),
        login_endpoint=srv.base,
        graph_endpoint=srv.base,
        ca_bundle=srv.ca_path,
    )
    base.update(kw)
    return TenantConfig(**base)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def make_client(srv, clock):
    made = []

    def make(http: HttpConfig | None = None, **kw) -> GraphClient:
        kw.setdefault("metrics", Metrics())
        kw.setdefault("sleep", clock.sleep)
        kw.setdefault("limiter", RateLimiter(clock=clock.now, sleep=clock.sleep))
        tenant = kw.pop("tenant", None) or make_tenant(srv)
        c = GraphClient(tenant, http or HttpConfig(max_retries=3), **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def sample(metrics: Metrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def graph_hits(srv: FakeServer, path: str) -> list[Req]:
    return srv.hits("GET", path)


# --- clouds ------------------------------------------------------------------------------
def test_cloud_table():
    assert set(CLOUDS) == {"global", "usgov", "dod", "china"}
    assert (CLOUDS["global"].login_host, CLOUDS["global"].graph_host) == (
        "login.microsoftonline.com", "graph.microsoft.com")
    assert (CLOUDS["usgov"].login_host, CLOUDS["usgov"].graph_host) == (
        "login.microsoftonline.us", "graph.microsoft.us")
    assert (CLOUDS["dod"].login_host, CLOUDS["dod"].graph_host) == (
        "login.microsoftonline.us", "dod-graph.microsoft.us")
    assert (CLOUDS["china"].login_host, CLOUDS["china"].graph_host) == (
        "login.partner.microsoftonline.cn", "microsoftgraph.chinacloudapi.cn")
    for c in CLOUDS.values():
        assert c.scope == f"https://{c.graph_host}/.default"


def test_resolve_defaults_and_overrides():
    t = TenantConfig(name="x", tenant_id="tid", client_id="cid", cloud="dod")
    ep = resolve_endpoints(t)
    assert ep.login_base == "https://login.microsoftonline.us"
    assert ep.graph_base == "https://dod-graph.microsoft.us"
    assert ep.authority == "https://login.microsoftonline.us/tid"
    assert ep.scope == "https://dod-graph.microsoft.us/.default"
    assert ep.instance_discovery is True

    t2 = TenantConfig(name="x", tenant_id="tid", client_id="cid", cloud="usgov",
                      login_endpoint="https://login.example.test/", graph_endpoint="https://graph.example.test//")
    ep2 = resolve_endpoints(t2)
    assert ep2.login_base == "https://login.example.test"
    assert ep2.graph_base == "https://graph.example.test"
    assert ep2.authority == "https://login.example.test/tid"
    assert ep2.scope == "https://graph.microsoft.us/.default"  # the cloud's resource, always
    assert ep2.instance_discovery is False

    # Only the Graph host overridden: discovery stays on, login host stays the cloud's.
    t3 = TenantConfig(name="x", tenant_id="tid", client_id="cid", graph_endpoint="https://g.test")
    ep3 = resolve_endpoints(t3)
    assert ep3.instance_discovery is True and ep3.login_base == "https://login.microsoftonline.com"
    assert ep3.scope == "https://graph.microsoft.com/.default"


@pytest.mark.parametrize("kw", [{"cloud": "mars"}, {"graph_endpoint": "http://plain.test"},
                                {"login_endpoint": "graph.test"}])
def test_resolve_rejects_bad_config(kw):
    with pytest.raises(ConfigError):
        resolve_endpoints(TenantConfig(name="x", tenant_id="t", client_id="c", **kw))


def test_url(make_client, srv):
    c = make_client()
    assert c.graph_base == srv.base
    assert c.url("v1.0", "/security/alerts_v2") == f"{srv.base}/v1.0/security/alerts_v2"
    assert c.url("beta", "auditLogs/signIns") == f"{srv.base}/beta/auditLogs/signIns"


# --- session -----------------------------------------------------------------------------
def test_session_combined_bundle(srv):
    import ssl

    t = make_tenant(srv)
    s = build_session(t)
    # The trust store is in memory (issue 13): verify is True and the adapter's context holds
    # certifi's roots plus the extra CA; no merged bundle file exists anywhere.
    assert s.verify is True
    ctx = s.get_adapter("https://x")._ssl_context
    ders = {c for c in ctx.get_ca_certs(binary_form=True)}
    with open(srv.ca_path) as f:
        assert ssl.PEM_cert_to_DER_cert(f.read()) in ders  # plus the extra CA
    certifi_ctx = ssl.create_default_context(cafile=certifi.where())
    assert set(certifi_ctx.get_ca_certs(binary_form=True)) <= ders  # certifi's roots stay trusted
    # Built once per distinct path.
    assert build_session(t).get_adapter("https://x")._ssl_context is ctx
    assert s.headers["User-Agent"].startswith("td-graph/")
    adapter = s.get_adapter("https://x")
    assert adapter.max_retries.total == 0
    assert adapter._pool_maxsize >= 8
    # No ca_bundle: certifi alone.
    plain = build_session(make_tenant(srv, ca_bundle=None)).get_adapter("https://x")._ssl_context
    assert set(plain.get_ca_certs(binary_form=True)) == set(certifi_ctx.get_ca_certs(binary_form=True))


def test_session_missing_ca_bundle(srv, tmp_path):
    missing = str(tmp_path / "corp-ca.pem")
    with pytest.raises(ConfigError) as ei:
        build_session(make_tenant(srv, ca_bundle=missing))
    assert missing in str(ei.value)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError) as ei:
        build_session(make_tenant(srv, ca_bundle=str(junk)))
    assert str(junk) in str(ei.value)


def test_session_proxy_and_never_unverified(srv, tmp_path, monkeypatch):
    s = build_session(make_tenant(srv, proxy="http://proxy.corp:3128"))
    assert s.proxies == {"http": "http://proxy.corp:3128", "https": "http://proxy.corp:3128"}
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:1")
    merged = s.merge_environment_settings("https://graph.microsoft.com/", {}, None, False, None)
    assert merged["proxies"]["https"] == "http://proxy.corp:3128"  # the tenant's proxy wins
    assert merged["verify"] == s.verify  # verify=False is not honoured
    # The environment cannot swap the trust store either.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/dev/null")
    monkeypatch.delenv("HTTPS_PROXY")
    plain = build_session(make_tenant(srv))
    assert plain.get(srv.base + "/nothing", timeout=5).status_code == 404
    # And an untrusted server stays untrusted even when a caller asks for verify=False.
    with FakeServer(tmp_dir=str(tmp_path)) as other:
        with pytest.raises(requests.exceptions.SSLError):
            plain.get(other.base + "/", verify=False, timeout=5)


def test_environment_proxies_apply_per_origin_and_no_proxy_bypasses(srv, monkeypatch):
    """Without a tenant proxy the environment's proxy applies (read once per origin)."""
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:1")
    monkeypatch.setenv("NO_PROXY", "login.example.test")
    s = build_session(make_tenant(srv))
    graph = s.merge_environment_settings("https://graph.microsoft.com/v1.0/users", {}, None, True, None)
    assert graph["proxies"]["https"] == "http://env-proxy:1"
    again = s.merge_environment_settings("https://graph.microsoft.com/v1.0/groups", {}, None, True, None)
    assert again["proxies"] == graph["proxies"]
    login = s.merge_environment_settings("https://login.example.test/t/oauth2/v2.0/token", {}, None, True, None)
    assert "https" not in login["proxies"], "NO_PROXY names the login host"
    # A caller's mapping still wins over the environment's, and does not stick.
    own = s.merge_environment_settings("https://graph.microsoft.com/x", {"https": "http://p:2"}, None, True, None)
    assert own["proxies"]["https"] == "http://p:2"
    assert s.merge_environment_settings("https://graph.microsoft.com/y", {}, None, True, None)["proxies"]["https"] \
        == "http://env-proxy:1"


# --- requests and paging -----------------------------------------------------------------
def test_paging_three_pages_with_empty_page(make_client, srv):
    path = "/v1.0/users/delta"
    base = srv.base

    def handler(req: Req) -> Resp:
        tok = req.query.get("$skiptoken", [None])[0]
        if tok is None:
            return Resp(json={"@odata.context": "ctx", "value": [{"id": "1"}, {"id": "2"}],
                              "@odata.nextLink": f"{base}{path}?$skiptoken=A%2BB"})
        if tok == "A+B":
            return Resp(json={"value": [], "@odata.nextLink": f"{base}{path}?$skiptoken=C"})
        return Resp(json={"value": [{"id": "3"}], "@odata.deltaLink": f"{base}{path}?$deltatoken=D"},
                    headers={"request-id": "rid-3"})

    srv.route("GET", path, handler)
    c = make_client()
    hdrs = {"ConsistencyLevel": "eventual", "Prefer": "return=minimal"}
    for prefetch in (False, True):
        before = len(graph_hits(srv, path))
        pages = list(c.pages(c.url("v1.0", "users/delta"), params={"$select": "id,displayName"},
                             headers=hdrs, source="directory.users", prefetch=prefetch))
        assert [[i["id"] for i in p.items] for p in pages] == [["1", "2"], [], ["3"]]
        assert [p.next_link is not None for p in pages] == [True, True, False]
        assert pages[-1].delta_link == f"{base}{path}?$deltatoken=D"
        assert pages[0].delta_link is None
        assert pages[-1].request_id == "rid-3"
        assert pages[0].raw == {"@odata.context": "ctx", "@odata.nextLink": f"{base}{path}?$skiptoken=A%2BB"}
        reqs = graph_hits(srv, path)[before:]
        assert len(reqs) == 3
        # params on the first request only; the nextLink is followed verbatim.
        assert reqs[0].query == {"$select": ["id,displayName"]}
        assert reqs[1].raw_path == f"{path}?$skiptoken=A%2BB"
        assert reqs[2].raw_path == f"{path}?$skiptoken=C"
        for r in reqs:
            assert r.headers["consistencylevel"] == "eventual"
            assert r.headers["prefer"] == "return=minimal"
            assert r.headers["authorization"] == "Bearer tok-1"
        ids = {r.headers["client-request-id"] for r in reqs}
        assert len(ids) == 3  # fresh per request
        for rid in ids:  # a random (version 4, RFC 4122 variant) UUID in its canonical form
            assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", rid), rid
    m = c.metrics
    assert sample(m, "td_graph_requests_total", tenant="contoso", source="directory.users", code="200") == 6
    assert len(srv.token_posts(TID)) == 1


def test_retry_after_float_is_honoured(make_client, srv, clock):
    srv.route("GET", "/v1.0/x", [
        Resp(429, json={"error": {"code": "TooManyRequests", "message": "Please retry again later."}},
             headers={"Retry-After": "2.128"}),
        Resp(json={"value": [{"id": "a"}]}),
    ])
    c = make_client()
    penalties = []
    orig = c.limiter.penalize
    c.limiter.penalize = lambda cls, s, key=None: (penalties.append((cls, s, key)), orig(cls, s, key))
    data = c.get_json(c.url("v1.0", "x"), source="s", throttle_class="security")
    assert data["value"] == [{"id": "a"}]
    assert clock.sleeps == [2.128]
    assert penalties == [("security", 2.128, None)]
    m = c.metrics
    assert sample(m, "td_graph_throttled_total", tenant="contoso", source="s") == 1
    assert sample(m, "td_graph_requests_total", tenant="contoso", source="s", code="429") == 1


def test_retry_after_http_date(make_client, srv, clock):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    srv.route("GET", "/v1.0/x", [Resp(503, headers={"Retry-After": when}), Resp(json={"value": []})])
    c = make_client()
    c.get_json(c.url("v1.0", "x"))
    assert len(clock.sleeps) == 1 and 27 <= clock.sleeps[0] <= 31


def test_backoff_without_retry_after(make_client, srv, clock):
    srv.route("GET", "/v1.0/riskyUsers", [Resp(429), Resp(429), Resp(429), Resp(json={"value": []})])
    c = make_client(rng=random.Random(7))
    c.get_json(c.url("v1.0", "riskyUsers"), throttle_class="identity_protection")
    ref = random.Random(7)
    # A 429 without Retry-After waits at least the class's window (1 s here), jitter only adds
    # (issue 15; tests/test_retry_discipline.py): max(1, 2**n) plus up to a quarter of it.
    expected = [low + ref.uniform(0, low * 0.25) for low in (1, 2, 4)]
    # (the limiter's own pacing for identity_protection, 1 req / 1.05 s, may add waits)
    retry_waits = [s for s in clock.sleeps if s in expected]
    assert retry_waits == expected
    assert all(low <= w <= low * 1.25 for w, low in zip(expected, (1, 2, 4)))


def test_backoff_is_capped(make_client):
    c = make_client(rng=random.Random(1))
    assert all(c.backoff(30) <= 60 for _ in range(50))
    assert max(c.backoff(30) for _ in range(200)) > 30


def test_5xx_then_success(make_client, srv):
    srv.route("GET", "/v1.0/x", [Resp(503), Resp(504), Resp(500), Resp(502), Resp(json={"value": [1]})])
    c = make_client(HttpConfig(max_retries=4))
    assert c.get_json(c.url("v1.0", "x"), source="s")["value"] == [1]
    m = c.metrics
    for code in ("503", "504", "500", "502", "200"):
        assert sample(m, "td_graph_requests_total", tenant="contoso", source="s", code=code) == 1
    assert sample(m, "td_graph_errors_total", tenant="contoso", source="s", kind="transient") == 0


def test_retry_budget_exhausted_throttled(make_client, srv, clock):
    srv.route("GET", "/v1.0/x", Resp(429, json={"error": {"code": "TooManyRequests", "message": "slow down"}},
                                      headers={"Retry-After": "1", "request-id": "rid-429"}))
    c = make_client(HttpConfig(max_retries=2))
    with pytest.raises(GraphThrottled) as ei:
        c.get_json(c.url("v1.0", "x"), source="s")
    assert len(graph_hits(srv, "/v1.0/x")) == 3
    assert clock.sleeps == [1.0, 1.0]
    assert ei.value.retry_after == 1.0 and ei.value.request_id == "rid-429"
    assert sample(c.metrics, "td_graph_errors_total", tenant="contoso", source="s", kind="throttled") == 1


def test_retry_budget_exhausted_transient(make_client, srv):
    srv.route("GET", "/v1.0/x", Resp(500, json={"error": {"code": "UnknownError", "message": ""}}))
    c = make_client(HttpConfig(max_retries=1))
    with pytest.raises(GraphTransient) as ei:
        c.get_json(c.url("v1.0", "x"), source="s")
    assert ei.value.status == 500
    assert len(graph_hits(srv, "/v1.0/x")) == 2
    assert sample(c.metrics, "td_graph_errors_total", tenant="contoso", source="s", kind="transient") == 1


def test_long_retry_after_defers_instead_of_blocking(make_client, srv, clock):
    srv.route("GET", "/v1.0/x", Resp(429, headers={"Retry-After": "400"}))
    c = make_client(HttpConfig(max_retries=5, max_retry_wait=300))
    with pytest.raises(GraphThrottled) as ei:
        c.get_json(c.url("v1.0", "x"))
    assert ei.value.retry_after == 400
    assert clock.sleeps == []
    assert len(graph_hits(srv, "/v1.0/x")) == 1
    # Other workers of the class hold back too.
    assert c.limiter.delay("default") == pytest.approx(400)


def test_not_retried_errors(make_client, srv):
    srv.route("GET", "/v1.0/x", Resp(404, json={"error": {"code": "Request_ResourceNotFound", "message": "gone"}}))
    c = make_client()
    with pytest.raises(GraphNotFound):
        c.get_json(c.url("v1.0", "x"), source="s")
    assert len(graph_hits(srv, "/v1.0/x")) == 1
    assert sample(c.metrics, "td_graph_errors_total", tenant="contoso", source="s", kind="not_found") == 1


@pytest.mark.parametrize("bad", [Resp(drop=True), Resp(body=b'{"value": [', truncate=True),
                                 Resp(body=b"<html>gateway</html>"), Resp(body=b'{"value": [1,')])
def test_transport_and_body_errors_are_retried(make_client, srv, bad):
    srv.route("GET", "/v1.0/x", [bad, Resp(json={"value": [1]})])
    c = make_client()
    assert c.get_json(c.url("v1.0", "x"), source="s")["value"] == [1]
    assert len(graph_hits(srv, "/v1.0/x")) == 2


def test_bad_body_exhausted_is_response_error(make_client, srv):
    srv.route("GET", "/v1.0/x", Resp(body=b"not json"))
    c = make_client(HttpConfig(max_retries=1))
    with pytest.raises(GraphResponseError):
        c.get_json(c.url("v1.0", "x"), source="s")
    assert sample(c.metrics, "td_graph_errors_total", tenant="contoso", source="s", kind="bad_response") == 1


def test_read_timeout_is_retried(make_client, srv):
    srv.route("GET", "/v1.0/x", [Resp(json={"value": []}, delay=0.6), Resp(json={"value": [2]})])
    c = make_client(HttpConfig(read_timeout=0.2, max_retries=2))
    assert c.get_json(c.url("v1.0", "x"), source="s")["value"] == [2]
    assert sample(c.metrics, "td_graph_requests_total", tenant="contoso", source="s", code="0") == 1
    srv.route("GET", "/v1.0/slow", Resp(json={"value": []}, delay=0.4))
    c2 = make_client(HttpConfig(read_timeout=0.1, max_retries=0))
    with pytest.raises(GraphTransient) as ei:
        c2.get_json(c2.url("v1.0", "slow"))
    assert "read timeout" in str(ei.value) and ei.value.path == "/v1.0/slow"


def test_401_mid_paging_reacquires_once(make_client, srv):
    path = "/v1.0/auditLogs/signIns"

    def handler(req: Req) -> Resp:
        if "$skiptoken" not in req.query:
            return Resp(json={"value": [{"id": "1"}], "@odata.nextLink": f"{srv.base}{path}?$skiptoken=2"})
        if req.headers.get("authorization") == "Bearer tok-1":  # revoked meanwhile
            return Resp(401, json={"error": {"code": "InvalidAuthenticationToken", "message": "expired"}})
        return Resp(json={"value": [{"id": "2"}]})

    srv.route("GET", path, handler)
    c = make_client()
    pages = list(c.pages(c.url("v1.0", "auditLogs/signIns"), source="s"))
    assert [p.items for p in pages] == [[{"id": "1"}], [{"id": "2"}]]
    assert len(srv.token_posts(TID)) == 2
    assert [r.headers["authorization"] for r in graph_hits(srv, path)] == [
        "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_second_401_is_unauthorized(make_client, srv):
    srv.route("GET", "/v1.0/x", Resp(401, json={"error": {"code": "InvalidAuthenticationToken",
                                                          "message": "Access token validation failure."}}))
    c = make_client()
    with pytest.raises(GraphUnauthorized) as ei:
        c.get_json(c.url("v1.0", "x"), source="s")
    assert "tok-" not in str(ei.value)
    assert len(graph_hits(srv, "/v1.0/x")) == 2
    assert len(srv.token_posts(TID)) == 2
    assert sample(c.metrics, "td_graph_errors_total", tenant="contoso", source="s", kind="auth") == 1


def test_nextlink_loop_guard(make_client, srv):
    path = "/v1.0/security/alerts_v2"
    n = {"i": 0}

    def handler(req):  # a broken service: every page points at the same next page
        n["i"] += 1
        return Resp(json={"value": [{"id": n["i"]}], "@odata.nextLink": f"{srv.base}{path}?$skiptoken=X"})

    srv.route("GET", path, handler)
    c = make_client()
    got = []
    with pytest.raises(GraphResponseError) as ei:
        for p in c.pages(c.url("v1.0", "security/alerts_v2"), params={"$top": 10}, source="s", prefetch=False):
            got.append(p)
    assert "loop" in str(ei.value)
    assert "skiptoken" not in str(ei.value)
    assert len(got) == 1 and len(graph_hits(srv, path)) == 2


def _numbered_pages(srv: FakeServer, path: str, count: int, fail_at: int | None = None):
    def handler(req):
        i = int(req.query.get("$skiptoken", ["1"])[0])
        if fail_at is not None and i == fail_at:
            return Resp(404, json={"error": {"code": "NotFound", "message": "page vanished"}})
        body = {"value": [{"id": str(i)}]}
        if i < count:
            body["@odata.nextLink"] = f"{srv.base}{path}?$skiptoken={i + 1}"
        return Resp(json=body)

    srv.route("GET", path, handler)


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name.startswith("td-graph-prefetch") and t.is_alive()]


def test_prefetch_identical_pages(make_client, srv):
    _numbered_pages(srv, "/v1.0/p", 6)
    c = make_client()
    a = [(p.items, p.next_link) for p in c.pages(c.url("v1.0", "p"), prefetch=False)]
    b = [(p.items, p.next_link) for p in c.pages(c.url("v1.0", "p"), prefetch=True)]
    assert a == b and len(a) == 6
    assert not _prefetch_threads()


def test_one_page_starts_no_prefetch_thread_and_errors_on_page_one_surface(make_client, srv, monkeypatch):
    """Most polls of a running collector are one page: it is fetched on the caller's thread."""
    import td_graph_plugin.graph.paging as paging

    started = []
    real = paging.threading.Thread

    class Counting(real):  # type: ignore[misc, valid-type]
        def start(self):
            if self.name.startswith("td-graph-prefetch"):  # not the test server's threads
                started.append(self.name)
            super().start()

    monkeypatch.setattr(paging.threading, "Thread", Counting)
    _numbered_pages(srv, "/v1.0/one", 1)
    c = make_client()
    assert [p.items for p in c.pages(c.url("v1.0", "one"))] == [[{"id": "1"}]]
    assert started == [] and len(graph_hits(srv, "/v1.0/one")) == 1
    _numbered_pages(srv, "/v1.0/two", 2)
    assert [p.items for p in c.pages(c.url("v1.0", "two"))] == [[{"id": "1"}], [{"id": "2"}]]
    assert len(started) == 1, "a second page: the prefetch thread as before"
    _numbered_pages(srv, "/v1.0/gone", 3, fail_at=1)
    with pytest.raises(GraphNotFound):
        next(iter(c.pages(c.url("v1.0", "gone"))))
    assert len(started) == 1 and not _prefetch_threads()


def test_prefetch_fetches_ahead_and_stops_when_consumer_breaks(make_client, srv):
    _numbered_pages(srv, "/v1.0/p", 6)
    c = make_client()
    it = c.pages(c.url("v1.0", "p"), prefetch=True)
    first = next(it)
    assert first.items == [{"id": "1"}]
    deadline = time.monotonic() + 5
    while len(graph_hits(srv, "/v1.0/p")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(graph_hits(srv, "/v1.0/p")) == 2  # page 2 fetched while the caller works on page 1
    time.sleep(0.1)
    assert len(graph_hits(srv, "/v1.0/p")) == 2  # ...and no further than one page ahead
    it.close()  # the consumer stops early
    assert not _prefetch_threads()
    time.sleep(0.1)
    assert len(graph_hits(srv, "/v1.0/p")) == 2


def test_prefetch_break_in_for_loop(make_client, srv):
    _numbered_pages(srv, "/v1.0/p", 6)
    c = make_client()
    seen = []
    gen = c.pages(c.url("v1.0", "p"))
    for page in gen:
        seen.append(page.items[0]["id"])
        if len(seen) == 3:
            break
    gen.close()
    assert seen == ["1", "2", "3"]
    assert not _prefetch_threads()
    assert len(graph_hits(srv, "/v1.0/p")) <= 4


def test_prefetch_error_surfaces_in_order(make_client, srv):
    _numbered_pages(srv, "/v1.0/p", 6, fail_at=3)
    c = make_client()
    it = c.pages(c.url("v1.0", "p"))
    assert next(it).items == [{"id": "1"}]
    assert next(it).items == [{"id": "2"}]
    with pytest.raises(GraphNotFound):
        next(it)
    assert not _prefetch_threads()


def test_prefetch_close_stops_retries_of_the_page_in_flight(srv):
    _numbered_pages(srv, "/v1.0/p", 6)
    srv.route("GET", "/v1.0/p", _throttle_from_page(srv, 2))
    c = GraphClient(make_tenant(srv), HttpConfig(max_retries=10), Metrics())
    it = c.pages(c.url("v1.0", "p"))
    assert next(it).items == [{"id": "1"}]
    deadline = time.monotonic() + 5
    while len(graph_hits(srv, "/v1.0/p")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    it.close()  # the worker is now waiting out page 2's Retry-After
    assert time.monotonic() - t0 < 1.0
    assert not _prefetch_threads()
    time.sleep(0.6)
    assert len(graph_hits(srv, "/v1.0/p")) == 2  # page 2 was not retried
    c.close()


def _throttle_from_page(srv: FakeServer, n: int):
    def handler(req):
        i = int(req.query.get("$skiptoken", ["1"])[0])
        if i >= n:
            return Resp(429, headers={"Retry-After": "0.4"})
        return Resp(json={"value": [{"id": str(i)}], "@odata.nextLink": f"{srv.base}/v1.0/p?$skiptoken={i + 1}"})

    return handler


def test_no_token_when_auth_false_or_foreign_host(make_client, srv, tmp_path):
    with FakeServer(ca=srv.ca, tmp_dir=str(tmp_path)) as cdn:  # same CA, other origin
        cdn.route("GET", "/report.csv", Resp(body=b"Report Refresh Date,User Principal Name\n",
                                              headers={"Content-Type": "application/octet-stream"}))
        fn = "/v1.0/reports/getOffice365ActiveUserDetail(period='D7')"
        srv.route("GET", fn, Resp(302, headers={"Location": f"{cdn.base}/report.csv?sig=SECRETSIG"}))
        c = make_client()
        resp = c.request("GET", f"{srv.base}{fn}", allow_redirects=False, expect_json=False,
                         throttle_class="usage_reports", throttle_key="reports.office365_active_users")
        assert resp.status_code == 302
        loc = resp.headers["Location"]
        csv = c.request("GET", loc, auth=False, expect_json=False)
        assert csv.content.startswith(b"Report Refresh Date")
        # auth=True to a foreign host still sends no token.
        c.request("GET", loc, expect_json=False)
        # A redirect to another origin is not followed at all (issue 13): neither the token
        # nor the request goes there, and nothing it would answer is read.
        with pytest.raises(GraphForeignLink) as ei:
            c.request("GET", f"{srv.base}{fn}", expect_json=False)
        assert "SECRETSIG" not in str(ei.value)
        assert srv.hits("GET", fn)[0].headers["authorization"] == "Bearer tok-1"
        assert srv.hits("GET", fn)[-1].headers["authorization"] == "Bearer tok-1"
        assert len(cdn.requests) == 2
        for r in cdn.requests:
            assert "authorization" not in r.headers
        # A caller-supplied Authorization header is never passed through either.
        c.request("GET", loc, auth=False, expect_json=False, headers={"Authorization": "Bearer leak"})
        assert "authorization" not in cdn.requests[-1].headers


def test_stop_interrupts_retry_wait(srv):
    srv.route("GET", "/v1.0/x", Resp(429, headers={"Retry-After": "30"}))
    stop = threading.Event()
    tenant = make_tenant(srv)
    c = GraphClient(tenant, HttpConfig(max_retries=3), Metrics(), stop=stop)
    threading.Timer(0.2, stop.set).start()
    t0 = time.monotonic()
    with pytest.raises(GraphStopped):
        c.get_json(c.url("v1.0", "x"))
    assert time.monotonic() - t0 < 5
    # Once stopped, nothing more is sent.
    n = len(srv.requests)
    with pytest.raises(GraphStopped):
        c.get_json(c.url("v1.0", "x"))
    assert len(srv.requests) == n
    c.close()


def test_debug_log_has_path_not_query_or_token(make_client, srv, caplog):
    caplog.set_level(logging.DEBUG, logger="td_graph_plugin")
    srv.route("GET", "/v1.0/x", Resp(json={"value": []}, headers={"request-id": "rid-77"}))
    c = make_client()
    c.get_json(c.url("v1.0", "x") + "?$skiptoken=SKIPSECRET", source="s")
    text = caplog.text
    assert "GET /v1.0/x -> 200" in text and "rid-77" in text
    assert "SKIPSECRET" not in text and "tok-1" not in text and SECRET not in text
    assert all(r.name.startswith("td_graph_plugin.graph") for r in caplog.records)


def test_limiter_paces_requests(make_client, srv, clock):
    srv.route("GET", "/v1.0/auditLogs/signIns", Resp(json={"value": []}))
    c = make_client()
    for _ in range(6):
        c.get_json(c.url("v1.0", "auditLogs/signIns"), throttle_class="identity_reports")
    assert len(clock.sleeps) == 1 and clock.sleeps[0] > 10  # the 6th waited for the window
