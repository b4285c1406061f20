"""One pooled, always-verifying ``requests.Session`` per tenant.

* No urllib3 automatic retries: ``GraphClient`` retries itself, honouring Retry-After.
* TLS is always verified.  ``ca_bundle`` is an *extra* trusted CA: the session verifies
  against certifi's bundle plus that file, concatenated once per distinct path into a
  private temporary directory.
* The environment cannot weaken this: ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` and
  ``~/.netrc`` are ignored; ``HTTPS_PROXY``/``NO_PROXY`` still apply unless the tenant names
  its own ``proxy``, which then wins.
"""

from __future__ import annotations

import atexit
import os
import shutil
import ssl
import tempfile
import threading
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import certifi
import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, should_bypass_proxies
from urllib3.util.retry import Retry

from ..config.model import TenantConfig
from ..errors import ConfigError

__all__ = ["build_session", "combined_ca_bundle", "user_agent", "TenantSession"]

POOL_SIZE = 16  # connections kept per host: at least the number of concurrent workers
_bundle_lock = threading.Lock()
_bundles: dict[str, str] = {}
_bundle_dir: str | None = None


def _version() -> str:
    try:
        return version("td-graph-plugin")
    except PackageNotFoundError:  # running from a source tree that is not installed
        import td_graph_plugin

        return str(getattr(td_graph_plugin, "__version__", None) or "0.0.0")


def user_agent() -> str:
    return f"td-graph/{_version()}"


def _cleanup_bundles() -> None:  # pragma: no cover - runs at interpreter exit
    if _bundle_dir:
        shutil.rmtree(_bundle_dir, ignore_errors=True)


def combined_ca_bundle(extra: str | None, *, tenant: str | None = None) -> str:
    """Path of a PEM file trusted for verification: certifi's bundle (+ ``extra``)."""
    if not extra:
        return certifi.where()
    global _bundle_dir
    where = f"tenant {tenant!r}: " if tenant else ""
    key = os.path.abspath(os.path.expanduser(extra))
    with _bundle_lock:
        cached = _bundles.get(key)
        if cached and os.path.exists(cached):
            return cached
        try:
            with open(key, "rb") as f:
                extra_pem = f.read()
        except OSError as e:
            raise ConfigError(
                f"{where}ca_bundle {extra!r} cannot be read: {e.strerror or e}", key="ca_bundle"
            ) from None
        if b"-----BEGIN CERTIFICATE-----" not in extra_pem:
            raise ConfigError(
                f"{where}ca_bundle {extra!r} contains no PEM certificate "
                "('-----BEGIN CERTIFICATE-----')",
                key="ca_bundle",
            )
        with open(certifi.where(), "rb") as f:
            base = f.read()
        if _bundle_dir is None or not os.path.isdir(_bundle_dir):
            _bundle_dir = tempfile.mkdtemp(prefix="td-graph-ca-")  # mode 0700
            atexit.register(_cleanup_bundles)
        fd, path = tempfile.mkstemp(prefix="bundle-", suffix=".pem", dir=_bundle_dir)
        with os.fdopen(fd, "wb") as out:
            out.write(base)
            if not base.endswith(b"\n"):
                out.write(b"\n")
            out.write(b"\n# td-graph: extra CA from " + key.encode("utf-8", "replace") + b"\n")
            out.write(extra_pem)
            if not extra_pem.endswith(b"\n"):
                out.write(b"\n")
        _bundles[key] = path
        return path


class TenantSession(requests.Session):
    """A Session whose TLS trust and proxy cannot be changed by the environment."""

    def __init__(self, ca_path: str, proxy: str | None) -> None:
        super().__init__()
        self._td_ca = ca_path
        self._td_proxy = proxy
        self.verify = ca_path
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
            if not should_bypass_proxies(url, no_proxy=None):
                for k, v in get_environ_proxies(url, no_proxy=None).items():
                    merged.setdefault(k, v)
            merged.update(proxies or {})
        return {
            "proxies": merged,
            "stream": self.stream if stream is None else stream,
            "verify": self._td_ca,  # never False, whatever the caller passes
            "cert": cert if cert is not None else self.cert,
        }


_contexts: dict[str, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def _ssl_context(ca_path: str) -> ssl.SSLContext:
    """One verifying context per CA bundle, loaded once: handing urllib3 the bundle's path
    instead makes it parse the whole file again for every new connection (~35 ms of CPU)."""
    with _contexts_lock:
        ctx = _contexts.get(ca_path)
        if ctx is None:
            ctx = ssl.create_default_context(cafile=ca_path)
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.check_hostname = True
            _contexts[ca_path] = ctx
        return ctx


class _VerifiedAdapter(HTTPAdapter):
    """Always verifies https with the preloaded context of the session's CA bundle."""

    def __init__(self, ca_path: str, **kwargs: Any) -> None:
        self._ssl_context = _ssl_context(ca_path)
        super().__init__(**kwargs)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):  # type: ignore[no-untyped-def]
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params.get("scheme") == "https":
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
            pool_kwargs["ssl_context"] = self._ssl_context
        return host_params, pool_kwargs


def build_session(tenant: TenantConfig) -> TenantSession:
    """The tenant's pooled, always-verifying session."""
    ca_path = combined_ca_bundle(tenant.ca_bundle, tenant=tenant.name)
    session = TenantSession(ca_path, tenant.proxy)
    adapter = _VerifiedAdapter(
        ca_path,
        pool_connections=4,
        pool_maxsize=POOL_SIZE,
        # total=0: no automatic retries; read=False re-raises read timeouts as such
        # (requests' own default), so they surface as ReadTimeout, not ConnectionError.
        max_retries=Retry(total=0, read=False, redirect=False, raise_on_status=False),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = user_agent()
    return session
