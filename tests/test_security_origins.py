"""Issue 13: no token, secret or record crosses to a foreign origin; response sizes are capped;
the trust store leaves nothing behind.

Two TLS listeners (tests/tls_fake.py) share one test CA: ``graph`` is the tenant's Graph and
login endpoint, ``evil`` is any other origin.  Every test proves from ``evil``'s side that no
``Authorization`` header (or client secret) reached it, and from the output's side that nothing
it answered was emitted as a record.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest

from td_graph_plugin import errors
from td_graph_plugin.collector import SourceRun, SyncSink
from td_graph_plugin.collector.inventory import collect_delta
from td_graph_plugin.config.model import HttpConfig, Secret, SourceSettings, TenantConfig
from td_graph_plugin.errors import AuthError, GraphError, GraphResponseError, GraphResyncRequired
from td_graph_plugin.graph import GraphClient, RateLimiter
from td_graph_plugin.graph.auth import TokenProvider
from td_graph_plugin.graph.http import build_session
from td_graph_plugin.metrics import Metrics
from td_graph_plugin.state import StateStore
from tests.fakes import FakeClock, ListOutput

try:  # tests/ is on sys.path when it is not a package (pytest rootdir insertion)
    from tls_fake import FakeServer, Req, Resp
except ImportError:  # pragma: no cover - tests/ became a package
    from tests.tls_fake import FakeServer, Req, Resp

TID = "00000000-0000-0000-0000-0000000000aa"
CID = "11111111-1111-1111-1111-1111111111bb"
SECRET = "s3cr3t-Value~origin-test-ZZ9"
T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
USERS = "/v1.0/users/delta"
EVIL_ITEM = {"id": "evil-1", "displayName": "from the foreign listener"}


def foreign_link_error() -> type[Exception]:
    """The error a foreign nextLink fails the source with (looked up at run time, so the tests
    can run against code that predates it)."""
    cls = getattr(errors, "GraphForeignLink", None)
    assert cls is not None, "td_graph_plugin.errors.GraphForeignLink does not exist"
    return cls


@pytest.fixture
def graph(tmp_path):
    with FakeServer(tmp_dir=str(tmp_path)) as s:
        s.add_oidc(TID)
        yield s


@pytest.fixture
def evil(graph, tmp_path):
    """Another origin with a certificate the tenant trusts (same CA): TLS alone does not stop it."""
    with FakeServer(ca=graph.ca, tmp_dir=str(tmp_path)) as s:
        s.add_oidc(TID)
        s.route("GET", USERS, Resp(json={"value": [EVIL_ITEM], "@odata.deltaLink": f"{s.base}{USERS}?$deltatoken=E"}))
        s.route("GET", "/v1.0/users", Resp(json={"value": [EVIL_ITEM]}))
        s.route("GET", "/", Resp(json={"value": [EVIL_ITEM]}))
        yield s


def tenant_for(graph: FakeServer, **kw: Any) -> TenantConfig:
    base: dict[str, Any] = dict(
        name="contoso", tenant_id=TID, client_id=CID, client_secret=Secret(SECRET),
        login_endpoint=graph.base, graph_endpoint=graph.base, ca_bundle=graph.ca_path,
    )
    base.update(kw)
    return TenantConfig(**base)


def client_for(graph: FakeServer, **kw: Any) -> GraphClient:
    clock = FakeClock()
    return GraphClient(
        kw.pop("tenant", None) or tenant_for(graph), HttpConfig(max_retries=1, connect_timeout=3, read_timeout=5),
        Metrics(), sleep=clock.sleep, limiter=RateLimiter(clock=clock.now, sleep=clock.sleep), **kw,
    )


def no_secret_reached(evil: FakeServer) -> None:
    for r in evil.requests:
        assert "authorization" not in r.headers, f"the bearer token reached the foreign listener ({r.raw_path})"
        assert SECRET.encode() not in r.body and b"client_secret" not in r.body, "the client secret reached it"


def evil_links(graph: FakeServer, evil: FakeServer) -> dict[str, str]:
    g = graph.base.split("//", 1)[1]  # 127.0.0.1:<graph port>
    e = evil.base.split("//", 1)[1]  # 127.0.0.1:<evil port>
    ep = evil.port
    return {
        "foreign host": f"https://localhost:{ep}/v1.0/users?$skiptoken=2",
        "same host, other port": f"https://{e}/v1.0/users?$skiptoken=2",
        "same port, other host name": f"https://localhost:{graph.port}/v1.0/users?$skiptoken=2",
        "userinfo graph@evil": f"https://{g}@localhost:{ep}/v1.0/users?$skiptoken=2",
        "userinfo evil\\@graph": f"https://{e}\\@{g}/v1.0/users?$skiptoken=2",
        "backslash in the path": f"https://{g}/v1.0/users\\..\\x?$skiptoken=2",
        "backslash in the query": f"https://{g}/v1.0/users?$skiptoken=a\\b",
        "fragment": f"https://{g}/v1.0/users?$skiptoken=2#x",
        "percent-encoded @": f"https://{e}%40{g}/v1.0/users?$skiptoken=2",
        "percent-encoded backslash": f"https://{e}%5C{g}/v1.0/users?$skiptoken=2",
        "percent-encoded host": "https://%31%32%37.0.0.1:" + str(graph.port) + "/v1.0/users?$skiptoken=2",
        "IDNA full stops": f"https://127\u30020\u30020\u30021:{graph.port}/v1.0/users?$skiptoken=2",
        "fullwidth host": f"https://\uff4cocalhost:{ep}/v1.0/users?$skiptoken=2",
        "punycode host": f"https://xn--lcalhost-9za:{ep}/v1.0/users?$skiptoken=2",
        "http scheme": f"http://{g}/v1.0/users?$skiptoken=2",
        "space": f"https://{g}/v1.0/users?$skiptoken=a b",
        "control character": f"https://{g}/v1.0/users?$skiptoken=a\x01b",
        "explicit other port on graph host": f"https://127.0.0.1:{ep}@{g}/v1.0/users",
    }


LINK_CASES = [
    "foreign host", "same host, other port", "same port, other host name", "userinfo graph@evil",
    "userinfo evil\\@graph", "backslash in the path", "backslash in the query", "fragment",
    "percent-encoded @", "percent-encoded backslash", "percent-encoded host", "IDNA full stops",
    "fullwidth host", "punycode host", "http scheme", "space", "control character",
    "explicit other port on graph host",
]


# --- High 1: @odata.nextLink ----------------------------------------------------------------
@pytest.mark.parametrize("case", LINK_CASES)
def test_foreign_next_link_fails_the_page_read_and_reaches_nobody(graph, evil, case):
    link = evil_links(graph, evil)[case]
    graph.route("GET", "/v1.0/users", Resp(json={"value": [{"id": "g-1"}], "@odata.nextLink": link}))
    with client_for(graph) as c:
        got: list[dict] = []
        with pytest.raises(Exception) as ei:
            for page in c.pages(c.url("v1.0", "/users"), source="directory.users", prefetch=False):
                got.extend(page.items)
    no_secret_reached(evil)
    assert not evil.requests, f"{case}: the foreign listener was contacted"
    assert EVIL_ITEM not in got
    # Only the one request for page 1 reached Graph's listener (nothing for a same-listener trick).
    assert [r.raw_path for r in graph.requests if r.path.startswith("/v1.0")] == ["/v1.0/users"]
    assert isinstance(ei.value, foreign_link_error()) and isinstance(ei.value, GraphResponseError), repr(ei.value)
    text = str(ei.value)
    assert "nextLink" in text and "$skiptoken" not in text, text  # names the host, never the whole link


@pytest.mark.parametrize("case", ["foreign host", "userinfo evil\\@graph", "same host, other port"])
def test_foreign_next_link_with_prefetch(graph, evil, case):
    link = evil_links(graph, evil)[case]
    graph.route("GET", "/v1.0/users", Resp(json={"value": [{"id": "g-1"}], "@odata.nextLink": link}))
    with client_for(graph) as c:
        with pytest.raises(GraphError):
            list(c.pages(c.url("v1.0", "/users"), source="s"))
    no_secret_reached(evil)
    assert not evil.requests


def test_error_names_the_host_not_the_link(graph, evil):
    link = f"https://localhost:{evil.port}/v1.0/users?$skiptoken=SECRET-SKIPTOKEN"
    graph.route("GET", "/v1.0/users", Resp(json={"value": [], "@odata.nextLink": link}))
    with client_for(graph) as c:
        with pytest.raises(GraphError) as ei:
            list(c.pages(c.url("v1.0", "/users"), prefetch=False))
    text = str(ei.value)
    assert f"localhost:{evil.port}" in text and "SECRET-SKIPTOKEN" not in text
    assert isinstance(ei.value, foreign_link_error())


def test_same_origin_links_are_still_followed(graph, tmp_path):
    """Textual equality after lowercasing the host and normalising the default port: an
    upper-case host or a percent-encoded '@' in the query is Graph's own link."""
    with FakeServer(ca=graph.ca, tmp_dir=str(tmp_path)) as named:
        named.add_oidc(TID)
        base = f"https://localhost:{named.port}"
        named.route("GET", "/v1.0/users", [
            Resp(json={"value": [{"id": "1"}], "@odata.nextLink": f"https://LOCALHOST:{named.port}/v1.0/users?$skiptoken=a%40b"}),
            Resp(json={"value": [{"id": "2"}]}),
        ])
        tenant = tenant_for(named, login_endpoint=named.base, graph_endpoint=base)
        with client_for(named, tenant=tenant) as c:
            pages = list(c.pages(c.url("v1.0", "/users"), prefetch=False))
        assert [i["id"] for p in pages for i in p.items] == ["1", "2"]
        second = named.hits("GET", "/v1.0/users")[1]
        assert second.raw_path == "/v1.0/users?$skiptoken=a%40b"
        assert second.headers["authorization"] == "Bearer tok-1"


