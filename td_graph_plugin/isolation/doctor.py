"""``td-graph doctor``'s isolation section: which app isolates, and whether the collector's app
could disable users itself.  (The protected users are doctor's own lines, through
``protected.unresolvable_protected_entries``.)

* The app isolate/release act as: the tenant's separate isolation app (``tenants[].isolation``),
  or, without one, the collector's app.
* A warning when the collector's app holds a permission that can disable users or end their
  sessions: its secret sits on every log shipper, and isolation belongs to a separate app.
"""

from __future__ import annotations

from typing import Any

from ..config.model import Config, TenantConfig
from .advice import STEP_PERMISSIONS

__all__ = ["WRITE_PERMISSIONS", "isolation_checks", "render_isolation"]

# Every application permission that lets an app disable users, revoke their sessions or
# force a password change (graph-facts §9; the onboarding guide's User Isolator Permissions).
WRITE_PERMISSIONS: tuple[str, ...] = tuple(dict.fromkeys(p for perms in STEP_PERMISSIONS.values() for p in perms))


def isolation_checks(config: Config, tenant: TenantConfig, client: Any, granted: set[str] | None) -> dict[str, Any]:
    """The section (JSON-ready).  ``granted`` is the collector's app's granted application
    permissions (None: could not be read); ``config`` and ``client`` are for later checks."""
    iso = tenant.isolation
    credential_ok = True
    if iso is None:
        credential = "the collector's app (no tenants[].isolation)"
    elif iso.problem:
        credential = f"separate app {iso.client_id} (tenants[].isolation) cannot be used: {iso.problem}"
        credential_ok = False
    else:
        credential = f"separate app {iso.client_id} (tenants[].isolation)"
    warnings: list[str] = []
    if granted is None:
        warnings.append(
            "the collector's app's granted permissions could not be read: whether it can disable users is unknown "
            f"(it must not hold {', '.join(WRITE_PERMISSIONS)})"
        )
    else:
        held = [p for p in WRITE_PERMISSIONS if p in granted]
        if held and iso is None:
            warnings.append(
                f"the collector's credential holds {', '.join(held)}: whoever has its secret (every log shipper) can "
                "disable users and end their sessions. Give isolation its own app registration (tenants[].isolation) "
                "with only the isolation permissions, and remove these from the collector's app"
            )
        elif held:
            warnings.append(
                f"the collector's app still holds {', '.join(held)} although isolate/release use the separate isolation "
                "app (tenants[].isolation): remove them from the collector's app"
            )
    return {"credential": credential, "warnings": warnings, "ok": credential_ok}


def render_isolation(section: dict[str, Any]) -> list[str]:
    """The section as ``doctor``'s table lines."""
    out = [f"  isolation  acts as {section['credential']}"]
    out.extend(f"  WARNING: {w}" for w in section["warnings"])
    return out
