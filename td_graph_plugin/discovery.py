"""What a tenant lets td-graph read: its licences and the app's granted permissions.

Licences come from ``/subscribedSkus`` (client-side filtered; the endpoint has no $filter).
Permissions come from Graph itself: the app's service principal's ``appRoleAssignments``
resolved against the Microsoft Graph service principal's ``appRoles`` (why the guide asks for
Application.Read.All).  The token's ``roles`` claim is only a fallback diagnostic: Microsoft
says not to build logic on reading Graph tokens, and new grants show only in new tokens.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import GraphError, TdGraphError
from .licensing import capabilities_from_skus

__all__ = [
    "MICROSOFT_GRAPH_APP_ID", "Discovery", "discover", "discover_licences", "discover_permissions", "roles_from_token",
    "roles_fingerprint",
]

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

    def to_json(self, roles: str | None) -> str:
        """The stored form (state ``tenant_cache`` kind "discovery"); ``roles`` is the
        fingerprint of the token's roles when it was read (``roles_fingerprint``)."""
        return orjson.dumps({
            "v": 1, "at": self.at, "roles": roles,
            "capabilities": sorted(self.capabilities) if self.capabilities is not None else None,
            "skus": list(self.skus),
            "permissions": sorted(self.permissions) if self.permissions is not None else None,
            "permissions_from": self.permissions_from,
        }).decode()

    @classmethod
    def from_json(cls, text: str) -> tuple["Discovery", str | None] | None:
        """(discovery, roles fingerprint) from ``to_json``'s form; None when it is not that form."""
        try:
            doc = orjson.loads(text)
            if not isinstance(doc, dict) or doc.get("v") != 1:
                return None
            caps, perms, skus = doc["capabilities"], doc["permissions"], doc["skus"]
            d = cls(
                capabilities=set(caps) if caps is not None else None,
                skus=[str(s) for s in skus],
                permissions=set(perms) if perms is not None else None,
                permissions_from=doc["permissions_from"],
                at=float(doc["at"]),
            )
            roles = doc["roles"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        if not all(isinstance(x, str) for x in (*(d.capabilities or ()), *(d.permissions or ()))):
            return None
        if roles is not None and not isinstance(roles, str):
            return None
        return d, roles


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


def roles_fingerprint(token: str) -> str | None:
    """A digest of the token's ``roles`` claim, or None for a token that is not a readable JWT.

    Not used to decide what td-graph may read (``discover`` asks Graph): only to notice that
    the app's grants changed since a stored discovery, because a new token carries them
    (https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference#payload-claims).
    """
    roles = roles_from_token(token)
    if roles is None:
        return None
    return hashlib.sha256("\n".join(sorted(roles)).encode()).hexdigest()


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