def test_default_port_is_normalised(graph):
    from td_graph_plugin.graph.clouds import link_problem

    assert link_problem("https://graph.microsoft.com:443/v1.0/users?$skiptoken=x", "https://graph.microsoft.com") is None
    assert link_problem("https://Graph.Microsoft.COM/v1.0/users", "https://graph.microsoft.com") is None
    assert link_problem("https://graph.microsoft.com:8443/v1.0/users", "https://graph.microsoft.com") is not None
    assert link_problem("https://graph.microsoft.com.evil.example/v1.0", "https://graph.microsoft.com") is not None
    assert link_problem(None, "https://graph.microsoft.com") is not None  # type: ignore[arg-type]


def test_stored_foreign_start_url_asks_for_a_resync(graph, evil):
    with client_for(graph) as c:
        for case in ("foreign host", "userinfo evil\\@graph", "fragment", "http scheme"):
            with pytest.raises(GraphResyncRequired) as ei:
                list(c.pages(evil_links(graph, evil)[case], prefetch=False))
            assert "$skiptoken" not in str(ei.value)
    no_secret_reached(evil)
    assert not evil.requests


def test_fetch_sends_no_token_through_a_parser_mismatch(graph, evil):
    """``fetch`` to a URL urllib.parse and urllib3 read differently never carries the token."""
    e, g = evil.base.split("//", 1)[1], graph.base.split("//", 1)[1]
    with client_for(graph) as c:
        try:
            c.fetch("GET", f"https://{e}\\@{g}/", expect_json=False)
        except GraphError:
            pass
    no_secret_reached(evil)


