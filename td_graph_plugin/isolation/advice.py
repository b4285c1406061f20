"""A failed step -> what happened and what the analyst should do next (graph-facts §9).

Graph answers ``403 Authorization_RequestDenied`` both when the app lacks an application
permission and when the target holds an admin role the app's own directory role cannot
manage.  The advice tells the two apart with what is known: the target's roles (from the
guard rails) and, when they can be read, the app's granted permissions.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import (
    AuthError,
    GraphBadRequest,
    GraphConditionalAccess,
    GraphError,
    GraphForbidden,
    GraphNotFound,
    GraphResponseError,
    GraphThrottled,
    GraphTransient,
    GraphUnauthorized,
    TdGraphError,
)

__all__ = ["STEP_PERMISSIONS", "GUARD_PERMISSIONS", "GUIDE_SECTION", "HIGHER_ROLE", "advise", "describe", "error_fields"]

GUIDE_SECTION = "the onboarding guide's 'User Isolator Permissions' section"

# Application permissions that allow each write, least privileged first (graph-facts §9).
STEP_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "disable": ("User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
    "enable": ("User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
    "revoke_sessions": ("User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
    "force_password_change": ("User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All"),
}

# What the guard rails read beyond User.Read.All / Directory.Read.All: PIM eligibility.
# https://learn.microsoft.com/graph/api/rbacapplication-list-roleeligibilityscheduleinstances?view=graph-rest-1.0
# https://learn.microsoft.com/graph/api/privilegedaccessgroup-list-eligibilityscheduleinstances?view=graph-rest-1.0
GUARD_PERMISSIONS: tuple[str, ...] = ("RoleEligibilitySchedule.Read.Directory", "PrivilegedEligibilitySchedule.Read.AzureADGroup")

# Why the higher directory role belongs to the isolation app only (issue 13, High 3): a
# directory role on the collector's app would let whoever holds the collector's secret (on
# every log shipper) reset or lock out administrators.
HIGHER_ROLE = (
    "Graph lets an app change a privileged account only if the app itself holds a higher directory role "
    "(Privileged Authentication Administrator; for a Global Administrator target Privileged Authentication "
    "Administrator or Global Administrator). Never give that role to the collector's app: its secret sits on every "
    "log shipper, and the role would let it reset and lock out administrators. Contain this account by hand in the "
    "Entra admin center, or, if you must isolate admins with td-graph, assign the role only to the separate isolation "
    "app (tenants[].isolation), whose credential only isolate/release load"
)
_PASSWORD_ROLE = (
    "app-only password changes also need the acting app to hold at least the User Administrator directory role: "
    "assign it to the separate isolation app (tenants[].isolation), never to the collector's app"
)

# Fixed words per error class: an audit record says what kind of failure it was, never the
# exception's own text (which may quote a request, a header or a secret).
_KINDS: tuple[tuple[type, str], ...] = (
    (GraphNotFound, "not found"),
    (GraphThrottled, "throttled"),
    (GraphConditionalAccess, "blocked by Conditional Access"),
    (GraphUnauthorized, "authentication rejected"),
    (GraphForbidden, "access denied"),
    (GraphBadRequest, "request rejected"),
    (GraphTransient, "service or network unavailable"),
    (GraphResponseError, "unexpected response"),
    (GraphError, "Graph error"),
    (AuthError, "no token: the credential was refused or the login service could not be reached"),
)
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_REQUEST_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z\-]{0,63}")


def _code(exc: BaseException) -> str:
    code = getattr(exc, "code", "") or ""
    return code if isinstance(code, str) and _CODE.fullmatch(code) else ""


def describe(exc: BaseException) -> str:
    """A fixed, bounded description of ``exc``: its kind, HTTP status and Graph error code.

    Never the exception's message: that is free text (a Graph message may echo the request; a
    library's may hold a URL or a header) and audit records go to the SIEM.  The request id
    travels in its own field (``error_fields``)."""
    status = getattr(exc, "status", None)
    status = status if isinstance(status, int) and 100 <= status <= 599 else None
    code = _code(exc)
    what = (f"HTTP {status}" if status else "") + (f" {code}" if code else "")
    for cls, words in _KINDS:
        if isinstance(exc, cls):
            return f"{words} ({what.strip()})" if what.strip() else words
    if isinstance(exc, TdGraphError):
        return f"td-graph error ({type(exc).__name__})"
    return f"unexpected error ({type(exc).__name__})"


def _permission_hint(step: str) -> str:
    perms = STEP_PERMISSIONS.get(step, ())
    first = perms[0] if perms else "the isolation permissions"
    extra = f"; {_PASSWORD_ROLE}" if step == "force_password_change" else ""
    return (
        f"the app lacks the application permission {first} ({GUIDE_SECTION}): add it to the isolation app "
        f"(tenants[].isolation), grant admin consent, then check with `td-graph doctor`{extra}"
    )


def advise(
    step: str,
    exc: BaseException,
    *,
    privileged: bool = False,
    roles: str = "",
    granted: set[str] | None = None,
) -> tuple[str, str]:
    """(detail, hint) for a step that raised ``exc``; the detail is ``describe(exc)``-based."""
    detail = describe(exc)
    if isinstance(exc, GraphNotFound):
        if step == "resolve":
            code = _code(exc)
            return (
                "user not found (HTTP 404" + (f" {code})" if code else ")"),
                "nothing was changed: check the UPN or object id (a renamed user keeps its object id; "
                "a guest's UPN contains #EXT#)",
            )
        return detail, "the user disappeared after it was resolved (deleted?): check the directory's deleted users"
    if isinstance(exc, GraphThrottled):
        wait = getattr(exc, "retry_after", None)
        after = f" (Graph asks to wait {wait:.0f} s)" if isinstance(wait, (int, float)) else ""
        return (
            f"throttled: Graph kept answering 429 after the client's retries{after}",
            "wait, then run the same command again: steps that already took effect are skipped",
        )
    if isinstance(exc, GraphConditionalAccess):
        return detail, "a Conditional Access policy blocks td-graph's app: exclude the app's service principal or use a compliant location"
    if isinstance(exc, (GraphUnauthorized, AuthError)):
        return detail, "td-graph could not authenticate: run `td-graph doctor -c FILE` to check the credential"
    if isinstance(exc, GraphForbidden):  # includes GraphPermissionError
        if step in ("resolve", "guard", "verify"):
            return detail, "reading users and directory roles needs User.Read.All and Directory.Read.All (Required in the onboarding guide)"
        perms = STEP_PERMISSIONS.get(step, ())
        if granted is not None and perms and not any(p in granted for p in perms):
            return detail, _permission_hint(step)
        if privileged:
            return detail, f"the target holds {roles or 'a privileged directory role'}: {HIGHER_ROLE}"
        if granted is not None:
            if step == "force_password_change":
                return detail, _PASSWORD_ROLE[0].upper() + _PASSWORD_ROLE[1:] + " (Privileged Authentication Administrator for admin targets)"
            return detail, (
                "the permission is granted, so Graph refused the target itself: the account may hold an "
                f"admin role td-graph could not see. {HIGHER_ROLE}"
            )
        return detail, (
            f"either {_permission_hint(step)}; or the target holds an admin role and {HIGHER_ROLE[0].lower()}{HIGHER_ROLE[1:]}"
        )
    if isinstance(exc, GraphBadRequest):
        if step == "force_password_change":
            return detail, (
                "Graph rejected the password flag: federated or on-premises-synced accounts must be handled "
                "in on-premises AD (or need password writeback)"
            )
        return detail, "Graph rejected the request; report it with the request id"
    if isinstance(exc, GraphTransient):
        return detail, "Graph or the network failed after the client's retries: run the same command again (completed steps are skipped)"
    if isinstance(exc, (GraphError, TdGraphError)):
        return detail, "run the same command again; if it persists, report it with the request id"
    return f"internal error: {detail}", "this is a td-graph bug: report it with the action id"


def error_fields(exc: Any) -> dict[str, Any]:
    """request_id / http_status / error_code of a Graph error, for a StepResult (each bounded:
    they come from a response header and body)."""
    rid = getattr(exc, "request_id", None)
    status = getattr(exc, "status", None)
    return {
        "request_id": rid if isinstance(rid, str) and _REQUEST_ID.fullmatch(rid) else None,
        "http_status": status if isinstance(status, int) else None,
        "error_code": _code(exc) or None,
    }
