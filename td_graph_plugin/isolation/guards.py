"""Guard rails that run before any write: protected accounts and privileged directory roles.

* Protected accounts (``isolation.protected_users``) are matched by object id *after* the
  target is resolved, and every UPN entry is resolved too, so neither an alias nor the object
  id typed instead of the UPN slips past.  An entry that cannot be checked (Graph error other
  than 404) fails closed: the isolation is refused.
* Privileged roles: active directory role assignments of the user (direct), of the
  role-assignable groups it belongs to (``transitiveMemberOf`` with ``isAssignableToRole``),
  and legacy ``directoryRole`` memberships.  Membership of a role-assignable group counts as
  privileged even without an active assignment (it may carry PIM-eligible roles, and only
  Privileged Authentication Administrator or Global Administrator can change its members).
  If the check cannot be completed, it fails closed too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import GraphError, GraphNotFound, TdGraphError
from .model import Target
from .resolve import SOURCE, graph_get, is_object_id, user_path

__all__ = [
    "ROLE_TEMPLATES",
    "GLOBAL_ADMINISTRATOR",
    "PRIVILEGED_AUTHENTICATION_ADMINISTRATOR",
    "GuardReport",
    "check_protected",
    "check_roles",
    "own_service_principal_id",
]

log = logging.getLogger("td_graph_plugin.isolation")

GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_AUTHENTICATION_ADMINISTRATOR = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
# Names for when roleDefinitions cannot be read (built-in roles: definition id == template id).
ROLE_TEMPLATES = {
    GLOBAL_ADMINISTRATOR: "Global Administrator",
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR: "Privileged Authentication Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "966707d0-3269-4727-9be2-8c3a10f19b9d": "Password Administrator",
    "c4e39bd9-1100-46d3-8c65-fb160da0071f": "Authentication Administrator",
    "29232cdf-9323-42fd-ade2-1d097af3e4de": "Exchange Administrator",
    "f28a1f50-f6e7-4571-818b-6a12f2af6b6c": "SharePoint Administrator",
    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9": "Conditional Access Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "f2ef992c-3afb-46b9-b7cf-a126ee74c451": "Global Reader",
    "88d8e3e3-8f55-4a1e-953a-9b9898b8876b": "Directory Readers",
}


@dataclass
class GuardReport:
    protected_by: str | None = None  # the protected_users entry that matched
    roles: list[dict[str, Any]] = field(default_factory=list)  # {role, template_id, via, scope}
    role_assignable_groups: list[dict[str, Any]] = field(default_factory=list)  # {id, displayName}
    errors: list[str] = field(default_factory=list)  # checks that could not be completed
    notes: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)

    @property
    def privileged(self) -> bool:
        return bool(self.roles or self.role_assignable_groups)

    @property
    def global_admin(self) -> bool:
        return any(r.get("template_id") == GLOBAL_ADMINISTRATOR for r in self.roles)

    def describe_roles(self) -> str:
        parts = [f"{r['role']} ({r['via']}{'' if r.get('scope') in (None, '/') else ', scope ' + str(r['scope'])})" for r in self.roles]
        for g in self.role_assignable_groups:
            if not any(r.get("group_id") == g["id"] for r in self.roles):
                parts.append(f"member of role-assignable group {g.get('displayName') or g['id']}")
        return "; ".join(parts)

    def _rid(self, request_id: str | None) -> None:
        if request_id:
            self.request_ids.append(request_id)


# --------------------------------------------------------------------------- protected


def check_protected(client: Any, target: Target, entries: Iterable[str], report: GuardReport) -> None:
    """Set ``report.protected_by`` when ``target`` is one of ``entries`` (ids or UPNs)."""
    tid = target.id.lower()
    upn = (target.user_principal_name or "").lower()
    pending: list[str] = []
    for raw in entries:
        entry = str(raw).strip()
        if not entry:
            continue
        if is_object_id(entry):
            if entry.lower() == tid:
                report.protected_by = entry
                return
        elif entry.lower() == upn:
            report.protected_by = entry
            return
        else:
            pending.append(entry)
    # UPN entries that did not match textually: resolve each to its object id.
    for entry in pending:
        try:
            data, rid = graph_get(client, user_path(entry), {"$select": "id,userPrincipalName"})
        except GraphNotFound:
            report.notes.append(f"protected_users entry {entry} is not a user in this tenant")
            continue
        except ValueError:
            report.notes.append(f"protected_users entry {entry!r} is not a UPN or an object id; ignored")
            continue
        except (GraphError, TdGraphError) as exc:
            report.errors.append(f"could not resolve protected_users entry {entry}: {exc}")
            continue
        report._rid(rid)
        if str(data.get("id") or "").lower() == tid:
            report.protected_by = entry
            return


def own_service_principal_id(client: Any, client_id: str) -> str | None:
    """The object id of td-graph's own service principal, or None when it cannot be read."""
    try:
        data, _ = graph_get(client, f"/servicePrincipals(appId='{client_id}')", {"$select": "id,appId"})
    except (GraphError, TdGraphError):
        return None
    value = data.get("id")
    return str(value) if value else None


