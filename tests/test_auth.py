"""TokenProvider against a fake identity provider over real TLS (tests/tls_fake.py)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import time

import orjson
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from td_graph_plugin.config.model import CertificateConfig, Secret, TenantConfig
from td_graph_plugin.errors import AuthError, ConfigError
from td_graph_plugin.graph.auth import TokenProvider
from td_graph_plugin.graph.http import build_session
from td_graph_plugin.metrics import Metrics

try:  # tests/ is on sys.path when it is not a package (pytest rootdir insertion)
    from tls_fake import FakeServer, Resp, aad_error
except ImportError:  # pragma: no cover - tests/ became a package
    from tests.tls_fake import FakeServer, Resp, aad_error

TID = "00000000-0000-0000-0000-0000000000aa"
CID = "11111111-1111-1111-1111-1111111111bb"
SECRET = "s3cr3t-Value~ZZ9_plural-z-alpha"


@pytest.fixture
def srv(tmp_path):
    with FakeServer(tmp_dir=str(tmp_path)) as s:
        yield s


def make_tenant(srv: FakeServer, **kw) -> TenantConfig:
    base = dict(
        name="contoso",
        tenant_id=TID,
        client_id=CID,
        client_secret=Secret(SECRET),
        login_endpoint=srv.base + "/",
        graph_endpoint=srv.base,
        ca_bundle=srv.ca_path,
    )
    base.update(kw)
    return TenantConfig(**base)


def provider(srv, metrics=None, **kw) -> TokenProvider:
    tenant = make_tenant(srv, **kw)
    return TokenProvider(tenant, build_session(tenant), metrics)


def token_count(metrics: Metrics, result: str) -> float:
    return metrics.registry.get_sample_value(
        "td_graph_token_requests_total", {"tenant": "contoso", "result": result}
    ) or 0.0


def test_secret_token_via_msal_and_fake_oidc(srv):
    srv.add_oidc(TID)
    m = Metrics()
    tp = provider(srv, m)
    assert tp.token() == "tok-1"
    # MSAL discovered the tenant, then posted client credentials to the named endpoint.
    assert srv.hits("GET", f"/{TID}/v2.0/.well-known/openid-configuration")
    (post,) = srv.token_posts(TID)
    form = post.form
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == CID
    assert form["client_secret"] == SECRET
    # The scope is the cloud's Graph resource even though graph_endpoint points elsewhere.
    assert form["scope"] == "https://graph.microsoft.com/.default"
    assert post.headers["user-agent"].startswith("td-graph/")
    assert token_count(m, "issued") == 1


def test_token_is_cached(srv):
    srv.add_oidc(TID)
    m = Metrics()
    tp = provider(srv, m)
    tokens = {tp.token() for _ in range(10)}
    assert tokens == {"tok-1"}
    assert len(srv.token_posts(TID)) == 1
    assert token_count(m, "issued") == 1
    assert token_count(m, "cache") == 9


def test_token_renewed_when_close_to_expiry(srv):
    # MSAL treats a token within 5 minutes of expiry as expired and asks again.
    srv.add_oidc(TID, expires_in=60)
    tp = provider(srv)
    assert [tp.token() for _ in range(3)] == ["tok-1", "tok-2", "tok-3"]
    assert len(srv.token_posts(TID)) == 3


def test_token_renewed_after_expiry(srv, monkeypatch):
    srv.add_oidc(TID, expires_in=3600)
    tp = provider(srv)
    assert tp.token() == "tok-1"
    assert tp.token() == "tok-1"
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3700)
    assert tp.token() == "tok-2"
    assert len(srv.token_posts(TID)) == 2


def test_invalidate_forces_a_new_token(srv):
    srv.add_oidc(TID)
    m = Metrics()
    tp = provider(srv, m)
    assert tp.token() == "tok-1"
    tp.invalidate()
    assert tp.token() == "tok-2"
    assert tp.token() == "tok-2"
    assert len(srv.token_posts(TID)) == 2
    assert token_count(m, "issued") == 2


def _self_signed(tmp_path, passphrase: bytes | None = None):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "td-graph test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    enc = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    path = tmp_path / "app.pem"
    path.write_bytes(key_pem + cert.public_bytes(serialization.Encoding.PEM))
    thumb = cert.fingerprint(hashes.SHA1()).hex().upper()
    return str(path), thumb, cert, key_pem


def _b64d(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.mark.parametrize("passphrase", [None, b"pass-Phrase-42"])
def test_certificate_credential(srv, tmp_path, passphrase):
    srv.add_oidc(TID)
    path, thumb, cert, key_pem = _self_signed(tmp_path, passphrase)
    certcfg = CertificateConfig(
        path=path,
        thumbprint=":".join(thumb[i : i + 2] for i in range(0, 40, 2)).lower(),  # tolerant format
        passphrase=Secret(passphrase.decode()) if passphrase else None,
    )
    tp = provider(srv, client_secret=None, certificate=certcfg)
    assert tp.token() == "tok-1"
    (post,) = srv.token_posts(TID)
    form = post.form
    assert "client_secret" not in form
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    head, claims, _sig = form["client_assertion"].split(".")
    header = orjson.loads(_b64d(head))
    assert header["alg"] == "RS256"
    assert _b64d(header["x5t"]) == hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).digest()
    body = orjson.loads(_b64d(claims))
    assert body["iss"] == CID and body["sub"] == CID
    assert body["aud"] == f"{srv.base}/{TID}/oauth2/v2.0/token"
    # No private key material anywhere in the request.
    assert b"PRIVATE KEY" not in post.body


def test_certificate_unreadable_is_config_error(srv, tmp_path):
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigError) as ei:
        provider(srv, client_secret=None, certificate=CertificateConfig(missing, "AB" * 20))
    assert missing in str(ei.value)


def test_certificate_thumbprint_mismatch_is_config_error(srv, tmp_path):
    path, thumb, _cert, _ = _self_signed(tmp_path)
    with pytest.raises(ConfigError) as ei:
        provider(srv, client_secret=None, certificate=CertificateConfig(path, "00" * 20))
    assert thumb in str(ei.value) and "does not match" in str(ei.value)


def test_encrypted_key_without_passphrase_is_config_error(srv, tmp_path):
    path, thumb, _cert, _ = _self_signed(tmp_path, b"pw-123456")
    with pytest.raises(ConfigError) as ei:
        provider(srv, client_secret=None, certificate=CertificateConfig(path, thumb))
    assert "passphrase" in str(ei.value)
    assert "pw-123456" not in str(ei.value)


@pytest.mark.parametrize(
    "code,error,words",
    [
        (7000215, "invalid_client", "secret is wrong"),
        (7000222, "invalid_client", "expired"),
        (700016, "unauthorized_client", f"application {CID} was not found in tenant {TID}"),
        (90002, "invalid_request", f"tenant {TID} was not found"),
        (700027, "invalid_client", "certificate"),
        (70011, "invalid_scope", "https://graph.microsoft.com/.default"),
    ],
)
def test_aadsts_mapping(srv, code, error, words):
    srv.add_oidc(TID, token=[aad_error(code, error, 400 if error != "invalid_client" else 401)])
    m = Metrics()
    tp = provider(srv, m)
    with pytest.raises(AuthError) as ei:
        tp.token()
    text = str(ei.value)
    assert f"AADSTS{code}" in text
    assert words in text
    assert "contoso" in text
    assert SECRET not in text
    assert token_count(m, "failed") == 1


def test_unknown_tenant_at_discovery(srv):
    # Entra answers the OpenID discovery of an unknown tenant with 400 + AADSTS90002.
    srv.route(
        "GET",
        f"/{TID}/v2.0/.well-known/openid-configuration",
        Resp(400, json={"error": "invalid_tenant",
                        "error_description": f"AADSTS90002: Tenant '{TID}' not found."}),
    )
    tp = provider(srv)
    with pytest.raises(AuthError) as ei:
        tp.token()
    assert "AADSTS90002" in str(ei.value) and "check tenant_id and cloud" in str(ei.value)
    # A later attempt retries discovery instead of keeping a broken MSAL app.
    srv.add_oidc(TID)
    assert tp.token() == "tok-1"


def test_unknown_aadsts_code_keeps_first_line_only(srv):
    srv.add_oidc(TID, token=[aad_error(50020, "invalid_request", 400, "User account is from an external IdP.")])
    tp = provider(srv)
    with pytest.raises(AuthError) as ei:
        tp.token()
    text = str(ei.value)
    assert "invalid_request" in text and "AADSTS50020" in text
    assert "Trace ID" not in text


def test_identity_provider_5xx(srv):
    srv.add_oidc(TID, token=[Resp(503, body=b"<html>busy</html>")])
    with pytest.raises(AuthError) as ei:
        provider(srv).token()
    assert "HTTP 503" in str(ei.value)


def test_cannot_reach_login_host(srv, tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    tp = provider(srv, login_endpoint=f"https://127.0.0.1:{port}")
    with pytest.raises(AuthError) as ei:
        tp.token()
    assert f"cannot reach 127.0.0.1:{port}" in str(ei.value)


def test_tls_failure_names_the_cause(srv, tmp_path):
    # A login host whose CA is not trusted: verification fails, and says so.
    with FakeServer(tmp_dir=str(tmp_path)) as other:
        other.add_oidc(TID)
        tp = provider(srv, login_endpoint=other.base)
        with pytest.raises(AuthError) as ei:
            tp.token()
        assert "TLS verification failed" in str(ei.value)
        assert not other.requests  # the handshake failed before any request


def test_secret_never_in_error_or_logs(srv, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="msal")  # even with MSAL's debug logging on
    caplog.set_level(logging.DEBUG, logger="urllib3")
    calls = {"n": 0}

    def token(req):
        calls["n"] += 1
        if calls["n"] == 1:
            return Resp(json={"token_type": "Bearer", "expires_in": 3600, "access_token": "AT-sensitive-1"})
        # An IdP that echoes what it got: the secret must still not reach the message.
        return Resp(401, json={"error": "invalid_client",
                               "error_description": f"AADSTS1234567: bad secret {SECRET} for app",
                               "error_codes": [1234567]})

    srv.add_oidc(TID, token=token)
    tp = provider(srv)
    assert tp.token() == "AT-sensitive-1"
    tp.invalidate()
    with pytest.raises(AuthError) as ei:
        tp.token()
    assert SECRET not in str(ei.value)
    assert "***" in str(ei.value)
    assert caplog.records  # debug logging really was on
    assert any(r.name.startswith("msal") for r in caplog.records)
    assert SECRET not in caplog.text
    assert "AT-sensitive-1" not in caplog.text


def test_msal_logger_kept_at_warning_unless_configured(srv):
    lg = logging.getLogger("msal")
    old = lg.level
    lg.setLevel(logging.NOTSET)
    try:
        srv.add_oidc(TID)
        provider(srv)
        assert lg.level == logging.WARNING
        lg.setLevel(logging.DEBUG)
        provider(srv)
        assert lg.level == logging.DEBUG  # explicitly asked for: respected
    finally:
        lg.setLevel(old)


def test_no_credential_is_config_error(srv):
    with pytest.raises(ConfigError):
        provider(srv, client_secret=None)


def test_token_uses_tenant_session(srv):
    """MSAL goes through the tenant session, so ca_bundle applies to it too: a plain
    requests session (certifi only) would not trust the fake IdP."""
    srv.add_oidc(TID)
    tenant = make_tenant(srv)
    with pytest.raises(AuthError):
        TokenProvider(tenant, requests.Session()).token()
    assert TokenProvider(tenant, build_session(tenant)).token() == "tok-1"
