"""Guard rails that run before any write: protected accounts and privileged directory roles.

* Protected accounts (``isolation.protected_users``) are matched by object id *after* the
  target is resolved, and every entry is resolved too (``protected.py``: UPNs, object ids,
  mail and proxy addresses), so neither an alias nor the object id typed instead of the UPN
  slips past.  An entry that resolves to no user, or whose lookup fails, refuses the
  isolation (fail closed).
* Privileged roles: active directory role assignments of the user (direct), of the
  role-assignable groups it belongs to (``transitiveMemberOf`` with ``isAssignableToRole``),
  legacy ``directoryRole`` memberships, and PIM: eligible directory roles
  (``roleEligibilityScheduleInstances``) and PIM-for-Groups eligible membership or ownership
  of a role-assignable group (``privilegedAccess/group/eligibilityScheduleInstances``).
  Membership of a role-assignable group counts as privileged even without an active
  assignment (only Privileged Authentication Administrator or Global Administrator can change
  its members).  If any of these checks cannot be completed, it fails closed too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import GraphError, TdGraphError
from .advice import describe
from .model import Target
from .protected import entries_of, resolve_entry
from .resolve import graph_get, graph_pages, is_object_id, user_path

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
    unresolvable: list[str] = field(default_factory=list)  # protected_users entries that name no user
    protected_errors: list[str] = field(default_factory=list)  # protected_users entries that could not be checked
    errors: list[str] = field(default_factory=list)  # role checks that could not be completed
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
                how = {"PIM-eligible ownership": "PIM-eligible owner"}.get(g.get("via", ""), "PIM-eligible member" if g.get("via") else "member")
                parts.append(f"{how} of role-assignable group {g.get('displayName') or g['id']}")
        return "; ".join(parts)

    def _rid(self, request_id: str | None) -> None:
        if request_id:
            self.request_ids.append(request_id)


# --------------------------------------------------------------------------- protected


def check_protected(client: Any, target: Target, entries: Iterable[str], report: GuardReport) -> None:
    """Set ``report.protected_by`` when ``target`` is one of ``entries``; otherwise fill
    ``report.unresolvable`` / ``report.protected_errors`` with the entries that name no user or
    could not be checked (each of which refuses the isolation)."""
    tid = target.id.lower()
    upn = (target.user_principal_name or "").lower()
    pending = entries_of(entries)
    for entry in pending:  # a textual match needs no request
        if (is_object_id(entry) and entry.lower() == tid) or entry.lower() == upn:
            report.protected_by = entry
            return
    for entry in pending:
        res = resolve_entry(client, entry)
        for rid in res.request_ids:
            report._rid(rid)
        if tid in res.ids:
            report.protected_by = entry
            return
        if res.error is not None:
            report.protected_errors.append(f"{entry!r} ({res.error})")
        elif not res.ids:
            report.unresolvable.append(entry)


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
    items, rids = graph_pages(client, path, params)
    for rid in rids:
        report._rid(rid)
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
            log.debug("role definition %s: %s", definition_id, describe(exc))
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
        report.errors.append(f"could not read the user's role assignments ({describe(exc)})")
    try:
        memberships = _pages(
            client,
            user_path(target.id) + "/transitiveMemberOf",
            {"$select": "id,displayName,isAssignableToRole,roleTemplateId"},
            report,
        )
    except (GraphError, TdGraphError) as exc:
        report.errors.append(f"could not read the user's group memberships ({describe(exc)})")
        memberships = []
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
            for a in _assignments(client, gid, report) + _eligible_roles(client, gid, report):
                if a.get("roleDefinitionId"):
                    add(
                        str(a["roleDefinitionId"]),
                        f"via group {group.get('displayName') or gid}",
                        a.get("directoryScopeId"),
                        group_id=gid,
                    )
        except (GraphError, TdGraphError) as exc:
            report.errors.append(f"could not read the role assignments of group {group.get('displayName') or gid} ({describe(exc)})")
    check_eligibility(client, target, report, add)


# --------------------------------------------------------------------------- PIM eligibility

# https://learn.microsoft.com/graph/api/rbacapplication-list-roleeligibilityscheduleinstances?view=graph-rest-1.0
# (RoleEligibilitySchedule.Read.Directory; principalId supports $filter eq)
ROLE_ELIGIBILITY = "/roleManagement/directory/roleEligibilityScheduleInstances"
# https://learn.microsoft.com/graph/api/privilegedaccessgroup-list-eligibilityscheduleinstances?view=graph-rest-1.0
# (PrivilegedEligibilitySchedule.Read.AzureADGroup; a $filter on principalId or groupId is required)
GROUP_ELIGIBILITY = "/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances"
PIM_HINT = (
    "reading PIM eligibility needs RoleEligibilitySchedule.Read.Directory and "
    "PrivilegedEligibilitySchedule.Read.AzureADGroup (and PIM, i.e. Entra ID P2 or ID Governance, in the tenant)"
)


def _eligible_roles(client: Any, principal_id: str, report: GuardReport) -> list[dict[str, Any]]:
    return _pages(client, ROLE_ELIGIBILITY, {"$filter": f"principalId eq '{principal_id}'"}, report)


def check_eligibility(client: Any, target: Target, report: GuardReport, add: Any) -> None:
    """PIM: the user's eligible directory roles, and the role-assignable groups it is eligible
    to join or own (PIM for Groups), with the roles those groups hold; failures go to ``errors``."""
    try:
        for e in _eligible_roles(client, target.id, report):
            if e.get("roleDefinitionId"):
                add(str(e["roleDefinitionId"]), "PIM-eligible", e.get("directoryScopeId"))
    except (GraphError, TdGraphError) as exc:
        report.errors.append(f"could not check the user's PIM-eligible directory roles ({describe(exc)}; {PIM_HINT})")
    try:
        eligible = _pages(client, GROUP_ELIGIBILITY, {"$filter": f"principalId eq '{target.id}'"}, report)
    except (GraphError, TdGraphError) as exc:
        report.errors.append(f"could not check the user's PIM-eligible group memberships ({describe(exc)}; {PIM_HINT})")
        eligible = []
    known = {str(g.get("id") or "").lower() for g in report.role_assignable_groups}
    for e in eligible:
        gid = str(e.get("groupId") or "")
        access = "owner" if str(e.get("accessId") or "").lower() == "owner" else "member"
        if not gid or gid.lower() in known:
            continue
        try:
            group, rid = graph_get(client, f"/groups/{gid}", {"$select": "id,displayName,isAssignableToRole"})
            report._rid(rid)
        except (GraphError, TdGraphError) as exc:
            report.errors.append(f"could not read group {gid}, which the user is PIM-eligible to join ({describe(exc)})")
            continue
        if group.get("isAssignableToRole") is not True:
            continue  # PIM for Groups on an ordinary group: no directory role can reach it
        known.add(gid.lower())
        name = group.get("displayName") or gid
        via = "PIM-eligible membership" if access == "member" else "PIM-eligible ownership"
        report.role_assignable_groups.append({"id": gid, "displayName": group.get("displayName"), "via": via})
        try:
            for a in _assignments(client, gid, report) + _eligible_roles(client, gid, report):
                if a.get("roleDefinitionId"):
                    add(str(a["roleDefinitionId"]), f"via {via} of group {name}", a.get("directoryScopeId"), group_id=gid)
        except (GraphError, TdGraphError) as exc:
            report.errors.append(f"could not read the roles of group {name} ({describe(exc)})")
