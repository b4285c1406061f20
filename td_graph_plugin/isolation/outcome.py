"""An action's outcome and one-line message, decided from its steps once they have all run.

Outcomes: ``ok`` | ``partial`` (some steps took effect, some failed) | ``failed`` (nothing
took effect) | ``refused`` (a guard rail said no; nothing was written) | ``dry_run`` |
``noop`` (nothing needed doing) | ``interrupted`` (stopped by a signal).  See ``model.py``.
"""

from __future__ import annotations

from .model import STEP_FAILED, STEP_INTERRUPTED, STEP_OK, STEP_PLANNED, STEP_REFUSED, WRITE_STEPS, ActionResult

__all__ = ["isolate_outcome", "isolate_message", "release_outcome", "release_message", "settle"]


def settle(result: ActionResult) -> None:
    """Set ``result.outcome`` and ``result.message`` from its steps."""
    if _any(result, STEP_INTERRUPTED):
        result.outcome = "interrupted"
        result.message = interrupted_message(result)
    elif result.action == "isolate":
        result.outcome = isolate_outcome(result)
        result.message = isolate_message(result)
    else:
        result.outcome = release_outcome(result)
        result.message = release_message(result)


def _any(result: ActionResult, status: str, names: tuple[str, ...] | None = None) -> bool:
    return any(s.status == status and (names is None or s.name in names) for s in result.steps)


def interrupted_message(result: ActionResult) -> str:
    done = [s.name for s in result.steps if s.status == STEP_OK and s.name in (*WRITE_STEPS, "enable")]
    unsure = [s.name for s in result.steps if s.status == STEP_INTERRUPTED and s.name in (*WRITE_STEPS, "enable")]
    text = f"{result.action} was interrupted: " + (f"{', '.join(done)} took effect" if done else "no write was confirmed")
    if unsure:
        text += f"; {', '.join(unsure)} may or may not have taken effect"
    return text + (": run the same command again to finish (completed steps are skipped), or release"
                   if result.action == "isolate" else ": run the same command again")


def isolate_outcome(result: ActionResult) -> str:
    if _any(result, STEP_REFUSED):
        return "refused"
    if _any(result, STEP_FAILED, ("resolve", "internal")) and not _any(result, STEP_OK, WRITE_STEPS):
        return "failed"
    if result.dry_run:
        return "dry_run"
    took_effect = _any(result, STEP_OK, WRITE_STEPS)
    failed = _any(result, STEP_FAILED)
    if failed:
        return "partial" if took_effect else "failed"
    return "ok" if took_effect else "noop"


def isolate_message(result: ActionResult) -> str:
    done = [s.name for s in result.steps if s.name in WRITE_STEPS and s.status == STEP_OK]
    failed = [s.name for s in result.steps if s.status == STEP_FAILED]
    if result.outcome == "refused":
        s = next(s for s in result.steps if s.status == STEP_REFUSED)
        return s.detail
    if result.outcome == "failed":
        return f"{', '.join(failed)} failed; nothing took effect"
    if result.outcome == "partial":
        return (f"{', '.join(done)} took effect, but {', '.join(failed)} FAILED: "
                "the account is not fully contained (see 'what to do')")
    if result.outcome == "dry_run":
        planned = [s.name for s in result.steps if s.status == STEP_PLANNED and s.name in WRITE_STEPS]
        return f"dry run, nothing changed: would run {', '.join(planned) or 'no write step'}"
    if result.outcome == "noop":
        return "already contained: nothing needed changing"
    return f"contained: {', '.join(done)} done"


def release_outcome(result: ActionResult) -> str:
    if _any(result, STEP_REFUSED):
        return "refused"
    if _any(result, STEP_FAILED, ("resolve", "internal")):
        return "failed"
    if result.dry_run:
        return "dry_run"
    if _any(result, STEP_FAILED, ("enable",)):
        return "failed"
    if _any(result, STEP_FAILED):
        return "partial"
    record = result.step("record")
    if result.succeeded("enable") or (record is not None and record.status == STEP_OK):
        return "ok"
    return "noop"


def release_message(result: ActionResult) -> str:
    if result.outcome == "refused":
        return next(s for s in result.steps if s.status == STEP_REFUSED).detail
    if result.outcome == "failed":
        return ", ".join(s.name for s in result.steps if s.status == STEP_FAILED) + " failed"
    if result.outcome == "partial":
        return "the account was re-enabled but the read-back does not show it yet"
    if result.outcome == "dry_run":
        planned = [s.name for s in result.steps if s.status == STEP_PLANNED and s.name != "verify"]
        return f"dry run, nothing changed: would run {', '.join(planned) or 'no write step'}"
    if result.outcome == "noop":
        return "nothing to release"
    enable = result.step("enable")
    if enable is not None and enable.status == STEP_OK:
        return "released: account re-enabled"
    return "released: isolation closed; " + (enable.detail if enable is not None else "no change needed")
