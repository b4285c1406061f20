"""The human report the CLI prints on stderr: one line per step, then what to do."""

from __future__ import annotations

from .model import STEP_FAILED, STEP_INTERRUPTED, STEP_OK, STEP_PLANNED, STEP_REFUSED, STEP_SKIPPED, ActionResult

__all__ = ["render"]

_MARK = {STEP_OK: "ok", STEP_SKIPPED: "skipped", STEP_FAILED: "FAILED", STEP_PLANNED: "planned", STEP_REFUSED: "REFUSED",
         STEP_INTERRUPTED: "STOPPED"}
_LABEL = {
    "resolve": "resolve user",
    "guard": "guard rails",
    "snapshot": "snapshot",
    "disable": "disable account",
    "revoke_sessions": "revoke sessions",
    "force_password_change": "force password change",
    "verify": "verify",
    "record": "isolation record",
    "enable": "re-enable account",
    "internal": "internal",
    "interrupted": "interrupted",
}


def render(result: ActionResult) -> str:
    out: list[str] = []
    head = "DRY RUN: " if result.dry_run else ""
    who = result.target.label() if result.target is not None else result.user
    out.append(f"td-graph {result.action}: {head}tenant {result.tenant}, user {who}")
    out.append(f"  reason: {result.reason}; requested by {result.requested_by}; action id {result.action_id}")
    for w in result.warnings:
        out.append(f"  WARNING: {w}")
    width = max(len(_LABEL.get(s.name, s.name)) for s in result.steps) if result.steps else 10
    for s in result.steps:
        rid = f"  [request-id {s.request_id}]" if s.request_id else ""
        out.append(f"  {_MARK.get(s.status, s.status):<8} {_LABEL.get(s.name, s.name):<{width}}  {s.detail}{rid}")
        if s.hint:
            out.append(f"  {'':<8} {'':<{width}}  what to do: {s.hint}")
    for n in result.notes:
        out.append(f"  note: {n}")
    out.append(f"RESULT: {result.outcome.upper()}: {result.message}")
    if result.audit_error:
        out.append(f"AUDIT ERROR: {result.audit_error}")
    return "\n".join(out) + "\n"
