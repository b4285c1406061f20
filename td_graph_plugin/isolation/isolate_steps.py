"""Isolate, in order: resolve -> guard rails -> snapshot -> disable -> revoke sessions ->
(force password change) -> verify.

Rules kept here:

* No write before the guard rails pass; a dry run sends no write request at all.
* A failed write does not stop the next one (revoking sessions is still worth doing when
  disabling failed); every step keeps its own result.
* A password is never set, read or printed: only ``forceChangePasswordNextSignIn``.
* Re-isolating is idempotent: an already disabled account is not patched again, and sessions
  revoked by a still-active isolation are not revoked again unless ``revoke_again``.
"""

from __future__ import annotations

import logging

from ..errors import TdGraphError
from ..timeutil import parse_time
from .audit import chain_did
from .guards import GuardReport, check_protected, check_roles
from .model import (
    STEP_FAILED,
    STEP_OK,
    STEP_PLANNED,
    STEP_REFUSED,
    STEP_SKIPPED,
    WRITE_STEPS,
    ActionResult,
    Target,
)
from .resolve import graph_get
from .steps import StepContext, read_back, resolve_step, write_step

__all__ = ["TOKEN_NOTE", "run_isolate", "guard_step", "verify_isolation"]

log = logging.getLogger("td_graph_plugin.isolation")

TOKEN_NOTE = (
    "access tokens already issued stay valid until they expire (typically about an hour, less where "
    "Continuous Access Evaluation applies); Graph says revocation can take a few minutes"
)


def run_isolate(ctx: StepContext, result: ActionResult, wanted: tuple[str, ...],
                allow_privileged: bool, revoke_again: bool) -> None:
    """Every isolate step, recorded on ``result`` (the outcome is decided afterwards)."""
    user = result.user
    # 0. Never td-graph's own applications (the collector's, the isolation app).
    if user.lower() in {a.lower() for a in (ctx.own_app_ids or (ctx.tenant.client_id,))}:
        result.add("resolve", STEP_SKIPPED, "not resolved: USER is td-graph's own application id")
        result.add("guard", STEP_REFUSED, "refused: USER is td-graph's own application (client_id); "
                   "td-graph never isolates its own service principal")
        return
    # 1. Resolve.
    target = resolve_step(ctx, result)
    if target is None:
        return
    # 2. Guard rails.
    report = guard_step(ctx, result, target, allow_privileged)
    if report is None:
        return
    ctx.report = report
    # 3. Snapshot.
    result.before = target.state()
    chain = ctx.chain(target.id)
    state_text = "enabled" if target.account_enabled else "disabled" if target.account_enabled is False else "unknown"
    snap = f"accountEnabled={str(target.account_enabled).lower()} ({state_text}); sessions valid from {target.sessions_valid_from or 'unknown'}"
    if chain:
        first = chain[0]
        snap += f"; isolation {first.get('id')} of {first.get('event_time')} is still active"
    result.add("snapshot", STEP_OK, snap, request_id=result.step("resolve").request_id)  # type: ignore[union-attr]
    # 4. Disable.
    if "disable" not in wanted:
        result.add("disable", STEP_SKIPPED, "not requested (--no-disable)")
    elif target.account_enabled is False:
        result.add("disable", STEP_SKIPPED, "already disabled: nothing to change")
    elif result.dry_run:
        result.add("disable", STEP_PLANNED, f"would PATCH /users/{target.id} {{\"accountEnabled\": false}}")
    else:
        write_step(ctx, result, "disable", "PATCH", f"/users/{target.id}", {"accountEnabled": False},
                   "accountEnabled set to false: new sign-ins are blocked")
    # 5. Revoke sessions.
    previous = chain_did(chain, "revoke_sessions")
    if "revoke_sessions" not in wanted:
        result.add("revoke_sessions", STEP_SKIPPED, "not requested (--no-revoke-sessions)")
    elif previous is not None and not revoke_again:
        result.add("revoke_sessions", STEP_SKIPPED,
                   f"already revoked by active isolation {previous.get('id')} at {previous.get('event_time')} "
                   "(pass --revoke-again to revoke again)")
    elif result.dry_run:
        result.add("revoke_sessions", STEP_PLANNED, f"would POST /users/{target.id}/revokeSignInSessions")
    else:
        write_step(ctx, result, "revoke_sessions", "POST", f"/users/{target.id}/revokeSignInSessions", None,
                   "sign-in sessions revoked (refresh tokens and session cookies invalidated)")
    # 6. Force a password change at next sign-in (never a password).
    previous = chain_did(chain, "force_password_change")
    if "force_password_change" not in wanted:
        result.add("force_password_change", STEP_SKIPPED, "not requested (--force-password-change)")
    elif previous is not None:
        result.add("force_password_change", STEP_SKIPPED,
                   f"already required by active isolation {previous.get('id')} at {previous.get('event_time')}")
    elif result.dry_run:
        result.add("force_password_change", STEP_PLANNED,
                   f"would PATCH /users/{target.id} {{\"passwordProfile\": {{\"forceChangePasswordNextSignIn\": true}}}}")
    else:
        write_step(ctx, result, "force_password_change", "PATCH", f"/users/{target.id}",
                   {"passwordProfile": {"forceChangePasswordNextSignIn": True}},
                   "the user must change the password at next sign-in (no password was set)")
    # 7. Verify.
    verify_isolation(ctx, result, target)
    if result.succeeded("revoke_sessions"):
        result.notes.append(TOKEN_NOTE)


