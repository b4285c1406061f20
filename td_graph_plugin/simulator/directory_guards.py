"""The reads behind isolation's guard rails that ``directory_writes`` does not serve: alias
lookups, one group, and PIM eligibility (directory roles and PIM for Groups).

Served (v1.0 and beta), each as Microsoft documents it::

    GET /users?$filter=mail eq '..' or proxyAddresses/any(p:p eq 'smtp:..')
        https://learn.microsoft.com/graph/api/user-list?view=graph-rest-1.0 ; mail eq and
        proxyAddresses eq work by default, no ConsistencyLevel header
        (https://learn.microsoft.com/graph/aad-advanced-queries, "Support for filter by
        properties"). Without $filter the request is the endpoint table's /users list.
    GET /groups/{id}?$select=id,displayName,isAssignableToRole
        https://learn.microsoft.com/graph/api/group-get?view=graph-rest-1.0
        (GroupMember.Read.All | Group.Read.All | Directory.Read.All | ...)
    GET /roleManagement/directory/roleEligibilityScheduleInstances?$filter=principalId eq '{id}'
        https://learn.microsoft.com/graph/api/rbacapplication-list-roleeligibilityscheduleinstances?view=graph-rest-1.0
        (RoleEligibilitySchedule.Read.Directory | RoleEligibilitySchedule.ReadWrite.Directory |
        RoleManagement.Read.All | RoleManagement.Read.Directory | RoleManagement.ReadWrite.Directory)
    GET /identityGovernance/privilegedAccess/group/eligibilityScheduleInstances?$filter=principalId eq '{id}'
        https://learn.microsoft.com/graph/api/privilegedaccessgroup-list-eligibilityscheduleinstances?view=graph-rest-1.0
        (PrivilegedEligibilitySchedule.Read.AzureADGroup | PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup);
        the $filter on principalId or groupId is required: without it, 400.

State: ``pim(t)`` (kept in ``t.ext["pim"]``): eligible role assignments and eligible group
memberships/ownerships.  Groups and role names come from ``directory_writes``' model, read
through ``t.ext["directory"]`` (this module does not import that one: it imports this one).
Knobs: ``eligible_role(principal, role)``, ``eligible_for_group(principal, group_id,
access)``, ``fail_next(op, status)`` (op: role_eligibility | group_eligibility | users_filter
| get_group).
"""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any

from .endpoints import lookup
from .handlers import handle
from .odata import ODataError
from .request_base import GraphRequest
from .routes import SimRequest, SimResponse, graph_error, page_response, register_route

__all__ = ["install", "pim", "SimPim"]

PERM_USER_READ = "User.Read.All|User.ReadWrite.All|Directory.Read.All|Directory.ReadWrite.All"
PERM_GROUP_READ = "GroupMember.Read.All|Group.Read.All|Group.ReadWrite.All|Directory.Read.All|Directory.ReadWrite.All"
PERM_ROLE_ELIGIBILITY = ("RoleEligibilitySchedule.Read.Directory|RoleEligibilitySchedule.ReadWrite.Directory|"
                         "RoleManagement.Read.All|RoleManagement.Read.Directory|RoleManagement.ReadWrite.Directory")
PERM_GROUP_ELIGIBILITY = "PrivilegedEligibilitySchedule.Read.AzureADGroup|PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup"
_OPS = ("role_eligibility", "group_eligibility", "users_filter", "get_group")
_STATUS = {403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
           503: ("serviceNotAvailable", "The service is temporarily unavailable.")}