# --------------------------------------------------------------------------- roles


def _pages(client: Any, path: str, params: dict[str, str], report: GuardReport) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.pages(
        client.url("v1.0", path), params=params, source=SOURCE, throttle_class="directory", prefetch=False
    ):
        report._rid(page.request_id)
        items.extend(i for i in page.items if isinstance(i, dict))
    return items


class _RoleNames:
    def __init__(self, client: Any, report: GuardReport) -> None:
        self.client = client
        self.report = report
        self.cache: dict[str, tuple[str, str | None]] = {}

    def lookup(self, definition_id: str) -> tuple[str, str | None]:
        """(display name, template id) of a role definition."""
        if definition_id in self.cache:
            return self.cache[definition_id]
        name, template = ROLE_TEMPLATES.get(definition_id), definition_id if definition_id in ROLE_TEMPLATES else None
        try:
            data, rid = graph_get(
                self.client,
                f"/roleManagement/directory/roleDefinitions/{definition_id}",
                {"$select": "id,displayName,templateId"},
            )
            self.report._rid(rid)
            name = data.get("displayName") or name
            template = data.get("templateId") or template
        except (GraphError, TdGraphError) as exc:
            # The assignment itself is what matters; a missing name is only cosmetic.
            log.debug("role definition %s: %s", definition_id, exc)
        result = (name or f"role {definition_id}", template)
        self.cache[definition_id] = result
        return result


def _assignments(client: Any, principal_id: str, report: GuardReport) -> list[dict[str, Any]]:
    return _pages(
        client,
        "/roleManagement/directory/roleAssignments",
        {"$filter": f"principalId eq '{principal_id}'"},
        report,
    )


def check_roles(client: Any, target: Target, report: GuardReport) -> None:
    """Fill ``report.roles`` and ``report.role_assignable_groups``; failures go to ``errors``."""
    names = _RoleNames(client, report)
    seen_templates: set[str] = set()

    def add(definition_id: str, via: str, scope: str | None, group_id: str | None = None) -> None:
        name, template = names.lookup(definition_id)
        entry = {"role": name, "role_definition_id": definition_id, "template_id": template, "via": via, "scope": scope}
        if group_id:
            entry["group_id"] = group_id
        report.roles.append(entry)
        seen_templates.add((template or definition_id).lower())

    try:
        for a in _assignments(client, target.id, report):
            if a.get("roleDefinitionId"):
                add(str(a["roleDefinitionId"]), "direct", a.get("directoryScopeId"))
    except (GraphError, TdGraphError) as exc:
        report.errors.append(f"could not read the user's role assignments: {exc}")
    try:
        memberships = _pages(
            client,
            user_path(target.id) + "/transitiveMemberOf",
            {"$select": "id,displayName,isAssignableToRole,roleTemplateId"},
            report,
        )
    except (GraphError, TdGraphError) as exc:
        report.errors.append(f"could not read the user's group memberships: {exc}")
        return
    for m in memberships:
        kind = str(m.get("@odata.type") or "")
        if kind.endswith("directoryRole") and m.get("roleTemplateId"):
            template = str(m["roleTemplateId"])
            if template.lower() not in seen_templates:
                report.roles.append({
                    "role": m.get("displayName") or ROLE_TEMPLATES.get(template, f"role {template}"),
                    "role_definition_id": template, "template_id": template, "via": "direct", "scope": "/",
                })
                seen_templates.add(template.lower())
        elif m.get("isAssignableToRole") is True:
            report.role_assignable_groups.append({"id": m.get("id"), "displayName": m.get("displayName")})
    for group in report.role_assignable_groups:
        gid = str(group.get("id") or "")
        if not gid:
            continue
        try:
            for a in _assignments(client, gid, report):
                if a.get("roleDefinitionId"):
                    add(
                        str(a["roleDefinitionId"]),
                        f"via group {group.get('displayName') or gid}",
                        a.get("directoryScopeId"),
                        group_id=gid,
                    )
        except (GraphError, TdGraphError) as exc:
            report.errors.append(f"could not read the role assignments of group {group.get('displayName') or gid}: {exc}")
