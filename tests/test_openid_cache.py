"""Issue 16: a new process serves MSAL the tenant's stored OpenID configuration (24 h, MSAL's
own lifetime for a discovery GET), so its token costs one request (the POST), not two.

Expected request counts are written by hand from what the fake identity provider serves.
"""

from __future__ import annotations

import json
import time

import pytest

from td_graph_plugin.errors import AuthError, StateError
from td_graph_plugin.graph.auth import TokenProvider, _TimeoutHttp
from td_graph_plugin.graph.http import build_session
from td_graph_plugin.graph.oidc_cache import OPENID_TTL, CachedOpenId, TenantDocCache, openid_url
from td_graph_plugin.state import StateStore

try:  # tests/ is on sys.path when it is not a package (pytest rootdir insertion)
    from tls_fake import FakeServer, Resp
    from test_auth import SECRET, TID, make_tenant
except ImportError:  # pragma: no cover - tests/ became a package
    from tests.tls_fake import FakeServer, Resp
    from tests.test_auth import SECRET, TID, make_tenant

OIDC = f"/{TID}/v2.0/.well-known/openid-configuration"


class Cache:
    """A DocCache as a dict (the state's tenant_cache is checked by the contract suite)."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[float, str]] = {}
        self.fail = False

    def get(self, kind):
        if self.fail:
            raise StateError("state database x: disk I/O error")
        return self.rows.get(kind)

    def put(self, kind, at, payload):
        if self.fail:
            raise StateError("state database x: disk I/O error")
        self.rows[kind] = (at, payload)


@pytest.fixture
def srv(tmp_path):
    with FakeServer(tmp_dir=str(tmp_path)) as s:
        s.add_oidc(TID)
        yield s


def process(srv, cache, **kw) -> TokenProvider:
    """What a new td-graph process builds for the tenant: a new session, a new MSAL app."""
    tenant = make_tenant(srv, **kw)
    return TokenProvider(tenant, build_session(tenant), doc_cache=cache)


def gets(srv) -> int:
    return len(srv.hits("GET", OIDC))


def test_the_second_process_asks_only_for_the_token(srv):
    cache = Cache()
    assert process(srv, cache).token() == "tok-1"
    assert gets(srv) == 1 and len(srv.token_posts(TID)) == 1
    (at, payload), = cache.rows.values()
    doc = json.loads(payload)
    assert doc["url"] == srv.base + OIDC and json.loads(doc["text"])["token_endpoint"].endswith("/oauth2/v2.0/token")
    assert process(srv, cache).token() == "tok-2"
    assert gets(srv) == 1, "the stored configuration served MSAL"
    assert len(srv.token_posts(TID)) == 2


def test_an_old_or_future_copy_is_read_again_and_refreshed(srv):
    cache = Cache()
    process(srv, cache).token()
    at, payload = cache.rows["openid"]
    now = time.time()
    cache.rows["openid"] = (now - OPENID_TTL + 60, payload)  # a minute short of 24 h: served
    process(srv, cache).token()
    assert gets(srv) == 1
    cache.rows["openid"] = (now + 120, payload)  # two minutes ahead (clock skew): served
    process(srv, cache).token()
    assert gets(srv) == 1
    cache.rows["openid"] = (now - OPENID_TTL - 1, payload)  # older than 24 h: read again
    process(srv, cache).token()
    assert gets(srv) == 2
    assert cache.rows["openid"][0] >= now - 1, "refreshed with the new copy's time"
    assert json.loads(cache.rows["openid"][1])["url"] == srv.base + OIDC
    cache.rows["openid"] = (now + 3600, payload)  # stored by a clock an hour ahead
    process(srv, cache).token()
    assert gets(srv) == 3


def test_a_copy_for_another_url_or_a_corrupt_copy_is_not_served(srv):
    cache = Cache()
    process(srv, cache).token()
    at, payload = cache.rows["openid"]
    doc = json.loads(payload)
    cache.rows["openid"] = (at, json.dumps(dict(doc, url=doc["url"].replace(TID, "another-tenant"))))
    process(srv, cache).token()
    assert gets(srv) == 2
    cache.rows["openid"] = (at, json.dumps(dict(doc, url=doc["url"].replace("127.0.0.1", "localhost"))))
    process(srv, cache).token()
    assert gets(srv) == 3
    junks = ("not json", "[]", "{}", json.dumps(dict(doc, text="not json")), json.dumps(dict(doc, text="[]")),
             json.dumps(dict(doc, v=2)), json.dumps({k: v for k, v in doc.items() if k != "url"}),
             json.dumps({k: v for k, v in doc.items() if k != "text"}))
    for junk in junks:
        cache.rows["openid"] = (at, junk)
        process(srv, cache).token()
    assert gets(srv) == 3 + len(junks)
    assert json.loads(cache.rows["openid"][1]) == doc, "overwritten with a good copy"


def test_a_tenant_whose_login_endpoint_changed_reads_its_own_copy(srv, tmp_path):
    with FakeServer(ca=srv.ca, tmp_dir=str(tmp_path)) as other:  # the new login endpoint
        other.add_oidc(TID)
        cache = Cache()
        process(srv, cache).token()
        process(other, cache).token()
        assert gets(srv) == 1 and gets(other) == 1, "the copy from the old login endpoint was not served"
        assert json.loads(cache.rows["openid"][1])["url"] == other.base + OIDC
        process(other, cache).token()
        assert gets(other) == 1 and len(other.token_posts(TID)) == 2


@pytest.mark.parametrize("row", [("x", "y"), (None,), "ab", 42, (1.0, b"{}"), (float("nan"), "{}"), (10**400, "{}")])
def test_a_row_of_the_wrong_shape_is_not_served(srv, row):
    cache = Cache()
    cache.rows["openid"] = row
    assert process(srv, cache).token() == "tok-1"
    assert gets(srv) == 1 and json.loads(cache.rows["openid"][1])["url"] == srv.base + OIDC


def test_a_stored_token_endpoint_on_another_origin_is_refused(srv, tmp_path):
    with FakeServer(ca=srv.ca, tmp_dir=str(tmp_path)) as evil:  # trusted certificate, other origin
        evil.add_oidc(TID)
        cache = Cache()
        process(srv, cache).token()
        at, payload = cache.rows["openid"]
        doc = json.loads(payload)
        text = json.loads(doc["text"])
        text["token_endpoint"] = f"https://localhost:{evil.port}/{TID}/oauth2/v2.0/token"
        cache.rows["openid"] = (at, json.dumps(dict(doc, text=json.dumps(text))))
        posts = len(srv.token_posts(TID))
        with pytest.raises(AuthError, match="not on the login endpoint's origin") as cached:
            process(srv, cache).token()
        assert len(srv.token_posts(TID)) == posts and gets(srv) == 1, "served from the copy"
        # The same document read fresh from the identity provider: the same refusal.
        srv.route("GET", OIDC, Resp(json=text))
        with pytest.raises(AuthError) as fresh:
            process(srv, None).token()
        assert gets(srv) == 2
        assert str(cached.value) == str(fresh.value)
        assert f"localhost:{evil.port}" in str(cached.value) and SECRET not in str(cached.value)
        assert evil.requests == []


def test_a_failing_cache_never_fails_the_token(srv):
    cache = Cache()
    cache.fail = True
    assert process(srv, cache).token() == "tok-1"
    assert process(srv, cache).token() == "tok-2"
    assert gets(srv) == 2


def test_only_the_body_and_its_content_type_are_stored(srv):
    body = {
        "issuer": f"{srv.base}/{TID}/v2.0",
        "authorization_endpoint": f"{srv.base}/{TID}/oauth2/v2.0/authorize",
        "token_endpoint": f"{srv.base}/{TID}/oauth2/v2.0/token",
    }
    srv.route("GET", OIDC, Resp(json=body, headers={
        "Content-Type": "application/json; charset=utf-8",
        "Set-Cookie": "fpc=cookie-value; path=/; secure; HttpOnly",
        "x-ms-request-id": "req-id-value",
    }))
    cache = Cache()
    process(srv, cache).token()
    assert list(cache.rows) == ["openid"]
    doc = json.loads(cache.rows["openid"][1])
    assert set(doc) == {"v", "url", "text", "content_type"}
    assert doc["content_type"] == "application/json; charset=utf-8" and json.loads(doc["text"]) == body
    for leak in ("cookie-value", "req-id-value", "tok-1", SECRET):
        assert leak not in cache.rows["openid"][1]


class _Session:
    """A session that answers every GET with an OpenID configuration and counts them."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def get(self, url, params=None, headers=None, **kw):
        self.urls.append(url)
        return _Answer(json.dumps({"token_endpoint": "https://login.microsoftonline.com/t/oauth2/v2.0/token"}))


