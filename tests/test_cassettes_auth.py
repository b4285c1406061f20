"""The real TokenProvider (MSAL client credentials, cloud: global) against ``cassettes/auth/``."""

from __future__ import annotations

import copy
from urllib.parse import parse_qs

import pytest

from td_graph_plugin.errors import AuthError
from td_graph_plugin.metrics import Metrics
from tests.vcr_support import CLIENT_ID, CLIENT_SECRET, TENANT_ID, make_client, replay


def test_client_credentials_token_is_acquired_once_and_cached():
    metrics = Metrics()
    with replay("auth/client_credentials.yaml") as rep:
        client = make_client(metrics=metrics)
        assert client.tokens.token() == "REDACTED"
        assert client.tokens.token() == "REDACTED"  # MSAL's cache: no second POST
        client.close()
    assert [(p.request.method, p.path) for p in rep.played] == [
        ("GET", f"/{TENANT_ID}/v2.0/.well-known/openid-configuration"),
        ("POST", f"/{TENANT_ID}/oauth2/v2.0/token"),
    ]
    assert rep.unplayed() == []
    (post,) = rep.token_posts
    sent = parse_qs(post.request.body.decode())
    assert sent == {
        "client_id": [CLIENT_ID],
        "grant_type": ["client_credentials"],
        "client_info": ["1"],
        "client_secret": [CLIENT_SECRET],
        "scope": ["https://graph.microsoft.com/.default"],
    }
    assert post.header("Content-Type") == "application/x-www-form-urlencoded"
    # What vcrpy would write for this request: the same body without the secret.
    scrubbed = rep.cassette.filter_request(copy.deepcopy(post.request))
    assert "client_secret" not in parse_qs(scrubbed.body.decode())
    assert parse_qs(post.recorded.body.decode()) == {k: v for k, v in sent.items() if k != "client_secret"}
    exposition = metrics.exposition().decode()
    assert 'td_graph_token_requests_total{result="issued",tenant="contoso"} 1.0' in exposition
    assert 'td_graph_token_requests_total{result="cache",tenant="contoso"} 1.0' in exposition


def test_documented_token_error_becomes_an_actionable_auth_error():
    with replay("auth/invalid_scope.yaml") as rep:
        client = make_client()
        with pytest.raises(AuthError) as info:
            client.tokens.token()
        client.close()
    message = str(info.value)
    assert "AADSTS70011" in message and "check the cloud setting" in message
    assert "https://graph.microsoft.com/.default" in message
    assert CLIENT_SECRET not in message and "Trace ID" not in message
    assert len(rep.token_posts) == 1
    # MSAL then asked the instance discovery endpoint about the authority; nothing else.
    assert [p.path for p in rep.played][-1] == "/common/discovery/instance"
    assert rep.unplayed() == []


@pytest.mark.parametrize("cassette", ["auth/client_credentials.yaml", "auth/invalid_scope.yaml"])
def test_login_requests_are_exactly_what_msal_sends(cassette):
    with replay(cassette) as rep:
        client = make_client()
        try:
            client.tokens.token()
        except AuthError:
            pass
        client.close()
    assert rep.played
    for p in rep.played:
        assert p.uri == p.recorded.uri
        assert {k.lower() for k in p.request.headers} == {k.lower() for k in p.recorded.headers}
        for name in ("User-Agent", "Accept", "Content-Type", "x-client-sku", "x-client-ver"):
            assert p.header(name) == next((v for k, v in p.recorded.headers.items() if k.lower() == name.lower()), None)
