"""Issue 16: a new process serves MSAL the tenant's stored OpenID configuration (24 h, MSAL's
own lifetime for a discovery GET), so its token costs one request (the POST), not two.

Expected request counts are written by hand from what the fake identity provider serves.
"""

from __future__ import annotations

import json

import pytest

from td_graph_plugin.errors import AuthError, StateError
from td_graph_plugin.graph.auth import TokenProvider
from td_graph_plugin.graph.http import build_session
from td_graph_plugin.graph.oidc_cache import OPENID_TTL, CachedOpenId, TenantDocCache
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
    cache.rows["openid"] = (at - OPENID_TTL - 1, payload)
    process(srv, cache).token()
    assert gets(srv) == 2 and cache.rows["openid"][0] > at - 60
    cache.rows["openid"] = (at + 3600, payload)  # stored by a clock an hour ahead
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
    for junk in ("not json", "[]", json.dumps(dict(doc, text="not json")), json.dumps(dict(doc, v=2))):
        cache.rows["openid"] = (at, junk)
        process(srv, cache).token()
    assert gets(srv) == 6
    assert json.loads(cache.rows["openid"][1])["v"] == 1, "overwritten with a good copy"


def test_a_stored_token_endpoint_on_another_origin_is_refused(srv, tmp_path):
    cache = Cache()
    process(srv, cache).token()
    at, payload = cache.rows["openid"]
    doc = json.loads(payload)
    text = json.loads(doc["text"])
    text["token_endpoint"] = "https://attacker.example.test/steal/oauth2/v2.0/token"
    cache.rows["openid"] = (at, json.dumps(dict(doc, text=json.dumps(text))))
    posts = len(srv.token_posts(TID))
    with pytest.raises(AuthError, match="not on the login endpoint's origin"):
        process(srv, cache).token()
    assert len(srv.token_posts(TID)) == posts and gets(srv) == 1


def test_a_failing_cache_never_fails_the_token(srv):
    cache = Cache()
    cache.fail = True
    assert process(srv, cache).token() == "tok-1"
    assert process(srv, cache).token() == "tok-2"
    assert gets(srv) == 2


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
    c = CachedOpenId(Cache(), "https://login.microsoftonline.com")
    base = "https://login.microsoftonline.com/" + TID
    assert c.applies(base + "/v2.0/.well-known/openid-configuration", None)
    assert not c.applies(base + "/v2.0/.well-known/openid-configuration", {"x": "1"})
    assert not c.applies("https://login.example.test/" + TID + "/v2.0/.well-known/openid-configuration", None)
    assert not c.applies("https://login.microsoftonline.com/common/discovery/instance", None)


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