class _Answer:
    status_code = 200
    headers = {"Content-Type": "application/json"}

    def __init__(self, text: str) -> None:
        self.text = text


def test_only_the_tenants_own_configuration_url_is_served_or_stored():
    login = "https://login.microsoftonline.com"
    mine = f"{login}/{TID}/v2.0/.well-known/openid-configuration"
    cache, session = Cache(), _Session()
    http = _TimeoutHttp(session, 5, login, CachedOpenId(cache, login, mine))
    for url, params in [(f"{login}/another-tenant/v2.0/.well-known/openid-configuration", None),
                        (mine, {"x": "1"}), (mine + "?x=1", None), (f"{login}/common/discovery/instance", None)]:
        http.get(url, params=params)
        assert cache.rows == {}, url
    http.get(mine)
    assert json.loads(cache.rows["openid"][1])["url"] == mine
    served = http.get(mine)
    assert len(session.urls) == 5 and served.status_code == 200 and served.headers["Content-Type"] == "application/json"
    served.raise_for_status()
    assert json.loads(served.text)["token_endpoint"].endswith("/oauth2/v2.0/token")
    http.get(f"{login}/another-tenant/v2.0/.well-known/openid-configuration")
    assert len(session.urls) == 6, "another tenant's URL is never served from this tenant's copy"