def test_redirect_from_graph_to_a_parser_mismatch_drops_the_token(graph, evil):
    """requests keeps Authorization on a redirect when urllib.parse sees the same host: the
    session's own rule must be the strict one."""
    e, g = evil.base.split("//", 1)[1], graph.base.split("//", 1)[1]
    graph.route("GET", "/v1.0/hop", Resp(302, headers={"Location": f"https://{e}\\@{g}/"}))
    with client_for(graph) as c:
        try:
            c.fetch("GET", f"{graph.base}/v1.0/hop", expect_json=False)
        except GraphError:
            pass
    assert graph.hits("GET", "/v1.0/hop")[0].headers["authorization"] == "Bearer tok-1"
    no_secret_reached(evil)


# --- High 1 through a real collector: stored deltaLink and nextLink -------------------------
@pytest.fixture
def state(tmp_path):
    s = StateStore(str(tmp_path / "state.db"))
    yield s
    s.close()


def run_for(catalogue, client, state, out):
    sink = SyncSink(out, state)
    sink.open()
    return SourceRun(tenant=client.tenant, spec=catalogue["directory.users"], settings=SourceSettings(),
                     client=client, state=state, sink=sink, metrics=Metrics(), stop=threading.Event(),
                     now=lambda: T0)


def emitted(out: ListOutput) -> list[str]:
    return [orjson.loads(line)["id"] for line in out.lines]


