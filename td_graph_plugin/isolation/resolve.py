"""USER (a UPN or an object id) -> the user object, by one ``GET /v1.0/users/{id-or-upn}``.

Everything after resolution works on the immutable object id, never on what was typed:
a UPN can be renamed, and an alias of a protected account must not slip past the guard.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from ..sources.isolation_feed import SOURCE  # the metrics' source label and the records' source
from .model import Target

__all__ = ["USER_SELECT", "SOURCE", "is_object_id", "check_user_argument", "user_path", "get_user", "graph_get",
           "graph_pages"]

USER_SELECT = (
    "id,displayName,userPrincipalName,accountEnabled,userType,onPremisesSyncEnabled,"
    "signInSessionsValidFromDateTime"
)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_BAD = re.compile(r"[/\\?\s\x00-\x1f\x7f]")


def is_object_id(value: str) -> bool:
    return bool(_GUID.match(value.strip()))


def check_user_argument(user: str) -> str:
    """The trimmed USER argument; ``ValueError`` (a usage error) when it cannot be one."""
    if not isinstance(user, str):
        raise ValueError("USER must be a user principal name or an object id")
    u = user.strip()
    if not u:
        raise ValueError("USER is empty: give a user principal name (alice@contoso.com) or an object id")
    if len(u) > 1024:
        raise ValueError("USER is too long to be a user principal name or an object id")
    if u in (".", "..") or _BAD.search(u):
        raise ValueError(
            f"USER {u!r} is not a user principal name or an object id (no spaces, '/', '\\' or '?')"
        )
    if not is_object_id(u) and "@" not in u:
        raise ValueError(f"USER {u!r} is neither an object id (GUID) nor a user principal name (name@domain)")
    return u


def user_path(user: str) -> str:
    """``/users/{id}`` or ``/users/{upn}`` with the UPN percent-encoded (a guest's ``#EXT#``
    must not become a URL fragment); a UPN that starts with ``$`` uses Graph's
    ``/users('{upn}')`` form, as documented."""
    u = check_user_argument(user)
    if is_object_id(u):
        return f"/users/{u.lower()}"
    if u.startswith("$"):
        return "/users('" + quote(u.replace("'", "''"), safe="@$'") + "')"
    return "/users/" + quote(u, safe="@")


def graph_get(client: Any, path: str, params: dict[str, str] | None = None) -> tuple[dict[str, Any], str | None]:
    """One GET through the client's retries; returns (JSON, request-id)."""
    reply = client.fetch(
        "GET", client.url("v1.0", path), params=params, source=SOURCE, throttle_class="directory"
    )
    return reply.data, reply.request_id


def graph_pages(client: Any, path: str, params: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every item of a collection (all pages) and the request ids of its pages."""
    items: list[dict[str, Any]] = []
    rids: list[str] = []
    for page in client.pages(
        client.url("v1.0", path), params=params, source=SOURCE, throttle_class="directory", prefetch=False
    ):
        if page.request_id:
            rids.append(page.request_id)
        items.extend(i for i in page.items if isinstance(i, dict))
    return items, rids


def get_user(client: Any, user_or_id: str) -> tuple[Target, str | None]:
    """The user as Graph has it (raises ``GraphNotFound`` for an unknown user)."""
    data, request_id = graph_get(client, user_path(user_or_id), {"$select": USER_SELECT})
    target = Target.from_graph(data)
    if not target.id:
        from ..errors import GraphResponseError

        raise GraphResponseError("Graph returned a user without an id", request_id=request_id)
    return target, request_id
