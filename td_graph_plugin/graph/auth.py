"""Client-credentials tokens through MSAL, for any national cloud.

MSAL caches the token and renews it before expiry; ``invalidate`` drops it after a 401.
Every failure becomes an ``AuthError`` whose message says what to fix, and never holds
the client secret, the private key, the passphrase, a client assertion or a token.

The credential only goes to the login endpoint's origin (issue 13): a token endpoint that the
OpenID discovery document places on another origin is refused before anything is posted, every
POST MSAL makes is checked against that origin again, and a POST never follows a redirect (a
307/308 would re-post the form, secret included, wherever ``Location`` points).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
import sys
import threading
from typing import Any

import msal
from msal.exceptions import MsalServiceError
import requests

from ..config.model import TenantConfig
from ..errors import AuthError, ConfigError
from ..metrics import Metrics
from .classify import scrub
from .clouds import Endpoints, display_host, link_problem, resolve_endpoints
from .oidc_cache import CachedOpenId, DocCache, openid_url

__all__ = ["TokenProvider", "AADSTS_HINTS", "quiet_third_party_loggers"]

log = logging.getLogger("td_graph_plugin.graph.auth")

# AADSTS code -> what the operator should do about it.
AADSTS_HINTS: dict[int, str] = {
    7000215: (
        "the client secret is wrong: use the secret's Value (not its Secret ID) from "
        "the app registration's 'Certificates & secrets'"
    ),
    7000222: (
        "the client secret has expired: create a new one under the app registration's "
        "'Certificates & secrets' and update the configuration"
    ),
    700016: (
        "application {client_id} was not found in tenant {tenant_id}: check client_id and "
        "tenant_id (and cloud), and that the app is consented in this tenant"
    ),
    90002: "tenant {tenant_id} was not found in the {cloud} cloud: check tenant_id and cloud",
    700027: (
        "the certificate credential was rejected: upload this certificate to the app "
        "registration, check the thumbprint and that the certificate has not expired"
    ),
    70011: "the scope {scope} is not valid for this application: check the cloud setting",
}

_AADSTS = re.compile(r"AADSTS(\d+)")
_THUMB = re.compile(r"^[0-9A-F]{40}$")


def quiet_third_party_loggers() -> None:
    """Keep MSAL's and urllib3's loggers at WARNING unless someone set them explicitly:
    their DEBUG output carries full URLs (pre-authenticated report links) and request
    details that have no place in a SIEM collector's log."""
    for name in ("msal", "urllib3"):
        lg = logging.getLogger(name)
        if lg.level == logging.NOTSET:
            lg.setLevel(logging.WARNING)


class _Refused(Exception):
    """A POST the http client would not send or whose redirect it would not follow."""


class _TimeoutHttp:
    """The tenant session as MSAL's http_client, with timeouts on every call (MSAL does not
    apply its own ``timeout`` when given an http_client).  POSTs (they carry the credential)
    go only to ``login_base``'s origin and never follow a redirect."""

    def __init__(self, session: requests.Session, timeout: Any, login_base: str,
                 openid: CachedOpenId | None = None) -> None:
        self._session = session
        self._timeout = timeout
        self._login_base = login_base
        self._openid = openid  # the tenant's OpenID configuration kept across processes

    def post(self, url, params=None, data=None, headers=None, **kwargs):
        kwargs.setdefault("timeout", self._timeout)
        kwargs["allow_redirects"] = False  # a 307/308 would re-post the form elsewhere
        problem = link_problem(url, self._login_base, "the login endpoint")
        if problem:
            raise _Refused(f"refusing to send the credential to {display_host(url)}: {problem}")
        resp = self._session.post(url, params=params, data=data, headers=headers, **kwargs)
        if 300 <= resp.status_code < 400:
            target = resp.headers.get("Location")
            resp.close()
            raise _Refused(
                f"the token endpoint on {display_host(url)} answered HTTP {resp.status_code} with a "
                f"redirect{' to ' + display_host(target) if target else ''}; td-graph does not "
                "follow redirects on the token request (the form holds the credential): "
                "point login_endpoint at the identity provider itself"
            )
        return resp

    def get(self, url, params=None, headers=None, **kwargs):
        kwargs.setdefault("timeout", self._timeout)
        if self._openid is not None and self._openid.applies(url, params):
            return self._openid.get(url, lambda: self._session.get(url, params=params, headers=headers, **kwargs))
        return self._session.get(url, params=params, headers=headers, **kwargs)

    def close(self) -> None:  # the session belongs to the GraphClient
        pass


