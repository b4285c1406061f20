"""``isolation.protected_users``: every entry resolved to object ids, failing closed.

An entry may be a user principal name, an object id, a mail address or a proxy address
(``smtp:alias@contoso.com``).  Each is resolved on every isolation (and by ``doctor``):

* an object id: ``GET /users/{id}``;
* a UPN or address: ``GET /users/{upn}``, and when that is 404 the alias lookup
  ``GET /users?$filter=mail eq '{addr}' or proxyAddresses/any(p:p eq 'smtp:{addr}')`` — a
  guest's home address is its ``mail``, an alias is a proxy address.  ``eq`` on ``mail`` and
  on ``proxyAddresses`` works by default, without ``ConsistencyLevel: eventual`` / ``$count``
  (https://learn.microsoft.com/graph/aad-advanced-queries, "Support for filter by properties
  of Microsoft Entra ID (directory) objects"; https://learn.microsoft.com/graph/api/user-list?view=graph-rest-1.0);
* a proxy address ``prefix:addr``: the same lookup on ``proxyAddresses`` (and ``mail`` for smtp).

An entry that resolves to no user (a typo, a deleted account, an address nobody has) is
*unresolvable*; one whose lookup fails (403, 5xx, throttled) could not be *checked*.  Either
refuses every isolation in the tenant until it is fixed: td-graph must know every protected
account before it disables anyone (issue 13, High 2).  An entry that resolves to several users
protects all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..config.model import Config, TenantConfig
from ..errors import GraphError, GraphNotFound, TdGraphError
from .advice import describe
from .resolve import graph_get, graph_pages, is_object_id, user_path

__all__ = ["EntryResolution", "resolve_entry", "resolve_entries", "unresolvable_protected_entries", "alias_filter"]

_PROXY = re.compile(r"^([A-Za-z][A-Za-z0-9]{0,15}):(\S+@\S+)$")
_ADDRESS = re.compile(r"^[^\s@\x00-\x1f\x7f]{1,256}@[^\s@\x00-\x1f\x7f]{1,255}$")
_SAFE = re.compile(r"^[^\s\x00-\x1f\x7f]{1,600}$")


@dataclass
class EntryResolution:
    entry: str
    ids: set[str] = field(default_factory=set)  # resolved object ids (lower case); empty: unresolvable
    error: str | None = None  # the lookup failed: the entry could not be checked
    request_ids: list[str] = field(default_factory=list)

    @property
    def unresolvable(self) -> bool:
        return self.error is None and not self.ids


def _quote(value: str) -> str:
    return value.replace("'", "''")


def alias_filter(entry: str) -> str | None:
    """The ``$filter`` that finds the users an address or proxy address belongs to (None: not one)."""
    m = _PROXY.match(entry)
    if m is not None:
        prefix, address = m.group(1), m.group(2)
        if prefix.lower() == "smtp":
            address_q = _quote(address)
            return f"mail eq '{address_q}' or proxyAddresses/any(p:p eq 'smtp:{address_q}')"
        return f"proxyAddresses/any(p:p eq '{_quote(prefix + ':' + address)}')"
    if _ADDRESS.match(entry):
        q = _quote(entry)
        return f"mail eq '{q}' or proxyAddresses/any(p:p eq 'smtp:{q}')"
    return None


def resolve_entry(client: Any, entry: str) -> EntryResolution:
    """Resolve one entry to object ids (see the module docstring); never raises a Graph error."""
    res = EntryResolution(entry)
    if not _SAFE.match(entry):
        return res  # spaces, control characters, too long: not something Graph can name
    try:
        if is_object_id(entry) or (not _PROXY.match(entry) and "@" in entry):
            try:
                data, rid = graph_get(client, user_path(entry), {"$select": "id,userPrincipalName"})
            except GraphNotFound as exc:
                if exc.request_id:
                    res.request_ids.append(exc.request_id)
                if is_object_id(entry):
                    return res
            except ValueError:
                pass  # not usable in a /users/{upn} path: try it as an address
            else:
                if rid:
                    res.request_ids.append(rid)
                if data.get("id"):
                    res.ids.add(str(data["id"]).lower())
                    return res
        flt = alias_filter(entry)
        if flt is None:
            return res
        items, rids = graph_pages(client, "/users", {"$filter": flt, "$select": "id,userPrincipalName,mail"})
        res.request_ids.extend(rids)
        res.ids.update(str(i["id"]).lower() for i in items if i.get("id"))
    except (GraphError, TdGraphError) as exc:
        res.error = describe(exc)
        rid = getattr(exc, "request_id", None)
        if isinstance(rid, str):
            res.request_ids.append(rid)
    return res


def entries_of(raw: Iterable[Any]) -> list[str]:
    """The configured entries, trimmed, empty ones dropped, duplicates (case-insensitive) once."""
    out: list[str] = []
    seen: set[str] = set()
    for item in raw:
        entry = str(item).strip()
        if entry and entry.lower() not in seen:
            seen.add(entry.lower())
            out.append(entry)
    return out


def resolve_entries(client: Any, raw: Iterable[Any]) -> list[EntryResolution]:
    return [resolve_entry(client, e) for e in entries_of(raw)]


def unresolvable_protected_entries(config: Config, tenant: TenantConfig, client: Any) -> list[str]:
    """The ``isolation.protected_users`` entries that ``tenant`` (through ``client``) cannot
    resolve to a user, in config order; an entry whose lookup failed is one of them (it could
    not be resolved either, and it refuses isolation the same way).  ``doctor`` prints them."""
    return [r.entry for r in resolve_entries(client, config.protected_users) if not r.ids]
