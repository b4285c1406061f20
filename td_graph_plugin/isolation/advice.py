"""A failed step -> what happened and what the analyst should do next (graph-facts §9).

Graph answers ``403 Authorization_RequestDenied`` both when the app lacks an application
permission and when the target holds an admin role the app's own directory role cannot
manage.  The advice tells the two apart with what is known: the target's roles (from the
guard rails) and, when they can be read, the app's granted permissions.
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    AuthError,
    GraphBadRequest,
    GraphConditionalAccess,
    GraphError,
    GraphForbidden,
    GraphNotFound,
    GraphThrottled,
    GraphTransient,
    GraphUnauthorized,
    TdGraphError,
)

__all__ = ["STEP_PERMISSIONS", "GUIDE_SECTION", "advise"]

GUIDE_SECTION = "the onboarding guide's 'User Isolator Permissions' section"

# Application permissions that allow each write, least privileged first (graph-facts §9).
STEP_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "disable": ("User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
    "enable": ("User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
    "revoke_sessions": ("User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
    "force_password_change": ("User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All"),
}

_HIGHER_ROLE = (
    "Graph lets an app change a privileged account only if the app itself holds a higher "
    "directory role: assign Privileged Authentication Administrator to td-graph's service "
    "principal (for a Global Administrator target: Privileged Authentication Administrator or "
    "Global Administrator), or contain this account by hand in the Entra admin center"
)


def _permission_hint(step: str) -> str:
    perms = STEP_PERMISSIONS.get(step, ())
    first = perms[0] if perms else "the isolation permissions"
    extra = ""
    if step == "force_password_change":
        extra = "; app-only password changes also need the app to hold at least the User Administrator directory role"
    return (
        f"the app lacks the application permission {first} ({GUIDE_SECTION}): add it, grant admin "
        f"consent, then check with `td-graph doctor`{extra}"
    )


def advise(
    step: str,
    exc: BaseException,
    *,
    privileged: bool = False,
    roles: str = "",
    granted: set[str] | None = None,
) -> tuple[str, str]:
    """(detail, hint) for a step that raised ``exc``."""
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", "") or ""
    what = f"HTTP {status}" + (f" {code}" if code else "") if status else type(exc).__name__
    message = getattr(exc, "detail", None) or str(exc)
    detail = f"{what}: {message}"
    if isinstance(exc, GraphNotFound):
        if step == "resolve":
            return (
                f"user not found ({what}): {message}",
                "nothing was changed: check the UPN or object id (a renamed user keeps its object id; "
                "a guest's UPN contains #EXT#)",
            )
        return detail, "the user disappeared after it was resolved (deleted?): check the directory's deleted users"
    if isinstance(exc, GraphThrottled):
        wait = getattr(exc, "retry_after", None)
        after = f" (Graph asks to wait {wait:.0f} s)" if wait is not None else ""
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
            return detail, f"the target holds {roles or 'a privileged directory role'}: {_HIGHER_ROLE}"
        if granted is not None:
            if step == "force_password_change":
                return detail, (
                    "app-only password changes need the app to hold at least the User Administrator "
                    "directory role (Privileged Authentication Administrator for admin targets)"
                )
            return detail, (
                "the permission is granted, so Graph refused the target itself: the account may hold an "
                f"admin role td-graph could not see (e.g. PIM-eligible). {_HIGHER_ROLE}"
            )
        return detail, (
            f"either {_permission_hint(step)}; or the target holds an admin role and {_HIGHER_ROLE[0].lower()}{_HIGHER_ROLE[1:]}"
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
    return f"internal error: {type(exc).__name__}: {exc}", "this is a td-graph bug: report it with the action id"


def error_fields(exc: Any) -> dict[str, Any]:
    """request_id / http_status / error_code of a Graph error, for a StepResult."""
    return {
        "request_id": getattr(exc, "request_id", None),
        "http_status": getattr(exc, "status", None),
        "error_code": getattr(exc, "code", None) or None,
    }