@functools.lru_cache(maxsize=1)
def _note_absent_msal_extensions() -> None:
    """msal's ClientApplication.__init__ imports the optional ``msal_extensions`` (unused here)
    for a version warning.  Absent, every failed import scans sys.path again: ~10 stat calls per
    tenant's app, each releasing the GIL.  Record the absence once, as the import system's own
    negative entry (``sys.modules[name] = None``: the import raises ModuleNotFoundError at once)."""
    if "msal_extensions" not in sys.modules and importlib.util.find_spec("msal_extensions") is None:
        sys.modules["msal_extensions"] = None  # type: ignore[assignment]


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.netloc or url


def _short_exc(e: BaseException) -> str:
    """A short, secret-free description of a transport error."""
    if isinstance(e, requests.exceptions.SSLError):
        return (
            "TLS verification failed (if a TLS-inspecting proxy is in the path, add its CA "
            "with ca_bundle)"
        )
    if isinstance(e, requests.exceptions.ProxyError):
        return "the proxy refused or failed the connection"
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(e, requests.exceptions.Timeout):
        return "timed out waiting for the response"
    if isinstance(e, requests.exceptions.ConnectionError):
        text = str(e)
        for marker in ("Name or service not known", "nodename nor servname", "Temporary failure in name resolution",
                       "getaddrinfo failed"):
            if marker in text:
                return "the host name does not resolve"
        if "Connection refused" in text:
            return "connection refused"
        if "reset" in text.lower() or "RemoteDisconnected" in text or "aborted" in text.lower():
            return "the connection was closed by the remote end"
        return "connection failed"
    return type(e).__name__


