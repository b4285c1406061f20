"""An always-verifying ``requests.Session`` per tenant over connection pools shared by tenants.

* One transport adapter (urllib3 pools, kept-alive TLS connections) per distinct (CA bundle,
  proxy) combination, shared by every tenant that has it; urllib3 keys its pools by scheme,
  host and port inside it, so connections are per (Graph/login host, proxy, CA bundle), never
  per tenant (issue 16: 1,000 tenants held 1,000 pools).  A connection carries no tenant
  state: ``Authorization`` is set on each request by ``GraphClient`` (never on the session
  or the adapter) and the origin rules below apply per request, so sharing the socket
  shares nothing else.  ``TenantSession.close`` leaves the shared pools open for the other
  tenants; ``close_shared_pools`` closes them (process end, tests).

* No urllib3 automatic retries: ``GraphClient`` retries itself, honouring Retry-After.
* TLS is always verified.  ``ca_bundle`` is an *extra* trusted CA: the session verifies
  against certifi's bundle plus that file's certificates, loaded into one in-memory
  ``ssl.SSLContext`` per distinct file (``load_verify_locations(cadata=...)``) that the
  transport adapter hands to urllib3 for every https connection, MSAL's included (MSAL's
  ``http_client`` is this session).  Nothing is written to disk, so nothing is left behind
  when the process is killed.
* The environment cannot weaken this: ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` and
  ``~/.netrc`` are ignored; ``HTTPS_PROXY``/``NO_PROXY`` still apply unless the tenant names
  its own ``proxy``, which then wins.
* On a redirect the ``Authorization`` header is kept only when the target has the very same
  origin by the strict rule of ``clouds.link_problem`` (requests' own check parses with
  urllib.parse, which urllib3 does not agree with).
"""

from __future__ import annotations

import functools
import os
import ssl
import threading
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

import certifi
import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, should_bypass_proxies
from urllib3.util.retry import Retry

from ..config.model import TenantConfig
from ..errors import ConfigError
from .clouds import link_problem

__all__ = ["build_session", "trust_context", "user_agent", "set_replica", "TenantSession", "close_shared_pools"]

POOL_SIZE = 64  # connections kept per host of a shared pool: at least the number of concurrent workers
_BEGIN = "-----BEGIN CERTIFICATE-----"


@functools.lru_cache(maxsize=1)
def _version() -> str:
    """The installed version, read once: importlib.metadata scans the installed distributions
    on every call (~1 ms; 5% of a 500-tenant pass, one session per tenant)."""
    try:
        return version("td-graph-plugin")
    except PackageNotFoundError:  # running from a source tree that is not installed
        import td_graph_plugin

        return str(getattr(td_graph_plugin, "__version__", None) or "0.0.0")


_replica: str | None = None  # a cluster replica's name (state.url), set once at start


def set_replica(name: str | None) -> None:
    """Name this process's replica in every User-Agent: Graph's sign-in/audit logs (and the
    simulator's request log) then tell which replica of a cluster asked."""
    global _replica
    _replica = name


def user_agent() -> str:
    base = f"td-graph/{_version()}"
    return f"{base} (replica {_replica})" if _replica else base


_contexts: dict[str | None, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def _new_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certifi.where())
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    return ctx


def trust_context(extra: str | None, *, tenant: str | None = None) -> ssl.SSLContext:
    """The verifying context for certifi's bundle plus the PEM certificates in ``extra``;
    one per distinct file, built once, in memory.  ``ConfigError`` when ``extra`` cannot be
    read or holds no certificate."""
    key = os.path.abspath(os.path.expanduser(extra)) if extra else None
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is not None:
            return ctx
        ctx = _new_context()
        if key is not None:
            where = f"tenant {tenant!r}: " if tenant else ""
            try:
                with open(key, "rb") as f:
                    pem = f.read().decode("ascii", "replace")
            except OSError as e:
                raise ConfigError(
                    f"{where}ca_bundle {extra!r} cannot be read: {e.strerror or e}", key="ca_bundle"
                ) from None
            if _BEGIN not in pem:
                raise ConfigError(
                    f"{where}ca_bundle {extra!r} contains no PEM certificate ('{_BEGIN}')",
                    key="ca_bundle",
                )
            try:
                ctx.load_verify_locations(cadata=pem)
            except (ssl.SSLError, ValueError) as e:
                raise ConfigError(
                    f"{where}ca_bundle {extra!r} holds a certificate that cannot be loaded "
                    f"({getattr(e, 'reason', None) or type(e).__name__})",
                    key="ca_bundle",
                ) from None
        _contexts[key] = ctx
        return ctx


