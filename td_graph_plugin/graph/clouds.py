"""National clouds' endpoints: where to get a token and where Graph lives (graph-facts §0.1).

The table of clouds itself is ``td_graph_plugin/clouds.py`` (the config and the source specs
read their names from it too).

A token is only valid in the cloud that issued it, so the scope is always the cloud's own
Graph resource, even when ``graph_endpoint`` points somewhere else (a proxy, a private
endpoint, the simulator).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..clouds import CLOUDS, Cloud
from ..config.model import TenantConfig
from ..errors import ConfigError

__all__ = ["Cloud", "CLOUDS", "Endpoints", "resolve_endpoints", "same_origin"]


@dataclass(frozen=True)
class Endpoints:
    login_base: str  # "https://login.microsoftonline.com", no trailing slash
    graph_base: str  # "https://graph.microsoft.com", no trailing slash
    scope: str  # always the cloud's Graph resource + "/.default"
    authority: str  # f"{login_base}/{tenant_id}"
    instance_discovery: bool  # False when login_endpoint is overridden


def _override(tenant: TenantConfig, key: str, value: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise ConfigError(
            f"tenant {tenant.name!r}: {key} must be an https:// URL (TLS is always verified), "
            f"got {value!r}",
            key=key,
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            f"tenant {tenant.name!r}: {key} must not carry a query or fragment", key=key
        )
    return value


def resolve_endpoints(tenant: TenantConfig) -> Endpoints:
    """The login and Graph bases, scope and MSAL authority for one tenant."""
    cloud = CLOUDS.get((tenant.cloud or "global").lower())
    if cloud is None:
        raise ConfigError(
            f"tenant {tenant.name!r}: unknown cloud {tenant.cloud!r} "
            f"(expected one of {', '.join(CLOUDS)})",
            key="cloud",
        )
    login_base = f"https://{cloud.login_host}"
    graph_base = f"https://{cloud.graph_host}"
    instance_discovery = True
    if tenant.login_endpoint:
        login_base = _override(tenant, "login_endpoint", tenant.login_endpoint)
        instance_discovery = False
    if tenant.graph_endpoint:
        graph_base = _override(tenant, "graph_endpoint", tenant.graph_endpoint)
    return Endpoints(
        login_base=login_base,
        graph_base=graph_base,
        scope=cloud.scope,
        authority=f"{login_base}/{tenant.tenant_id}",
        instance_discovery=instance_discovery,
    )


_DEFAULT_PORTS = {"https": 443, "http": 80}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


def same_origin(url: str, base: str) -> bool:
    """True when ``url`` is on the same scheme, host and port as ``base``."""
    a = _origin(url)
    return bool(a[1]) and a == _origin(base)