@pytest.mark.parametrize("case", ["foreign host", "userinfo evil\\@graph", "same host, other port", "fragment"])
def test_collector_resyncs_from_graph_instead_of_a_stored_foreign_delta_link(catalogue, state, graph, evil, case):
    link = evil_links(graph, evil)[case].replace("/v1.0/users?$skiptoken=2", f"{USERS}?$deltatoken=E")
    calls = {"n": 0}

    def users(req: Req) -> Resp:
        calls["n"] += 1
        return Resp(json={"value": [{"id": f"g-{calls['n']}"}], "@odata.deltaLink": link})

    graph.route("GET", USERS, users)
    out = ListOutput()
    with client_for(graph) as c:
        collect_delta(run_for(catalogue, c, state, out))  # round 1 stores Graph's (bad) deltaLink
        assert state.cursor("contoso", "directory.users")["delta_link"] == link
        collect_delta(run_for(catalogue, c, state, out))  # round 2: that link is never followed
    no_secret_reached(evil)
    assert not evil.requests, "a stored link sent the collector to the foreign listener"
    assert "evil-1" not in emitted(out)
    # Round 2 was a full resync from the configured Graph endpoint (no deltatoken): its one
    # object, then the sweep's removal of the object the full read no longer returned.
    reqs = graph.hits("GET", USERS)
    assert len(reqs) == 2 and "deltatoken" not in reqs[1].raw_path
    got = [(r["id"], r.get("removed")) for r in map(orjson.loads, out.lines)]
    assert got == [("g-1", None), ("g-2", None), ("g-1", "deleted")]


def test_collector_fails_the_source_on_a_foreign_next_link(catalogue, state, graph, evil):
    e, g = evil.base.split("//", 1)[1], graph.base.split("//", 1)[1]
    graph.route("GET", USERS, Resp(json={"value": [{"id": "g-1"}], "@odata.nextLink": f"https://{e}\\@{g}{USERS}?$skiptoken=2"}))
    out = ListOutput()
    with client_for(graph) as c:
        with pytest.raises(GraphError) as ei:
            collect_delta(run_for(catalogue, c, state, out))
    no_secret_reached(evil)
    assert not evil.requests
    assert "evil-1" not in emitted(out)
    assert isinstance(ei.value, foreign_link_error())
    assert "127.0.0.1" in str(ei.value)
    # Nothing about the foreign link was committed: the next run starts from Graph again.
    assert not (state.cursor("contoso", "directory.users") or {}).get("next_link")


# --- Medium 4: the client secret goes to the login origin only -------------------------------
def test_discovered_foreign_token_endpoint_is_refused(graph, evil):
    graph.route("GET", f"/{TID}/v2.0/.well-known/openid-configuration", Resp(json={
        "issuer": f"{graph.base}/{TID}/v2.0",
        "authorization_endpoint": f"{graph.base}/{TID}/oauth2/v2.0/authorize",
        "token_endpoint": f"https://localhost:{evil.port}/{TID}/oauth2/v2.0/token",
    }))
    tenant = tenant_for(graph)
    tp = TokenProvider(tenant, build_session(tenant), Metrics())
    with pytest.raises(AuthError) as ei:
        tp.token()
    no_secret_reached(evil)
    assert not evil.requests
    text = str(ei.value)
    assert f"localhost:{evil.port}" in text and f"127.0.0.1:{graph.port}" in text, text
    assert SECRET not in text


@pytest.mark.parametrize("status", [307, 308, 302])
def test_token_endpoint_redirect_is_not_followed(graph, evil, status):
    graph.route("POST", f"/{TID}/oauth2/v2.0/token",
                Resp(status, headers={"Location": f"{evil.base}/{TID}/oauth2/v2.0/token"}))
    tenant = tenant_for(graph)
    tp = TokenProvider(tenant, build_session(tenant), Metrics())
    with pytest.raises(AuthError) as ei:
        tp.token()
    no_secret_reached(evil)
    assert not evil.requests, "the token form was re-posted to the redirect target"
    assert len(graph.token_posts(TID)) == 1
    assert "redirect" in str(ei.value) and SECRET not in str(ei.value)


def test_secret_still_reaches_the_login_endpoint(graph):
    tenant = tenant_for(graph)
    assert TokenProvider(tenant, build_session(tenant)).token() == "tok-1"
    assert graph.token_posts(TID)[0].form["client_secret"] == SECRET


# --- Low: the report download host and response sizes ---------------------------------------
REPORT = "/v1.0/reports/getOffice365ActiveUserDetail(period='D7')"
CSV = b"Report Refresh Date,User Principal Name\n2026-11-25,a@contoso.test\n"