class SimPim:
    """PIM eligibility of one simulated tenant (see the module docstring)."""

    def __init__(self, tenant: Any) -> None:
        self.tenant = tenant
        self.lock = threading.RLock()
        self.role_eligibilities: list[dict[str, Any]] = []
        self.group_eligibilities: list[dict[str, Any]] = []
        self._fail: dict[str, list[int]] = {}

    def _role_id(self, role: str) -> str:
        d = self.tenant.ext.get("directory")
        return d.role_id(role) if d is not None else role

    def eligible_role(self, principal_id: str, role: str, scope: str = "/") -> dict[str, Any]:
        item = {"id": str(uuid.uuid4()), "principalId": principal_id, "roleDefinitionId": self._role_id(role),
                "directoryScopeId": scope, "appScopeId": None, "startDateTime": "2026-01-05T09:00:00Z",
                "endDateTime": None, "memberType": "Direct", "roleEligibilityScheduleId": str(uuid.uuid4())}
        with self.lock:
            self.role_eligibilities.append(item)
        return item

    def eligible_for_group(self, principal_id: str, group_id: str, access: str = "member") -> dict[str, Any]:
        item = {"id": f"{group_id}_{access}_{principal_id}", "startDateTime": "2026-01-05T09:00:00Z",
                "endDateTime": None, "accessId": access, "principalId": principal_id, "groupId": group_id,
                "memberType": "Direct", "eligibilityScheduleId": str(uuid.uuid4())}
        with self.lock:
            self.group_eligibilities.append(item)
        return item

    def fail_next(self, op: str, status: int = 503, count: int = 1) -> None:
        if op not in _OPS:
            raise ValueError(f"unknown op {op!r}; known: {', '.join(_OPS)}")
        with self.lock:
            self._fail.setdefault(op, []).extend([status] * count)

    def take_failure(self, op: str) -> SimResponse | None:
        with self.lock:
            queue = self._fail.get(op)
            if not queue:
                return None
            status = queue.pop(0)
        code, message = _STATUS.get(status, ("generalException", "An unspecified error has occurred."))
        return graph_error(status, code, message)


def pim(tenant: Any) -> SimPim:
    """The tenant's PIM model (created on first use)."""
    ext = tenant.ext
    p = ext.get("pim")
    if p is None:
        with getattr(tenant, "lock", threading.RLock()):
            p = ext.get("pim")
            if p is None:
                p = ext["pim"] = SimPim(tenant)
    return p


def _select(req: SimRequest) -> list[str] | None:
    raw = req.query.get("$select")
    return [f.strip() for f in raw.split(",") if f.strip()] if raw else None


