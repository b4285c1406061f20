"""Scrubbed exchanges as vcrpy cassettes (format version 1, the YAML the suite replays).

A cassette holds only what replaying needs: method and URI, the request headers that shape a
Graph answer (``Prefer``, ``ConsistencyLevel`` ...), the status, the response headers that
matter (``rules.RESPONSE_HEADERS``) and the scrubbed body.  Authorization headers are never
written; the token request keeps no credential (only ``grant_type``, the replaced client id and
the scope) and every token response is replaced by a fixed fake, whatever Microsoft answered.
"""

from __future__ import annotations

import json
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

import yaml

from . import rules as R
from .recorder import Exchange
from .scrub import Scrubber

__all__ = ["FAKE_TOKEN", "is_token_request", "is_openid_request", "interaction", "dump_cassette", "learn"]

# "REDACTED", as every cassette of the repository writes it (tests/test_cassettes_scrub.py).
FAKE_TOKEN = "REDACTED"
_FAKE_TOKEN_BODY = {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": FAKE_TOKEN}


def is_token_request(ex: Exchange) -> bool:
    return ex.method == "POST" and urlsplit(ex.url).path.rstrip("/").endswith(("/oauth2/v2.0/token", "/oauth2/token"))


def is_openid_request(ex: Exchange) -> bool:
    return ex.method == "GET" and "/.well-known/openid-configuration" in urlsplit(ex.url).path


def _content_type(ex: Exchange) -> str:
    return next((v for k, v in ex.response_headers if k.lower() == "content-type"), "").lower()


def learn(scrubber: Scrubber, exchanges: Iterable[Exchange]) -> None:
    """The learning pass: see every name once, so that each is replaced everywhere after."""
    scrubber.learning = True
    for ex in exchanges:
        if not is_token_request(ex):
            _body(scrubber, ex, "-")
    scrubber.freeze_known()


def _body(scrubber: Scrubber, ex: Exchange, path: str) -> str | None:
    if not ex.body:
        return ""
    text = ex.body.decode("utf-8", "replace")
    ctype = _content_type(ex)
    if "json" in ctype or text.lstrip()[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return json.dumps(scrubber.json(data, path), ensure_ascii=False, indent=1)
    if "csv" in ctype or "octet-stream" in ctype or (ex.method == "GET" and text.count(",") > 2 and "\n" in text):
        return scrubber.csv(text, path)
    return None  # HTML error pages and the like: not kept


def _token_body(ex: Exchange) -> str:
    """A fixed fake token, or the error code alone (never Microsoft's own answer)."""
    if 200 <= ex.status < 300:
        return json.dumps(_FAKE_TOKEN_BODY)
    try:
        code = str(json.loads(ex.body.decode("utf-8", "replace")).get("error", ""))
    except (ValueError, AttributeError):
        code = ""
    return json.dumps({"error": code if code.replace("_", "").isalnum() else "", "error_description": "[removed by td-graph capture]"})


def _token_form(scrubber: Scrubber, ex: Exchange) -> str:
    """The token request with only grant type, (replaced) client id and scope: no secret."""
    pairs = parse_qsl((ex.request_body or b"").decode("utf-8", "replace"), keep_blank_values=True)
    keep = []
    for name, value in pairs:
        if name == "client_id":
            keep.append((name, scrubber.patterns(value, "request.body:client_id")))
        elif name in ("grant_type", "scope"):
            keep.append((name, value))
    return urlencode(keep)


def interaction(scrubber: Scrubber, ex: Exchange, removed: dict[str, int]) -> dict[str, Any]:
    """One vcrpy interaction of ``ex``, scrubbed; ``removed`` counts what was dropped whole."""
    token = is_token_request(ex)
    req_headers: dict[str, list[str]] = {}
    for name, value in ex.request_headers.items():
        if name.lower() in R.REQUEST_HEADERS:
            req_headers[name] = [scrubber.patterns(value, f"request.headers.{name}")]
        elif name.lower() == "authorization":
            removed["request.headers.Authorization"] = removed.get("request.headers.Authorization", 0) + 1
    if token:
        removed["request.body (token request: credential)"] = removed.get("request.body (token request: credential)", 0) + 1
        removed["response.body (token response)"] = removed.get("response.body (token response)", 0) + 1
    resp_headers: dict[str, list[str]] = {}
    for name, value in ex.response_headers:
        low = name.lower()
        if low not in R.RESPONSE_HEADERS:
            continue
        where = f"response.headers.{name}"
        kept = scrubber.url(value, where) if low == "location" else scrubber.patterns(value, where)
        resp_headers.setdefault(name, []).append(kept)
    if token:
        body: str | None = _token_body(ex)
    else:
        body = _body(scrubber, ex, "response.body")
        if body is None:
            removed["response.body (not JSON or CSV)"] = removed.get("response.body (not JSON or CSV)", 0) + 1
            body = ""
    return {
        "request": {
            "body": _token_form(scrubber, ex) if token else None,
            "headers": req_headers,
            "method": ex.method,
            "uri": scrubber.url(ex.url, "request.uri"),
        },
        "response": {
            "body": {"string": body},
            "headers": resp_headers,
            "status": {"code": ex.status, "message": ex.reason},
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (JSON bodies) as literal blocks, for cassettes a person can read."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and "\r" not in value and not value.endswith((" ", "\t")) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_cassette(interactions: list[dict[str, Any]], header: str) -> str:
    """The cassette file: ``header`` as YAML comments, then vcrpy's format version 1."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    doc = {"interactions": interactions, "version": 1}
    return comment + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)