def report_pages(client: GraphClient, catalogue) -> list[dict]:
    from td_graph_plugin.sources.reports import office365_csv_pager

    spec = catalogue["reports.office365_active_users"]
    items: list[dict] = []
    for page in office365_csv_pager(client, spec, client.url("v1.0", spec.path), None):
        items.extend(page.items)
    return items


@pytest.mark.parametrize("where", ["foreign host", "same host, other port", "http scheme", "userinfo"])
def test_report_redirect_to_a_foreign_host_is_refused(catalogue, graph, evil, where):
    evil.route("GET", "/report.csv", Resp(body=CSV))
    location = {
        "foreign host": f"https://localhost:{evil.port}/report.csv?sig=S",
        "same host, other port": f"{evil.base}/report.csv?sig=S",
        "http scheme": f"http://reports.office.com/report.csv?sig=S",
        "userinfo": f"https://reports.office.com@localhost:{evil.port}/report.csv?sig=S",
    }[where]
    graph.route("GET", REPORT, Resp(302, headers={"Location": location}))
    with client_for(graph) as c:
        with pytest.raises(GraphResponseError) as ei:
            report_pages(c, catalogue)
    assert not evil.requests
    assert "sig=S" not in str(ei.value)
    assert "download" in str(ei.value)


def test_report_redirect_to_graph_endpoint_host_is_followed_without_token(catalogue, graph):
    graph.route("GET", REPORT, Resp(302, headers={"Location": f"{graph.base}/_download/r.csv?sig=S"}))
    graph.route("GET", "/_download/r.csv", Resp(body=CSV))
    with client_for(graph) as c:
        rows = report_pages(c, catalogue)
    assert [{k: v for k, v in r.items() if k != "td_graph_row_id"} for r in rows] == [
        {"Report Refresh Date": "2026-11-25", "User Principal Name": "a@contoso.test"}
    ]
    assert "authorization" not in graph.hits("GET", "/_download/r.csv")[0].headers


def test_report_download_hosts():
    from td_graph_plugin.sources.reports import download_problem

    g = "https://graph.microsoft.com"
    assert download_problem("https://reports.office.com/data/download/JDFKdf2_eJXKS034dbc7e0t__XDe", g) is None
    assert download_problem("https://REPORTS.office.com:443/data/download/x", g) is None
    assert download_problem("https://reports.office.com.evil.example/x", g) is not None
    assert download_problem("https://evil.example/x", g) is not None
    assert download_problem("http://reports.office.com/x", g) is not None
    assert download_problem("https://reports.office.com:8443/x", g) is not None
    assert download_problem("https://evil\\@reports.office.com/x", g) is not None


def _endless(chunk: int = 64 * 1024, total: int = 64 * 1024 * 1024):
    def gen():
        sent = 0
        block = b"x" * chunk
        while sent < total:
            yield block
            sent += chunk
    return gen


def test_oversized_json_page_fails_cleanly_while_streaming(graph, monkeypatch):
    from td_graph_plugin.graph import client as client_module

    monkeypatch.setattr(client_module, "MAX_JSON_PAGE_BYTES", 256 * 1024, raising=False)
    graph.route("GET", "/v1.0/big", Resp(headers={"Content-Type": "application/json"}, chunks=_endless()))
    with client_for(graph) as c:
        with pytest.raises(GraphResponseError) as ei:
            c.get_json(c.url("v1.0", "big"))
    assert "larger than" in str(ei.value)
    assert len(graph.hits("GET", "/v1.0/big")) == 1  # not retried: it would be as large again
    assert graph.streamed < 16 * 1024 * 1024, "the body was read far past the limit"


def test_oversized_content_length_fails_before_reading(graph, monkeypatch):
    from td_graph_plugin.graph import client as client_module

    monkeypatch.setattr(client_module, "MAX_JSON_PAGE_BYTES", 1024, raising=False)
    graph.route("GET", "/v1.0/big", Resp(json={"value": ["x" * 4096]}))
    with client_for(graph) as c:
        with pytest.raises(GraphResponseError):
            c.get_json(c.url("v1.0", "big"))
        graph.route("GET", "/v1.0/small", Resp(json={"value": [1]}))
        assert c.get_json(c.url("v1.0", "small")) == {"value": [1]}


