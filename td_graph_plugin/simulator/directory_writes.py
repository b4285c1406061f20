"""Directory writes and role reads for user isolation (graph-facts §9), as simulator routes.

Served (v1.0 and beta)::

    GET   /users/{id|upn}                    (and /users('{upn}')) with $select
    PATCH /users/{id}                        accountEnabled, passwordProfile      -> 204
    POST  /users/{id}/revokeSignInSessions                                        -> 200 {"value": true}
    GET   /users/{id}/transitiveMemberOf     (and memberOf) groups, isAssignableToRole
    GET   /roleManagement/directory/roleAssignments?$filter=principalId eq '{id}'
    GET   /roleManagement/directory/roleDefinitions[/{id}]

Model (per tenant, ``directory(t)``, kept in ``t.ext["directory"]``): built-in role
definitions with their real template ids, role assignments (direct, or to a role-assignable
group), groups and their members, and the directory roles td-graph's *own app* holds (default
User Administrator).  Users stay in ``t.users``; ``signInSessionsValidFromDateTime`` and
``passwordProfile`` are kept beside them (they are not part of the ``/users`` listings).

Answers like the real service:

* PATCH 204 (no body); revoke 200 ``{"@odata.context": ..., "value": true}`` (the documented
  204 is a known documentation error).
* 403 ``Authorization_RequestDenied`` "Insufficient privileges to complete the operation." when
  the app lacks the permission (accountEnabled: User.EnableDisableAccount.All |
  User.ReadWrite.All | Directory.ReadWrite.All; revoke: User.RevokeSessions.All |
  User.ReadWrite.All | Directory.ReadWrite.All; passwordProfile: User-PasswordProfile.ReadWrite.All
  | User.ReadWrite.All, and the app must hold at least User Administrator), and when the target
  is privileged beyond the app's own role: a Global Administrator target needs an app holding
  Global Administrator or Privileged Authentication Administrator; any other admin role, or
  membership of a role-assignable group, needs Privileged Authentication Administrator (or GA).
* 404 ``Request_ResourceNotFound`` "Resource '{id}' does not exist or one of its queried
  reference-property objects are not present." for unknown users.

Knobs (``directory(t)``): ``add_user``, ``assign_role``, ``add_group``, ``set_app_roles``,
``fail_next(op, status, count, retry_after)`` (op: revoke | disable | enable | password |
get_user | roles), and ``writes`` (= ``t.ext["writes"]``: every write attempt as
``{method, path, body, status}``; a password, if one were sent, is logged as ``"***"``).

Importing the module registers the routes; ``install()`` re-registers them (idempotent).
"""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any

from . import directory_guards  # the guard rails' other reads (aliases, groups, PIM)
from .routes import SimRequest, SimResponse, graph_error, page_response, register_route
from .timefmt import format_ts

__all__ = [
    "install",
    "directory",
    "SimDirectory",
    "ROLE_DEFINITIONS",
    "GLOBAL_ADMINISTRATOR",
    "PRIVILEGED_AUTHENTICATION_ADMINISTRATOR",
    "USER_ADMINISTRATOR",
    "HELPDESK_ADMINISTRATOR",
    "SECURITY_ADMINISTRATOR",
]

GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_AUTHENTICATION_ADMINISTRATOR = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
USER_ADMINISTRATOR = "fe930be7-5e62-47db-91af-98c3a49a38b1"
HELPDESK_ADMINISTRATOR = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
SECURITY_ADMINISTRATOR = "194ae4cb-b126-40b2-bd5b-6091b380977d"
DIRECTORY_READERS = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"

# Built-in role definitions: for these, definition id == template id (as in Entra).
ROLE_DEFINITIONS: dict[str, str] = {
    GLOBAL_ADMINISTRATOR: "Global Administrator",
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR: "Privileged Authentication Administrator",
    USER_ADMINISTRATOR: "User Administrator",
    HELPDESK_ADMINISTRATOR: "Helpdesk Administrator",
    SECURITY_ADMINISTRATOR: "Security Administrator",
    DIRECTORY_READERS: "Directory Readers",
}
_NAMES = {name.lower(): tid for tid, name in ROLE_DEFINITIONS.items()}

