"""Which app isolate and release act as: the tenant's separate isolation app when configured.

``tenants[].isolation`` (``config.model.IsolationCredential``) is a second app registration
holding only the isolation permissions (and, if admins are to be contained, the directory
role Graph requires for them).  isolate/release build their Graph client from the tenant's
config with its client id and credential replaced by the isolation app's; the collector
(``run``, syslog-ng) never reads the block.  A problem in it (an unset ``${VAR}``, no secret)
is a configuration error for isolate/release only, raised before any request.

Without the block, isolate/release act as the collector's app (the onboarding guide's single
app), and ``doctor`` warns that the collector's credential can disable users.
"""

from __future__ import annotations

from dataclasses import replace

from ..config.model import TenantConfig
from ..errors import ConfigError

__all__ = ["acting_tenant", "uses_isolation_app"]


def uses_isolation_app(tenant: TenantConfig) -> bool:
    return tenant.isolation is not None


def acting_tenant(tenant: TenantConfig) -> TenantConfig:
    """``tenant`` with the isolation app's client id and credential (and no ``isolation``
    block left to pick from), or ``tenant`` itself when it has no isolation app.

    ``ConfigError`` (exit 2) when the isolation app cannot be used; it names the problem
    (the key and the variable, never a value)."""
    iso = tenant.isolation
    if iso is None:
        return tenant
    key = f"tenants[{tenant.name}].isolation"
    if iso.problem:
        raise ConfigError(
            f"the isolation app of tenant {tenant.name!r} cannot be used: {iso.problem}. isolate and release refuse "
            "until it is fixed (the collector does not use it)",
            key=key,
        )
    if not iso.client_id or (iso.client_secret is None and iso.certificate is None):
        raise ConfigError(
            f"the isolation app of tenant {tenant.name!r} needs client_id and client_secret or certificate", key=key
        )
    return replace(tenant, client_id=iso.client_id, client_secret=iso.client_secret, certificate=iso.certificate,
                   isolation=None)