def _eq_filter(req: SimRequest, fields: tuple[str, ...]) -> tuple[str, str] | SimResponse | None:
    """``field eq 'value'`` for one of ``fields``: (field, value), None without $filter, or a 400."""
    flt = req.query.get("$filter")
    if not flt:
        return None
    m = re.fullmatch(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", flt)
    if m is None or m.group(1).lower() not in {f.lower() for f in fields}:
        return graph_error(400, "BadRequest", f"Invalid filter clause: the simulator supports {' or '.join(fields)} eq '...', got {flt!r}.")
    field = next(f for f in fields if f.lower() == m.group(1).lower())
    return field, m.group(2).replace("''", "'")


# --------------------------------------------------------------------------- handlers

_ADDR_CLAUSE = re.compile(
    r"\s*(?:(mail|userPrincipalName)\s+eq\s+'((?:[^']|'')*)'|proxyAddresses/any\(\s*(\w+)\s*:\s*\3\s+eq\s+'((?:[^']|'')*)'\s*\))\s*",
    re.IGNORECASE)


def _users(req: SimRequest) -> SimResponse:
    """``/users``: the alias lookup when $filter is given, else the endpoint table's list."""
    flt = req.query.get("$filter")
    if not flt:
        return _table_list(req)
    fail = pim(req.tenant).take_failure("users_filter")
    if fail is not None:
        return fail
    wanted: list[tuple[str, str]] = []
    for part in re.split(r"\s+or\s+", flt.strip(), flags=re.IGNORECASE):
        m = _ADDR_CLAUSE.fullmatch(part)
        if m is None:
            return graph_error(400, "Request_UnsupportedQuery",
                               "Unsupported or invalid query filter clause specified for property of resource 'User'.")
        if m.group(1):
            wanted.append((m.group(1).lower(), m.group(2).replace("''", "'").casefold()))
        else:
            wanted.append(("proxyaddresses", m.group(4).replace("''", "'").casefold()))
    items = []
    for user in list(req.tenant.collection("users").items):
        values = {"mail": [user.get("mail")], "userprincipalname": [user.get("userPrincipalName")],
                  "proxyaddresses": list(user.get("proxyAddresses") or [])}
        if any(any(isinstance(v, str) and v.casefold() == want for v in values[field]) for field, want in wanted):
            items.append(user)
    select = _select(req) or ["id", "displayName", "userPrincipalName", "mail"]
    return page_response(req, [{f: u.get(f) for f in select} for u in items], context="users", max_top=999)



def _table_list(req: SimRequest) -> SimResponse:
    ep = lookup(req.version, "/users")
    sim = req.sim
    gr = GraphRequest(tenant=req.tenant, version=req.version, endpoint=ep, query=dict(req.query),
                      prefer=(req.headers.get("prefer") or "").lower(), base_url=sim.base_url, now=sim.now(),
                      codec=sim._codec, snapshots=sim._snapshots, page_size=sim._page_sizes.get(ep.path.lower()),
                      take_empty_page=lambda: sim._knobs.empty_pages.take(f"/{req.version}{req.path}") is not None)
    try:
        out = handle(gr)
    except ODataError as exc:
        return graph_error(exc.status, exc.code or "BadRequest", exc.message)
    return SimResponse(out.status, out.body, {**out.headers, "Content-Type": out.content_type})


def _group(req: SimRequest) -> SimResponse:
    fail = pim(req.tenant).take_failure("get_group")
    if fail is not None:
        return fail
    d = req.tenant.ext.get("directory")
    gid = req.match.group(1)
    group = None
    if d is not None:
        with d.lock:
            group = dict(d.groups.get(gid) or d.groups.get(gid.lower()) or {}) or None
    if group is None:
        return graph_error(404, "Request_ResourceNotFound",
                           f"Resource '{gid}' does not exist or one of its queried reference-property objects are not present.")
    select = _select(req)
    body = {"@odata.context": f"{req.sim.base_url}/{req.version}/$metadata#groups/$entity"}
    body.update({k: v for k, v in group.items() if select is None or k in select})
    return SimResponse(200, body)


def _role_eligibility(req: SimRequest) -> SimResponse:
    p = pim(req.tenant)
    fail = p.take_failure("role_eligibility")
    if fail is not None:
        return fail
    flt = _eq_filter(req, ("principalId", "roleDefinitionId"))
    if isinstance(flt, SimResponse):
        return flt
    with p.lock:
        items = [dict(i) for i in p.role_eligibilities]
    if flt is not None:
        items = [i for i in items if str(i[flt[0]]).lower() == flt[1].lower()]
    return page_response(req, items, context="roleManagement/directory/roleEligibilityScheduleInstances", max_top=999)


def _group_eligibility(req: SimRequest) -> SimResponse:
    p = pim(req.tenant)
    fail = p.take_failure("group_eligibility")
    if fail is not None:
        return fail
    flt = _eq_filter(req, ("principalId", "groupId"))
    if flt is None:
        return graph_error(400, "BadRequest", "The request requires a filter on principalId or groupId.")
    if isinstance(flt, SimResponse):
        return flt
    with p.lock:
        items = [dict(i) for i in p.group_eligibilities if str(i[flt[0]]).lower() == flt[1].lower()]
    return page_response(req, items, context="identityGovernance/privilegedAccess/group/eligibilityScheduleInstances",
                         max_top=999)


_ROUTES = (
    ("GET", r"/users", _users, (PERM_USER_READ,)),
    ("GET", r"/groups/(?!delta$)([^/()]+)", _group, (PERM_GROUP_READ,)),
    ("GET", r"/roleManagement/directory/roleEligibilityScheduleInstances", _role_eligibility, (PERM_ROLE_ELIGIBILITY,)),
    ("GET", r"/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances", _group_eligibility,
     (PERM_GROUP_ELIGIBILITY,)),
)


def install() -> None:
    """(Re-)register the routes; safe to call any number of times."""
    for method, pattern, handler, permissions in _ROUTES:
        register_route(method, pattern, handler, permissions=permissions, throttle="directory")


install()
