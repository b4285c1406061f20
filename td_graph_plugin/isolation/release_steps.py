"""Release, in order: resolve -> isolation record -> enable (only if the isolation disabled an
account that was enabled before) -> what is not undone -> verify.

Revoked sessions cannot be restored and ``forceChangePasswordNextSignIn`` is not reverted
(both are said in the result).  Without an active isolation record the release is refused
unless ``force``, which re-enables the account without a snapshot, and only after the same
guard rails as isolate (protected users, privileged roles with PIM; ``allow_privileged``).

An unfinished isolation (interrupted, or killed after its started record) is an active one:
if it may have disabled the account, the account is disabled now and its snapshot says it
was enabled before, release re-enables it.
"""

from __future__ import annotations

from .audit import active_isolation, chain_did, chain_maybe_did, latest_per_action, unfinished
from .isolate_steps import guard_step
from .model import STEP_FAILED, STEP_OK, STEP_PLANNED, STEP_REFUSED, STEP_SKIPPED, ActionResult, Target
from .steps import StepContext, read_back, resolve_step, write_step

__all__ = ["run_release"]


def run_release(ctx: StepContext, result: ActionResult, force: bool, allow_privileged: bool = False) -> None:
    """Every release step, recorded on ``result`` (the outcome is decided afterwards)."""
    target = resolve_step(ctx, result)
    if target is None:
        return
    result.before = target.state()
    records = ctx.records(target.id)
    chain = active_isolation(records)
    if chain:
        _restore_from_snapshot(ctx, result, target, chain)
    elif not _without_record(ctx, result, target, records, force, allow_privileged):
        return
    _not_undone(result, chain)
    _verify_release(ctx, result, target)


def _restore_from_snapshot(ctx: StepContext, result: ActionResult, target: Target,
                           chain: list[dict]) -> None:
    first = chain[0]
    d = first.get("data") or {}
    ids = [str((r.get("data") or {}).get("action_id") or r.get("id")) for r in chain]
    text = (f"active isolation {ids[0]} of {first.get('event_time')} by {d.get('requested_by')} "
            f"(reason: {d.get('reason')}); {len(chain)} isolation action(s) to close")
    for r in chain:
        if unfinished(r):
            text += (f"; isolation {(r.get('data') or {}).get('action_id')} did not finish "
                     f"({(r.get('data') or {}).get('outcome')}): it may have changed the account")
    result.add("record", STEP_OK, text)
    result.options["released_isolations"] = ids
    baseline = ((d.get("before") or {}).get("accountEnabled"))
    disabled_by = chain_did(chain, "disable") or chain_maybe_did(chain, "disable")
    if baseline is False:
        result.add("enable", STEP_SKIPPED,
                   f"the account was already disabled before isolation {ids[0]}: left disabled")
    elif disabled_by is None:
        result.add("enable", STEP_SKIPPED,
                   "the isolation did not disable the account (--no-disable, or its disable step failed): left as is")
    elif target.account_enabled is True:
        result.add("enable", STEP_SKIPPED, "already enabled (re-enabled outside td-graph?): nothing to change")
    elif baseline is None:
        result.add("enable", STEP_SKIPPED,
                   "the snapshot does not say whether the account was enabled before: left disabled "
                   "(use --force to re-enable)")
    else:
        _enable(ctx, result, target)


def _without_record(ctx: StepContext, result: ActionResult, target: Target, records: list[dict],
                    force: bool, allow_privileged: bool) -> bool:
    """No active isolation: refuse (False), or with ``force`` re-enable without a snapshot,
    after the guard rails (a forced release must not re-enable a protected or admin account
    that someone disabled on purpose)."""
    last = [r for r in latest_per_action(records)
            if r.get("action") == "release" and not (r.get("data") or {}).get("dry_run")]
    why = "no active isolation record for this user in tenant " + ctx.tenant.name
    if last:
        why += f" (last released by action {last[-1].get('id')} at {last[-1].get('event_time')})"
    if not force:
        result.add("record", STEP_REFUSED,
                   f"refused: {why}; nothing to restore from. Pass --force to re-enable the account anyway")
        return False
    result.add("record", STEP_SKIPPED, f"{why}; --force: re-enabling without a snapshot")
    if guard_step(ctx, result, target, allow_privileged) is None:
        return False
    if target.account_enabled is True:
        result.add("enable", STEP_SKIPPED, "already enabled: nothing to change")
    else:
        _enable(ctx, result, target)
    return True


def _not_undone(result: ActionResult, chain: list[dict]) -> None:
    if chain_did(chain, "revoke_sessions") is not None:
        result.add("revoke_sessions", STEP_SKIPPED,
                   "not undone: revoked sessions cannot be restored; the user signs in again")
    pw = chain_did(chain, "force_password_change")
    if pw is not None:
        result.add("force_password_change", STEP_SKIPPED,
                   f"NOT reverted automatically: forceChangePasswordNextSignIn was set by isolation {pw.get('id')}; "
                   "the user must change the password at next sign-in (clear it in the Entra admin center if that is wrong)")
        result.notes.append("forceChangePasswordNextSignIn stays set: release does not revert it")


def _verify_release(ctx: StepContext, result: ActionResult, target: Target) -> None:
    if result.dry_run:
        result.add("verify", STEP_PLANNED, "would read the user back")
    elif result.succeeded("enable"):
        after, rid, ok = read_back(ctx, target.id, lambda t: t.account_enabled is True)
        if after is None:
            result.add("verify", STEP_FAILED, "could not read the user back", request_id=rid)
        else:
            result.after = after.state()
            if ok:
                result.add("verify", STEP_OK, "read back: accountEnabled=true", request_id=rid)
            else:
                result.add("verify", STEP_FAILED, "read back still shows accountEnabled=false",
                           request_id=rid, hint="directory replication can lag: check again in a minute, then run release again")
    else:
        result.add("verify", STEP_SKIPPED, "nothing was changed")
        result.after = result.before


def _enable(ctx: StepContext, result: ActionResult, target: Target) -> None:
    if result.dry_run:
        result.add("enable", STEP_PLANNED, f"would PATCH /users/{target.id} {{\"accountEnabled\": true}}")
    else:
        write_step(ctx, result, "enable", "PATCH", f"/users/{target.id}", {"accountEnabled": True},
                   "accountEnabled set to true")
