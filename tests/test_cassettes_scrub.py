"""No cassette holds a secret, and the vcrpy hooks that keep it that way work.

Every ``cassettes/**/*.yaml`` (all folders, whoever wrote them) is scanned for: the test client
secret, anything JWT-shaped, ``client_secret=``/``client_assertion=`` with a value, an
``access_token`` that is not ``REDACTED``, and ``Bearer`` followed by anything but
``REDACTED``.  The one exemption is the RFC 6750 challenge ``WWW-Authenticate: Bearer realm=...``
(a 401 response header: it names the authority, it is not a credential).
"""

from __future__ import annotations

import copy
import json
import re
from urllib.parse import parse_qs, quote_plus

import pytest
import yaml
from vcr.request import Request

from tests.vcr_support import CASSETTES, CLIENT_SECRET, LOGIN, TENANT_ID, graph_vcr, scrub_token_response

ALL = sorted(CASSETTES.rglob("*.yaml"))
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.")
SECRET_PARAM = re.compile(r"(client_secret|client_assertion)=(?!&|\s|$|')", re.IGNORECASE)
SECRET_JSON = re.compile(r'"(client_secret|client_assertion)"\s*:', re.IGNORECASE)
BEARER = re.compile(r"Bearer\s+(?!REDACTED\b)(?!realm=)\S")
ACCESS_TOKEN = re.compile(r'"access_token"\s*:\s*"(?!REDACTED")')


def test_there_are_cassettes_to_scan():
    names = {p.relative_to(CASSETTES).parts[0] for p in ALL}
    assert {"sources", "errors", "auth"} <= names


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(CASSETTES)))
def test_cassette_holds_no_secret(path):
    text = path.read_text(encoding="utf-8")
    assert CLIENT_SECRET not in text and quote_plus(CLIENT_SECRET) not in text
    assert not JWT.search(text), JWT.search(text)
    assert not SECRET_PARAM.search(text), SECRET_PARAM.search(text)
    assert not SECRET_JSON.search(text)
    assert not BEARER.search(text), BEARER.search(text)
    assert not ACCESS_TOKEN.search(text)
    data = yaml.safe_load(text)
    for interaction in data["interactions"]:
        request, response = interaction["request"], interaction["response"]
        for name, values in (request.get("headers") or {}).items():
            if name.lower() == "authorization":
                assert values == ["Bearer REDACTED"]
        if request["method"] == "POST" and request["uri"].endswith("/oauth2/v2.0/token"):
            body = parse_qs(request["body"] or "")
            assert "client_secret" not in body and "client_assertion" not in body
            assert body["grant_type"] == ["client_credentials"]
        raw = (response.get("body") or {}).get("string") or ""
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        if '"access_token"' in raw:
            assert json.loads(raw)["access_token"] == "REDACTED"


def test_record_mode_is_always_none():
    assert graph_vcr().record_mode == "none"
    with pytest.raises(ValueError):
        graph_vcr(record_mode="all")


def test_request_filters_drop_the_secret_and_the_token():
    before = graph_vcr()._build_before_record_request({})
    token_post = Request(
        "POST",
        f"{LOGIN}/{TENANT_ID}/oauth2/v2.0/token",
        f"client_id=x&grant_type=client_credentials&client_secret={quote_plus(CLIENT_SECRET)}"
        "&client_assertion=eyJhbGciOiJSUzI1NiJ9.e30.c2ln&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    out = before(copy.deepcopy(token_post))
    body = parse_qs(out.body.decode())
    assert set(body) == {"client_id", "grant_type", "scope"}
    graph_get = Request("GET", "https://graph.microsoft.com/v1.0/users/delta", None,
                        {"Authorization": "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.c2ln"})
    assert before(copy.deepcopy(graph_get)).headers["authorization"] == "Bearer REDACTED"
    download = Request("GET", "https://reports.office.com/data/download/x", None, {})
    assert "authorization" not in {k.lower() for k in before(copy.deepcopy(download)).headers}


def test_token_response_hook_redacts_tokens_and_leaves_other_bodies_alone():
    jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln"
    resp = {"status": {"code": 200}, "headers": {},
            "body": {"string": json.dumps({"token_type": "Bearer", "expires_in": 3599, "access_token": jwt}).encode()}}
    out = json.loads(scrub_token_response(resp)["body"]["string"])
    assert out == {"token_type": "Bearer", "expires_in": 3599, "access_token": "REDACTED"}
    # An OpenID configuration mentions id_token as a response type: it must come back untouched.
    text = '{\n  "response_types_supported": ["code", "id_token"]\n}\n'
    same = scrub_token_response({"body": {"string": text}})
    assert same["body"]["string"] == text