def test_oversized_report_csv_fails_cleanly(catalogue, graph, monkeypatch):
    from td_graph_plugin.sources import reports

    monkeypatch.setattr(reports, "MAX_REPORT_CSV_BYTES", 256 * 1024, raising=False)
    graph.route("GET", REPORT, Resp(302, headers={"Location": f"{graph.base}/_download/big.csv"}))
    graph.route("GET", "/_download/big.csv", Resp(chunks=_endless()))
    with client_for(graph) as c:
        with pytest.raises(GraphResponseError) as ei:
            report_pages(c, catalogue)
    assert "larger than" in str(ei.value)
    assert graph.streamed < 16 * 1024 * 1024


def test_size_limits_are_sane():
    from td_graph_plugin.graph.client import MAX_JSON_PAGE_BYTES
    from td_graph_plugin.sources.reports import MAX_REPORT_CSV_BYTES

    assert MAX_JSON_PAGE_BYTES == 64 * 1024 * 1024
    assert MAX_REPORT_CSV_BYTES == 512 * 1024 * 1024


# --- Low: the trust store leaves no file behind ---------------------------------------------
def test_extra_ca_trust_is_in_memory_and_survives_sigkill(graph, tmp_path):
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    script = textwrap.dedent(f"""
        import dataclasses, sys, time
        from td_graph_plugin.config.model import Secret, TenantConfig
        from td_graph_plugin.graph import GraphClient
        from td_graph_plugin.graph.http import build_session
        from td_graph_plugin.config.model import HttpConfig
        t = TenantConfig(name="a", tenant_id={TID!r}, client_id={CID!r}, client_secret=Secret("x"),
                         login_endpoint={graph.base!r}, graph_endpoint={graph.base!r}, ca_bundle={graph.ca_path!r})
        s = build_session(t)
        assert s.get({graph.base!r} + "/nothing", timeout=5).status_code == 404  # the extra CA is trusted
        GraphClient(t, HttpConfig()).tokens.token()  # MSAL through the same trust
        build_session(dataclasses.replace(t, name="b"))
        print("ready", flush=True)
        time.sleep(60)
    """)
    env = dict(os.environ, TMPDIR=str(tmp), TEMP=str(tmp), TMP=str(tmp))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == b"ready", proc.stderr.read().decode() if proc.poll() is not None else line  # type: ignore[union-attr]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert sorted(os.listdir(tmp)) == [], "building a session left files in the temp folder"


def test_extra_ca_is_trusted_and_certifi_kept(graph, tmp_path):
    import certifi
    import requests

    s = build_session(tenant_for(graph))
    assert s.get(graph.base + "/nothing", timeout=5).status_code == 404
    ctx = s.get_adapter("https://x")._ssl_context
    subjects = [c.get("subject") for c in ctx.get_ca_certs()]
    assert len(subjects) > 100  # certifi's roots are still there
    plain = build_session(tenant_for(graph, ca_bundle=None))
    with pytest.raises(requests.exceptions.SSLError):
        plain.get(graph.base + "/nothing", timeout=5)
    assert certifi.where()  # unchanged package


def test_token_goes_with_a_upn_path_built_from_the_endpoint(graph):
    """``/users/{upn}`` (isolation) holds '@' after the endpoint's own "https://host:port/":
    both parsers connect to Graph, so the token goes with it; the same '@' in a *link* does not."""
    graph.route("GET", "/v1.0/users/alice@contoso.test", Resp(json={"id": "1"}))
    with client_for(graph) as c:
        assert c.get_json(c.url("v1.0", "/users/alice@contoso.test")) == {"id": "1"}
    assert graph.hits("GET", "/v1.0/users/alice@contoso.test")[0].headers["authorization"] == "Bearer tok-1"


def test_no_ca_file_is_parsed_per_connection(graph, monkeypatch):
    """urllib3 gets the preloaded context and no CA path: a new connection parses nothing."""
    import urllib3.connection as uc

    seen: list[tuple] = []
    real = uc.ssl_wrap_socket

    def spy(*a, **k):
        seen.append((k.get("ca_certs"), k.get("ca_cert_dir"), k.get("ca_cert_data")))
        return real(*a, **k)

    monkeypatch.setattr(uc, "ssl_wrap_socket", spy)
    graph.route("GET", "/x", Resp(json={}))
    # Two sessions, one request each: two new TLS connections, with no keep-alive connection
    # for the client to reuse just as the server closes it (a race, not what is tested here).
    for _ in range(2):
        with build_session(tenant_for(graph)) as s:
            assert s.get(graph.base + "/x", timeout=5).status_code == 200
    assert len(seen) == 2 and all(x == (None, None, None) for x in seen), seen