class TenantSession(requests.Session):
    """A Session whose TLS trust and proxy cannot be changed by the environment."""

    def __init__(self, context: ssl.SSLContext, proxy: str | None) -> None:
        super().__init__()
        self.trust_context = context
        self._td_proxy = proxy
        self._td_shared: Any = None  # the shared adapter this session holds a use of
        self._td_env_proxies: dict[tuple[str, str], dict[str, str]] = {}
        # True: verify, with the adapter's context (never a path: nothing on disk to trust).
        self.verify = True
        # trust_env=False: no REQUESTS_CA_BUNDLE override, no ~/.netrc credentials.
        # Environment proxies are re-applied by hand in merge_environment_settings.
        self.trust_env = False
        if proxy:
            self.proxies = {"http": proxy, "https": proxy}

    def merge_environment_settings(self, url, proxies, stream, verify, cert) -> dict[str, Any]:
        if self._td_proxy:
            merged = {"http": self._td_proxy, "https": self._td_proxy}
        else:
            merged = dict(self.proxies or {})
            for k, v in self._environ_proxies(url).items():
                merged.setdefault(k, v)
            merged.update(proxies or {})
        return {
            "proxies": merged,
            "stream": self.stream if stream is None else stream,
            "verify": True,  # never False (nor another bundle), whatever the caller passes
            "cert": cert if cert is not None else self.cert,
        }

    def _environ_proxies(self, url: str) -> dict[str, str]:
        """The environment's proxies for ``url``'s origin, read once per origin and session:
        requests reads (and for no_proxy, scans) the whole environment on every request, a
        few per cent of a 1,000-tenant pass.  A session lives for one process, whose
        environment td-graph never changes."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        found = self._td_env_proxies.get(key)
        if found is None:
            found = {} if should_bypass_proxies(url, no_proxy=None) else dict(get_environ_proxies(url, no_proxy=None))
            if len(self._td_env_proxies) < 64:  # a handful of origins (Graph, login, downloads)
                self._td_env_proxies[key] = found
        return found

    def close(self) -> None:
        """The adapters are shared with other tenants (``build_session``): their connections
        are closed only when the last session using them closes."""
        shared, self._td_shared = getattr(self, "_td_shared", None), None
        self.adapters.clear()
        if shared is not None:
            _release(shared)

    def should_strip_auth(self, old_url: str, new_url: str) -> bool:
        """Keep ``Authorization`` across a redirect only to the very same origin, by the rule
        links are followed with (requests' own check trusts urllib.parse's reading)."""
        return link_problem(new_url, old_url) is not None or super().should_strip_auth(old_url, new_url)


class _VerifiedAdapter(HTTPAdapter):
    """Always verifies https with the session's preloaded in-memory context: urllib3 is never
    given a CA path (it would parse the file again for every new connection, ~35 ms)."""

    def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
        self._ssl_context = context
        super().__init__(**kwargs)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):  # type: ignore[no-untyped-def]
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, True, cert)
        if host_params.get("scheme") == "https":
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
            pool_kwargs["ssl_context"] = self._ssl_context
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert):  # type: ignore[no-untyped-def]
        super().cert_verify(conn, url, True, cert)
        if url.lower().startswith("https"):
            # requests points the pool at certifi's file; the context already holds it.
            conn.cert_reqs = "CERT_REQUIRED"
            conn.ca_certs = None
            conn.ca_cert_dir = None


_adapters: dict[tuple[str | None, str | None], _VerifiedAdapter] = {}
_users: dict[int, int] = {}  # id(adapter) -> open sessions using it
_adapters_lock = threading.Lock()


def _shared_adapter(tenant: TenantConfig, context: ssl.SSLContext) -> _VerifiedAdapter:
    """The adapter (and so the pools) of every tenant with this CA bundle and proxy."""
    key = (os.path.abspath(os.path.expanduser(tenant.ca_bundle)) if tenant.ca_bundle else None, tenant.proxy or None)
    with _adapters_lock:
        adapter = _adapters.get(key)
        if adapter is None:
            adapter = _adapters[key] = _VerifiedAdapter(
                context,
                pool_connections=8,  # hosts kept: login and Graph endpoints of the clouds in use
                pool_maxsize=POOL_SIZE,
                # total=0: no automatic retries; read=False re-raises read timeouts as such
                # (requests' own default), so they surface as ReadTimeout, not ConnectionError.
                max_retries=Retry(total=0, read=False, redirect=False, raise_on_status=False),
            )
        _users[id(adapter)] = _users.get(id(adapter), 0) + 1
        return adapter


def _release(adapter: _VerifiedAdapter) -> None:
    with _adapters_lock:
        left = _users.get(id(adapter), 1) - 1
        _users[id(adapter)] = left
    if left <= 0:
        adapter.close()  # idle connections closed; the adapter opens new ones if used again


def close_shared_pools() -> None:
    """Close every shared pool's connections (the process is ending; tests)."""
    with _adapters_lock:
        adapters = list(_adapters.values())
        _adapters.clear()
    for adapter in adapters:
        adapter.close()


def build_session(tenant: TenantConfig) -> TenantSession:
    """The tenant's always-verifying session, over the pools it shares with every tenant of the
    same CA bundle and proxy."""
    context = trust_context(tenant.ca_bundle, tenant=tenant.name)
    session = TenantSession(context, tenant.proxy)
    adapter = _shared_adapter(tenant, context)
    session._td_shared = adapter
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = user_agent()
    return session