PERM_USER_READ = "User.Read.All|User.ReadWrite.All|Directory.Read.All|Directory.ReadWrite.All"
PERM_ENABLE_DISABLE = "User.EnableDisableAccount.All|User.ReadWrite.All|Directory.ReadWrite.All"
PERM_REVOKE = "User.RevokeSessions.All|User.ReadWrite.All|Directory.ReadWrite.All"
PERM_PASSWORD = "User-PasswordProfile.ReadWrite.All|User.ReadWrite.All"
PERM_MEMBERSHIP = "Directory.Read.All|GroupMember.Read.All|Group.Read.All|Directory.ReadWrite.All"
PERM_ROLES = ("RoleManagement.Read.Directory|RoleManagement.Read.All|RoleManagement.ReadWrite.Directory|"
              "Directory.Read.All|Directory.ReadWrite.All")

_DENIED = (403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
_STATUS_CODES = {
    400: ("Request_BadRequest", "Invalid request."),
    403: _DENIED[1:],
    404: ("Request_ResourceNotFound", "Resource does not exist."),
    429: ("TooManyRequests", "Please retry again later."),
    500: ("generalException", "An unspecified error has occurred."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable for maintenance or is overloaded. "
          "You may repeat the request after a delay, the length of which may be specified in a Retry-After header."),
}
_USER_PROPS = ("businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone", "officeLocation",
               "preferredLanguage", "surname", "userPrincipalName", "id")
_PATCHABLE = {"accountEnabled", "passwordProfile"}
_PASSWORD_PROFILE_KEYS = {"forceChangePasswordNextSignIn", "forceChangePasswordNextSignInWithMfa", "password"}


def _not_found(key: str) -> SimResponse:
    return graph_error(404, "Request_ResourceNotFound",
                       f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.")


class SimDirectory:
    """The isolation-relevant part of one simulated tenant's directory (see module docstring)."""

    def __init__(self, tenant: Any) -> None:
        self.tenant = tenant
        self.lock = threading.RLock()
        self.role_definitions: dict[str, dict[str, Any]] = {
            tid: {"id": tid, "templateId": tid, "displayName": name, "isBuiltIn": True, "isEnabled": True}
            for tid, name in ROLE_DEFINITIONS.items()
        }
        self.role_assignments: list[dict[str, Any]] = []
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}  # group id -> user ids
        self.app_roles: set[str] = {USER_ADMINISTRATOR}
        self.extra: dict[str, dict[str, Any]] = {}  # user id -> signInSessionsValidFromDateTime, passwordProfile
        self._fail: dict[str, list[tuple[int, float | None, str | None]]] = {}
        _ext(tenant).setdefault("writes", [])

    # ------------------------------------------------------------------ knobs
    @property
    def writes(self) -> list[dict[str, Any]]:
        return _ext(self.tenant)["writes"]

    def role_id(self, role: str) -> str:
        """A role definition id from a template id or a display name."""
        if role in self.role_definitions:
            return role
        tid = _NAMES.get(role.lower())
        if tid is None:
            raise KeyError(f"unknown role {role!r}; known: {sorted(ROLE_DEFINITIONS.values())}")
        return tid

    def add_user(self, upn: str, display_name: str | None = None, *, user_type: str = "Member",
                 on_premises_sync: bool | None = None, enabled: bool = True) -> dict[str, Any]:
        """A user with a chosen UPN (for tests that type names)."""
        t = self.tenant
        base = t.add_users(1)[0]
        fields = {
            "userPrincipalName": upn,
            "mail": upn if user_type == "Member" else base.get("mail"),
            "displayName": display_name or upn.split("@")[0],
            "userType": user_type,
            "onPremisesSyncEnabled": on_premises_sync,
            "accountEnabled": enabled,
        }
        return _update_user(t, base["id"], fields)

    def assign_role(self, principal_id: str, role: str, scope: str = "/") -> dict[str, Any]:
        a = {"id": str(uuid.uuid4()), "principalId": principal_id, "roleDefinitionId": self.role_id(role),
             "directoryScopeId": scope}
        with self.lock:
            self.role_assignments.append(a)
        return a

    def add_group(self, name: str, members: list[str] = (), *, assignable: bool = True,
                  roles: list[str] = ()) -> dict[str, Any]:
        gid = str(uuid.uuid4())
        group = {"id": gid, "displayName": name, "isAssignableToRole": bool(assignable), "securityEnabled": True,
                 "mailEnabled": False, "groupTypes": []}
        with self.lock:
            self.groups[gid] = group
            self.members[gid] = set(members)
        for role in roles:
            self.assign_role(gid, role)
        return group

    def set_app_roles(self, *roles: str) -> None:
        """The directory roles td-graph's own app holds (names or template ids); none = no role."""
        with self.lock:
            self.app_roles = {self.role_id(r) for r in roles}

    def fail_next(self, op: str, status: int = 503, count: int = 1, *, retry_after: float | None = 0,
                  code: str | None = None) -> None:
        """The next ``count`` requests of ``op`` answer ``status`` (revoke, disable, enable,
        password, get_user, roles).  ``retry_after`` is sent for 429/503 (0 keeps tests fast)."""
        if op not in ("revoke", "disable", "enable", "password", "get_user", "roles"):
            raise ValueError(f"unknown op {op!r}")
        with self.lock:
            self._fail.setdefault(op, []).extend([(status, retry_after, code)] * count)

    def _take_failure(self, op: str) -> SimResponse | None:
        with self.lock:
            queue = self._fail.get(op)
            if not queue:
                return None
            status, retry_after, code = queue.pop(0)
        default_code, message = _STATUS_CODES.get(status, ("generalException", "An unspecified error has occurred."))
        resp = graph_error(status, code or default_code, message)
        if retry_after is not None and status in (429, 503):
            resp.headers["Retry-After"] = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
        return resp

    # ------------------------------------------------------------------ model
    def find_user(self, key: str) -> dict[str, Any] | None:
        """By object id or (case-insensitive) user principal name, as Graph resolves /users/{key}."""
        t, k = self.tenant, key.strip()
        return t.find_object("users", k) or t.find_object("users", k, key_field="userPrincipalName")

    def user_roles(self, user_id: str) -> list[str]:
        """Role definition ids the user holds, directly or through a role-assignable group."""
        with self.lock:
            principals = {user_id} | {g for g, m in self.members.items() if user_id in m and self.groups[g]["isAssignableToRole"]}
            return [a["roleDefinitionId"] for a in self.role_assignments if a["principalId"] in principals]

    def in_role_assignable_group(self, user_id: str) -> bool:
        with self.lock:
            return any(user_id in m and self.groups[g]["isAssignableToRole"] for g, m in self.members.items())

    def app_may_change(self, user_id: str) -> bool:
        """Who may change sensitive attributes of whom (graph-facts §9, simplified)."""
        roles = set(self.user_roles(user_id)) - {DIRECTORY_READERS}
        app = self.app_roles
        if GLOBAL_ADMINISTRATOR in roles:
            return bool(app & {GLOBAL_ADMINISTRATOR, PRIVILEGED_AUTHENTICATION_ADMINISTRATOR})
        if roles or self.in_role_assignable_group(user_id):
            return bool(app & {GLOBAL_ADMINISTRATOR, PRIVILEGED_AUTHENTICATION_ADMINISTRATOR})
        return True

    def extras(self, user: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            e = self.extra.get(user["id"])
            if e is None:
                e = self.extra[user["id"]] = {
                    "signInSessionsValidFromDateTime": user.get("createdDateTime"),
                    "passwordProfile": {"password": None, "forceChangePasswordNextSignIn": False,
                                        "forceChangePasswordNextSignInWithMfa": False},
                }
            return e

    def log_write(self, req: SimRequest, status: int) -> None:
        body = req.json
        if isinstance(body, dict) and isinstance(body.get("passwordProfile"), dict) and "password" in body["passwordProfile"]:
            body = dict(body, passwordProfile=dict(body["passwordProfile"], password="***"))
        with self.lock:
            self.writes.append({"method": req.method, "path": req.path, "body": body, "status": status})


def _ext(tenant: Any) -> dict[str, Any]:
    ext = getattr(tenant, "ext", None)
    if ext is None:
        ext = {}
        try:
            tenant.ext = ext
        except AttributeError:  # pragma: no cover - SimTenant allows attributes
            pass
    return ext


def directory(tenant: Any) -> SimDirectory:
    """The tenant's directory model (created on first use)."""
    ext = _ext(tenant)
    d = ext.get("directory")
    if d is None:
        with getattr(tenant, "lock", threading.RLock()):
            d = ext.get("directory")
            if d is None:
                d = ext["directory"] = SimDirectory(tenant)
    return d


def _update_user(t: Any, user_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Copy-on-write update of a user that the next ``/users/delta`` round reports."""
    return t.update_object("users", user_id, **fields)


def _now_text(req: SimRequest) -> str:
    return format_ts(req.sim.now(), frac=True)


def _select(req: SimRequest) -> list[str] | None:
    raw = req.query.get("$select")
    if not raw:
        return None
    return [f.strip() for f in raw.split(",") if f.strip()]


def _user_view(d: SimDirectory, user: dict[str, Any], select: list[str] | None, req: SimRequest) -> dict[str, Any]:
    e = d.extras(user)
    full = {k: v for k, v in user.items() if k != "visible_at"}
    full["signInSessionsValidFromDateTime"] = e["signInSessionsValidFromDateTime"]
    full["passwordProfile"] = dict(e["passwordProfile"], password=None)
    fields = select or list(_USER_PROPS)
    out: dict[str, Any] = {"@odata.context": f"{req.sim.base_url}/{req.version}/$metadata#users/$entity"}
    for f in fields:
        out[f] = full.get(f)
    return out


# --------------------------------------------------------------------------- handlers


def _get_user(req: SimRequest) -> SimResponse:
    d = directory(req.tenant)
    fail = d._take_failure("get_user")
    if fail is not None:
        return fail
    key = req.match.group(1).replace("''", "'")
    user = d.find_user(key)
    if user is None:
        return _not_found(key)
    return SimResponse(200, _user_view(d, user, _select(req), req))


def _patch_user(req: SimRequest) -> SimResponse:
    t, d = req.tenant, directory(req.tenant)
    key = req.match.group(1)
    body = req.json
    if not isinstance(body, dict) or not body:
        d.log_write(req, 400)
        return graph_error(400, "Request_BadRequest", "A request body is required with at least one property.")
    unknown = set(body) - _PATCHABLE
    if unknown:
        d.log_write(req, 400)
        return graph_error(400, "Request_BadRequest", f"Invalid property '{sorted(unknown)[0]}'.")
    pp = body.get("passwordProfile")
    if "passwordProfile" in body and (not isinstance(pp, dict) or set(pp) - _PASSWORD_PROFILE_KEYS):
        d.log_write(req, 400)
        return graph_error(400, "Request_BadRequest", "Invalid value for property 'passwordProfile'.")
    if "accountEnabled" in body and not isinstance(body["accountEnabled"], bool):
        d.log_write(req, 400)
        return graph_error(400, "Request_BadRequest", "Invalid value for property 'accountEnabled'.")
    # Knobs, then the checks in the service's order: permission, existence, privilege.
    ops = []
    if "accountEnabled" in body:
        ops.append("disable" if body["accountEnabled"] is False else "enable")
    if "passwordProfile" in body:
        ops.append("password")
    for op in ops:
        fail = d._take_failure(op)
        if fail is not None:
            d.log_write(req, fail.status)
            return fail
    if "accountEnabled" in body and not t.has_permission(PERM_ENABLE_DISABLE):
        d.log_write(req, 403)
        return graph_error(*_DENIED)
    if "passwordProfile" in body:
        at_least_user_admin = d.app_roles & {USER_ADMINISTRATOR, PRIVILEGED_AUTHENTICATION_ADMINISTRATOR, GLOBAL_ADMINISTRATOR}
        if not t.has_permission(PERM_PASSWORD) or not at_least_user_admin:
            d.log_write(req, 403)
            return graph_error(*_DENIED)
    user, refusal = _writable_user(d, req, key)
    if refusal is not None:
        return refusal
    if "accountEnabled" in body:
        _update_user(t, user["id"], {"accountEnabled": body["accountEnabled"]})
    if "passwordProfile" in body:
        e = d.extras(user)
        with d.lock:
            profile = dict(e["passwordProfile"])
            for k in ("forceChangePasswordNextSignIn", "forceChangePasswordNextSignInWithMfa"):
                if k in pp:
                    profile[k] = bool(pp[k])
            e["passwordProfile"] = profile  # a password, if sent, is accepted and never stored
    d.log_write(req, 204)
    return SimResponse(204)



def _writable_user(d, req: SimRequest, key: str):  # type: ignore[no-untyped-def]
    """(user, None), or (None, the 404/403 Graph answers) — logged as a write either way."""
    user = d.find_user(key)
    if user is None:
        d.log_write(req, 404)
        return None, _not_found(key)
    if not d.app_may_change(user["id"]):
        d.log_write(req, 403)
        return None, graph_error(*_DENIED)
    return user, None

def _revoke(req: SimRequest) -> SimResponse:
    d = directory(req.tenant)
    key = req.match.group(1)
    fail = d._take_failure("revoke")
    if fail is not None:
        d.log_write(req, fail.status)
        return fail
    user, refusal = _writable_user(d, req, key)
    if refusal is not None:
        return refusal
    with d.lock:
        d.extras(user)["signInSessionsValidFromDateTime"] = _now_text(req)
    d.log_write(req, 200)
    return SimResponse(200, {"@odata.context": f"{req.sim.base_url}/{req.version}/$metadata#Edm.Boolean", "value": True})


def _member_of(req: SimRequest) -> SimResponse:
    d = directory(req.tenant)
    fail = d._take_failure("roles")
    if fail is not None:
        return fail
    key = req.match.group(1)
    user = d.find_user(key)
    if user is None:
        return _not_found(key)
    with d.lock:
        groups = [dict(g) for gid, g in sorted(d.groups.items()) if user["id"] in d.members.get(gid, ())]
    select = _select(req)
    items = []
    for g in groups:
        item = {"@odata.type": "#microsoft.graph.group"}
        item.update({k: v for k, v in g.items() if select is None or k in select})
        items.append(item)
    return page_response(req, items, context="directoryObjects", max_top=999)


_FILTER = re.compile(r"^\s*(principalId|roleDefinitionId)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


def _role_assignments(req: SimRequest) -> SimResponse:
    d = directory(req.tenant)
    fail = d._take_failure("roles")
    if fail is not None:
        return fail
    flt = req.query.get("$filter")
    with d.lock:
        items = [dict(a) for a in d.role_assignments]
    if flt:
        m = _FILTER.match(flt)
        if m is None:
            return graph_error(400, "BadRequest", f"Invalid filter clause: the simulator supports principalId eq '...' or roleDefinitionId eq '...', got {flt!r}.")
        fld = "principalId" if m.group(1).lower() == "principalid" else "roleDefinitionId"
        items = [a for a in items if a[fld].lower() == m.group(2).lower()]
    return page_response(req, items, context="roleManagement/directory/roleAssignments", max_top=999)


def _role_definition(req: SimRequest) -> SimResponse:
    d = directory(req.tenant)
    rd = d.role_definitions.get(req.match.group(1).lower())
    if rd is None:
        return _not_found(req.match.group(1))
    select = _select(req)
    body = {"@odata.context": f"{req.sim.base_url}/{req.version}/$metadata#roleManagement/directory/roleDefinitions/$entity"}
    body.update({k: v for k, v in rd.items() if select is None or k in select})
    return SimResponse(200, body)


def _role_definitions(req: SimRequest) -> SimResponse:
    d = directory(req.tenant)
    return page_response(req, [dict(v) for _, v in sorted(d.role_definitions.items())],
                         context="roleManagement/directory/roleDefinitions", max_top=999)


_USER_KEY = r"(?!delta$)([^/()]+)"
_ROUTES = (
    ("GET", r"/users/" + _USER_KEY, _get_user, (PERM_USER_READ,)),
    ("GET", r"/users\('(.+)'\)", _get_user, (PERM_USER_READ,)),
    ("PATCH", r"/users/" + _USER_KEY, _patch_user, ()),  # per-field permissions in the handler
    ("POST", r"/users/([^/()]+)/revokeSignInSessions", _revoke, (PERM_REVOKE,)),
    ("GET", r"/users/([^/()]+)/(?:transitiveMemberOf|memberOf)", _member_of, (PERM_MEMBERSHIP,)),
    ("GET", r"/roleManagement/directory/roleAssignments", _role_assignments, (PERM_ROLES,)),
    ("GET", r"/roleManagement/directory/roleDefinitions/([^/]+)", _role_definition, (PERM_ROLES,)),
    ("GET", r"/roleManagement/directory/roleDefinitions", _role_definitions, (PERM_ROLES,)),
)


def install() -> None:
    """(Re-)register the routes; safe to call any number of times."""
    for method, pattern, handler, permissions in _ROUTES:
        register_route(method, pattern, handler, permissions=permissions, throttle="directory")
    directory_guards.install()


install()
