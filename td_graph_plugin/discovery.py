"""What a tenant lets td-graph read: its licences and the app's granted permissions.

Licences come from ``/subscribedSkus`` (client-side filtered; the endpoint has no $filter).
Permissions come from Graph itself: the app's service principal's ``appRoleAssignments``
resolved against the Microsoft Graph service principal's ``appRoles`` (why the guide asks for
Application.Read.All).  The token's ``roles`` claim is only a fallback diagnostic: Microsoft
says not to build logic on reading Graph tokens, and new grants show only in new tokens.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import GraphError, TdGraphError
from .licensing import capabilities_from_skus

__all__ = ["MICROSOFT_GRAPH_APP_ID", "Discovery", "discover", "discover_licences", "discover_permissions", "roles_from_token"]

log = logging.getLogger(__name__)

MICROSOFT_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


@dataclass
class Discovery:
    """Each part is None when it could not be read (the reason is in ``errors``)."""

    capabilities: set[str] | None = None
    skus: list[str] = field(default_factory=list)
    permissions: set[str] | None = None
    permissions_from: str | None = None  # "graph" | "token" (diagnostic fallback)
    errors: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


def discover_licences(client: Any) -> tuple[set[str], list[str]]:
    skus = []
    names = []
    for page in client.pages(client.url("v1.0", "/subscribedSkus"), source="discovery", throttle_class="directory"):
        for sku in page.items:
            skus.append(sku)
            if str(sku.get("capabilityStatus", "")).lower() in ("enabled", "warning"):
                names.append(str(sku.get("skuPartNumber", "")))
    return capabilities_from_skus(skus), sorted(n for n in names if n)


def discover_permissions(client: Any, client_id: str) -> set[str]:
    """Application permissions granted (admin-consented) to our app on Microsoft Graph."""
    ours = client.get_json(
        client.url("v1.0", f"/servicePrincipals(appId='{client_id}')"),
        params={"$select": "id,appId"},
        source="discovery",
        throttle_class="directory",
    )
    graph = client.get_json(
        client.url("v1.0", f"/servicePrincipals(appId='{MICROSOFT_GRAPH_APP_ID}')"),
        params={"$select": "id,appRoles"},
        source="discovery",
        throttle_class="directory",
    )
    role_names = {r.get("id"): r.get("value") for r in graph.get("appRoles") or [] if r.get("value")}
    granted: set[str] = set()
    url = client.url("v1.0", f"/servicePrincipals/{ours['id']}/appRoleAssignments")
    for page in client.pages(url, source="discovery", throttle_class="directory"):
        for assignment in page.items:
            if assignment.get("resourceId") == graph.get("id") and assignment.get("appRoleId") in role_names:
                granted.add(role_names[assignment["appRoleId"]])
    return granted


def roles_from_token(token: str) -> set[str] | None:
    """The ``roles`` claim, for diagnostics only; None when the token is not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    roles = payload.get("roles") if isinstance(payload, dict) else None
    return set(roles) if isinstance(roles, list) else set()


def discover(client: Any, client_id: str, *, tokens: Any = None) -> Discovery:
    d = Discovery()
    try:
        d.capabilities, d.skus = discover_licences(client)
    except (GraphError, TdGraphError) as exc:
        d.errors["licences"] = str(exc)
        log.warning("licence discovery failed: %s", exc)
    try:
        d.permissions = discover_permissions(client, client_id)
        d.permissions_from = "graph"
    except (GraphError, TdGraphError, KeyError) as exc:
        d.errors["permissions"] = str(exc)
        log.warning("permission discovery from Graph failed: %s", exc)
        if tokens is not None:
            try:
                roles = roles_from_token(tokens.token())
            except TdGraphError:
                roles = None
            if roles is not None:
                d.permissions, d.permissions_from = roles, "token"
    return d