@pytest.mark.parametrize("status", [404, 500])
def test_an_error_answer_is_not_stored(tmp_path, status):
    with FakeServer(tmp_dir=str(tmp_path)) as srv:
        srv.add_oidc(TID)
        srv.route("GET", OIDC, Resp(status, json={"error": "nope"}))
        cache = Cache()
        with pytest.raises(AuthError):
            process(srv, cache).token()
        assert cache.rows == {}


def test_only_the_openid_configuration_url_on_the_login_origin_applies():
    base = "https://login.microsoftonline.com/" + TID
    mine = base + "/v2.0/.well-known/openid-configuration"  # msal 1.39 authority.py, by hand
    assert openid_url(base) == mine
    c = CachedOpenId(Cache(), "https://login.microsoftonline.com", mine)
    assert c.applies(mine, None)
    assert not c.applies(mine, {"x": "1"})
    assert not c.applies("https://login.microsoftonline.com/other/v2.0/.well-known/openid-configuration", None)
    assert not c.applies("https://login.microsoftonline.com/common/discovery/instance", None)
    # Its own URL on another origin than the login endpoint's never applies either.
    foreign = "https://login.example.test/" + TID + "/v2.0/.well-known/openid-configuration"
    assert not CachedOpenId(Cache(), "https://login.microsoftonline.com", foreign).applies(foreign, None)


def test_the_state_store_keeps_it_for_the_next_process(srv, tmp_path):
    store = StateStore(str(tmp_path / "state.db"))
    process(srv, TenantDocCache(store, "contoso")).token()
    store.close()
    store = StateStore(str(tmp_path / "state.db"))
    try:
        process(srv, TenantDocCache(store, "contoso")).token()
        assert gets(srv) == 1
        assert store.cached("contoso", "openid")[1].startswith('{"v": 1')
        assert SECRET not in store.cached("contoso", "openid")[1]
    finally:
        store.close()