class TokenProvider:
    """App-only tokens for one tenant.  Thread-safe; one per tenant."""

    def __init__(
        self,
        tenant: TenantConfig,
        session: requests.Session,
        metrics: Metrics | None = None,
        *,
        endpoints: Endpoints | None = None,
        timeout: Any = (10.0, 60.0),
        doc_cache: DocCache | None = None,
    ) -> None:
        self.tenant = tenant
        self._doc_cache = doc_cache  # where the OpenID configuration is kept (oidc_cache)
        self.endpoints = endpoints or resolve_endpoints(tenant)
        self._session = session
        self._metrics = metrics
        self._timeout = timeout
        self._lock = threading.RLock()
        self._cache = msal.TokenCache()
        self._app: msal.ConfidentialClientApplication | None = None
        self._last: str | None = None
        self._secrets: list[str] = []
        self._credential = self._load_credential()
        quiet_third_party_loggers()

    # --- credential -----------------------------------------------------------------
    def _load_credential(self) -> Any:
        t = self.tenant
        if t.certificate is not None:
            return self._load_certificate()
        if t.client_secret is not None:
            value = t.client_secret.reveal()
            if not value:
                raise ConfigError(f"tenant {t.name!r}: client_secret is empty", key="client_secret")
            self._secrets.append(value)
            return value
        raise ConfigError(
            f"tenant {t.name!r}: neither client_secret nor certificate is configured",
            key="client_secret",
        )

    def _load_certificate(self) -> dict:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization

        t = self.tenant
        cert = t.certificate
        assert cert is not None
        path = cert.path
        try:
            with open(path, "rb") as f:
                pem = f.read()
        except OSError as e:
            raise ConfigError(
                f"tenant {t.name!r}: certificate file {path!r} cannot be read: {e.strerror or e}",
                key="certificate.path",
            ) from None
        passphrase = cert.passphrase.reveal() if cert.passphrase is not None else None
        if passphrase:
            self._secrets.append(passphrase)
        try:
            serialization.load_pem_private_key(
                pem, password=passphrase.encode() if passphrase else None
            )
        except TypeError:
            raise ConfigError(
                f"tenant {t.name!r}: the private key in {path!r} is encrypted: set certificate.passphrase"
                if not passphrase
                else f"tenant {t.name!r}: the private key in {path!r} is not encrypted: remove certificate.passphrase",
                key="certificate.passphrase",
            ) from None
        except ValueError:
            raise ConfigError(
                f"tenant {t.name!r}: {path!r} holds no usable PEM private key "
                "(or the passphrase is wrong)",
                key="certificate.path",
            ) from None
        except Exception:
            raise ConfigError(
                f"tenant {t.name!r}: {path!r} holds no usable PEM private key",
                key="certificate.path",
            ) from None
        thumb = re.sub(r"[\s:]", "", cert.thumbprint or "").upper()
        if not _THUMB.match(thumb):
            raise ConfigError(
                f"tenant {t.name!r}: certificate.thumbprint must be the certificate's SHA-1 "
                "thumbprint (40 hex digits)",
                key="certificate.thumbprint",
            )
        certs = []
        try:
            certs = x509.load_pem_x509_certificates(pem)
        except ValueError:
            certs = []
        if certs:
            prints = [c.fingerprint(hashes.SHA1()).hex().upper() for c in certs]  # noqa: S303
            if thumb not in prints:
                raise ConfigError(
                    f"tenant {t.name!r}: certificate.thumbprint {thumb} does not match the "
                    f"certificate in {path!r} (its SHA-1 thumbprint is {prints[0]})",
                    key="certificate.thumbprint",
                )
        text = pem.decode("ascii", "replace")
        cred: dict[str, Any] = {"private_key": text, "thumbprint": thumb}
        if passphrase:
            cred["passphrase"] = passphrase
        return cred

    # --- MSAL -----------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        for s in self._secrets:
            if s and len(s) >= 4:
                text = text.replace(s, "***")
        return scrub(text)

    def _fail(self, message: str) -> AuthError:
        if self._metrics is not None:
            self._metrics.token(self.tenant.name, "failed")
        return AuthError(f"tenant {self.tenant.name!r}: {self._scrub(message)}")

    def _hint(self, code: int) -> str | None:
        hint = AADSTS_HINTS.get(code)
        if hint is None:
            return None
        t = self.tenant
        return hint.format(
            client_id=t.client_id, tenant_id=t.tenant_id, cloud=t.cloud, scope=self.endpoints.scope
        )

    def _from_text(self, text: str) -> AuthError | None:
        m = _AADSTS.search(text or "")
        if m:
            code = int(m.group(1))
            hint = self._hint(code)
            if hint:
                return self._fail(f"AADSTS{code}: {hint}")
        return None

    def _build_app(self) -> msal.ConfidentialClientApplication:
        ep = self.endpoints
        login_host = _host(ep.login_base)
        openid = None
        if self._doc_cache is not None:
            openid = CachedOpenId(self._doc_cache, ep.login_base, openid_url(ep.authority))
        _note_absent_msal_extensions()
        try:
            return msal.ConfidentialClientApplication(
                self.tenant.client_id,
                client_credential=self._credential,
                authority=ep.authority,
                http_client=_TimeoutHttp(self._session, self._timeout, ep.login_base, openid),
                token_cache=self._cache,
                instance_discovery=None if ep.instance_discovery else False,
            )
        except _Refused as e:
            raise self._fail(str(e)) from None
        except requests.exceptions.RequestException as e:
            raise self._fail(f"cannot reach {login_host}: {_short_exc(e)}") from None
        except ValueError as e:
            # MSAL wraps the discovery failure; Entra's answer is in the wrapped error.
            texts, cur = [], e
            while cur is not None and len(texts) < 5:
                texts.append(str(cur))
                cur = cur.__cause__ or cur.__context__
            text = "\n".join(texts)
            mapped = self._from_text(text)
            if mapped:
                raise mapped from None
            status = re.search(r"HTTP status: (\d+)", text)
            if status:
                raise self._fail(
                    f"{login_host} rejected the authority {ep.authority} (HTTP {status.group(1)}): "
                    "check tenant_id, cloud and login_endpoint"
                ) from None
            if "thumbprint" in text.lower() or "private_key" in text.lower():
                raise self._fail("the certificate credential is unusable: check certificate.path and thumbprint") from None
            raise self._fail(
                f"cannot use the authority {ep.authority}: check tenant_id, cloud and login_endpoint"
            ) from None
        except Exception as e:  # noqa: BLE001 - MSAL raises assorted types
            raise self._fail(f"cannot initialise MSAL for {ep.authority}: {type(e).__name__}") from None

    def _check_token_endpoint(self, app: msal.ConfidentialClientApplication) -> None:
        """The discovered token endpoint must be on the login endpoint's origin."""
        login = self.endpoints.login_base
        endpoint = getattr(getattr(app, "authority", None), "token_endpoint", None)
        if not isinstance(endpoint, str) or link_problem(endpoint, login) is not None:
            raise self._fail(
                f"the OpenID configuration of {display_host(login)} names the token endpoint "
                f"{display_host(endpoint)}, which is not on the login endpoint's origin "
                f"({display_host(login)}): refusing to send the credential there "
                "(check login_endpoint)"
            )

    def token(self) -> str:
        """A valid access token (from MSAL's cache when still fresh)."""
        with self._lock:
            if self._app is None:
                app = self._build_app()
                self._check_token_endpoint(app)
                self._app = app
            login_host = _host(self.endpoints.login_base)
            try:
                result = self._app.acquire_token_for_client(scopes=[self.endpoints.scope])
            except _Refused as e:
                raise self._fail(str(e)) from None
            except requests.exceptions.RequestException as e:
                raise self._fail(f"cannot reach {login_host}: {_short_exc(e)}") from None
            except MsalServiceError as e:
                status = re.search(r"HTTP Error: (\d+)", str(e))
                raise self._fail(
                    f"token request to {login_host} failed: "
                    + (f"HTTP {status.group(1)} (the identity provider had a problem; retry later)" if status else type(e).__name__)
                ) from None
            except ValueError as e:
                raise self._fail(f"token request to {login_host} failed: {type(e).__name__}") from None
            if not isinstance(result, dict):
                raise self._fail(f"token request to {login_host} returned nothing")
            token = result.get("access_token")
            if token:
                source = result.get("token_source")
                if source == "cache" or (source is None and token == self._last):
                    outcome = "cache"
                else:
                    outcome = "issued"
                    log.debug("tenant %s: token issued by %s", self.tenant.name, login_host)
                self._last = token
                if self._metrics is not None:
                    self._metrics.token(self.tenant.name, outcome)
                return token
            raise self._error_from_result(result)

    def _error_from_result(self, result: dict) -> AuthError:
        codes = result.get("error_codes") or []
        desc = str(result.get("error_description") or "")
        error = str(result.get("error") or "unknown_error")
        for code in list(codes) + [int(m) for m in _AADSTS.findall(desc)]:
            try:
                hint = self._hint(int(code))
            except (TypeError, ValueError):
                continue
            if hint:
                return self._fail(f"AADSTS{int(code)}: {hint}")
        # Unknown: the first line of Entra's description, without trace/correlation ids.
        first = desc.strip().splitlines()[0] if desc.strip() else ""
        first = re.split(r"\s+Trace ID:", first)[0]
        detail = f"{error}: {first}" if first else error
        return self._fail(f"token request to {_host(self.endpoints.login_base)} failed: {detail}")

    def invalidate(self) -> None:
        """Forget cached access tokens: the next ``token()`` asks the identity provider."""
        with self._lock:
            for at in list(self._cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                self._cache.remove_at(at)
            self._last = None