def guard_step(ctx: StepContext, result: ActionResult, target: Target, allow_privileged: bool) -> GuardReport | None:
    """Protected users, then directory roles (PIM included); the report, or None when the
    action is refused.  Shared by isolate and ``release --force``."""
    report = GuardReport()
    check_protected(ctx.client, target, ctx.protected_users, report)
    if report.protected_by is not None:
        result.add("guard", STEP_REFUSED,
                   f"refused: {target.label()} is protected (isolation.protected_users entry {report.protected_by!r}); "
                   "nothing was changed", request_ids=list(report.request_ids))
        return None
    if report.unresolvable or report.protected_errors:
        parts = []
        if report.unresolvable:
            parts.append("isolation.protected_users entries that name no user in this tenant: "
                         + ", ".join(repr(e) for e in report.unresolvable)
                         + " (a typo, a deleted account, or an address no user has: fix or remove them)")
        if report.protected_errors:
            parts.append("isolation.protected_users entries that could not be checked: " + ", ".join(report.protected_errors))
        result.add("guard", STEP_REFUSED,
                   "refused: " + "; ".join(parts) + ". Nothing was changed: td-graph must know every protected account "
                   "before it changes anyone (`td-graph doctor` lists the entries)",
                   request_ids=list(report.request_ids))
        return None
    check_roles(ctx.client, target, report)
    result.roles = [{k: v for k, v in r.items() if k != "group_id"} for r in report.roles]
    if report.role_assignable_groups:
        result.options["role_assignable_groups"] = report.role_assignable_groups
    rids = list(report.request_ids)
    if report.errors and not allow_privileged:
        result.add("guard", STEP_REFUSED,
                   "refused: could not check the user's directory roles: " + "; ".join(report.errors)
                   + ". Check the roles (PIM-eligible ones too) in the Entra admin center, then pass --allow-privileged",
                   request_ids=rids)
        return None
    if report.privileged and not allow_privileged:
        result.add("guard", STEP_REFUSED,
                   f"refused: {target.label()} is privileged: {report.describe_roles()}. Confirm this admin "
                   "account is compromised and that locking it out cannot lock you out, then pass --allow-privileged",
                   request_ids=rids)
        return None
    parts = ["not protected"]
    if report.privileged:
        parts.append(f"privileged ({report.describe_roles()}), allowed by --allow-privileged")
        result.warnings.append(
            f"privileged target ({report.describe_roles()}): Graph answers 403 unless the acting app holds "
            "Privileged Authentication Administrator (or Global Administrator); that role belongs on the separate "
            "isolation app (tenants[].isolation) only, never on the collector's app"
        )
    if report.errors:
        parts.append("roles could not all be checked (--allow-privileged given)")
        result.warnings.extend(report.errors)
    elif not report.privileged:
        parts.append("no directory role, active or PIM-eligible")
    result.add("guard", STEP_OK, "; ".join(parts), request_ids=rids,
               request_id=rids[-1] if rids else None)
    return report


def verify_isolation(ctx: StepContext, result: ActionResult, target: Target) -> None:
    """Read the user back and check what the writes that succeeded should have changed."""
    if result.dry_run:
        result.add("verify", STEP_PLANNED, "would read the user back")
        return
    changed = [n for n in WRITE_STEPS if result.succeeded(n)]
    if not changed:
        result.add("verify", STEP_SKIPPED, "nothing was changed")
        result.after = result.before
        return
    expect_disabled = result.succeeded("disable")
    after, rid, ok = read_back(
        ctx, target.id, (lambda t: t.account_enabled is False) if expect_disabled else (lambda t: True)
    )
    if after is None:
        result.add("verify", STEP_FAILED, "could not read the user back", request_id=rid,
                   hint="the writes above were accepted; check the account in the Entra admin center")
        return
    result.after = after.state()
    checks: list[str] = []
    failed = False
    if expect_disabled:
        if ok:
            checks.append("accountEnabled=false")
        else:
            checks.append("accountEnabled is still true")
            failed = True
    if result.succeeded("revoke_sessions"):
        before_t, after_t = parse_time(target.sessions_valid_from), parse_time(after.sessions_valid_from)
        if after_t is not None and (before_t is None or after_t > before_t):
            checks.append(f"sessions valid from {after.sessions_valid_from}")
        else:
            checks.append("signInSessionsValidFromDateTime not updated yet (can take a few minutes)")
    if result.succeeded("force_password_change"):
        try:
            data, _prid = graph_get(ctx.client, f"/users/{target.id}", {"$select": "id,passwordProfile"})
            flag = (data.get("passwordProfile") or {}).get("forceChangePasswordNextSignIn")
        except TdGraphError:
            flag = None
        result.after["forceChangePasswordNextSignIn"] = flag
        if flag is True:
            checks.append("forceChangePasswordNextSignIn=true")
        else:
            checks.append("forceChangePasswordNextSignIn could not be read back")
    if failed:
        result.add("verify", STEP_FAILED, "read back: " + ", ".join(checks), request_id=rid,
                   hint="directory replication can lag: check again in a minute; if it stays enabled, run isolate again")
    else:
        result.add("verify", STEP_OK, "read back: " + ", ".join(checks), request_id=rid)
