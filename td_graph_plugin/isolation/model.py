"""What an isolation or release did: the target, each step's result, the outcome.

Step statuses: ``ok`` (done, Graph accepted it), ``skipped`` (not needed or not asked for,
with the reason), ``failed`` (Graph refused or could not be reached; ``hint`` says what to
do), ``planned`` (dry run: would be done), ``refused`` (a guard rail stopped the action) and
``interrupted`` (the process was stopped while this step's request was in flight: Graph may
or may not have applied it).

Outcomes (also the ``result`` label of ``td_graph_isolation_actions_total``):
``ok`` | ``partial`` (some steps took effect, some failed) | ``failed`` (nothing took
effect) | ``refused`` (a guard rail said no; nothing was written) | ``dry_run`` | ``noop``
(nothing needed doing) | ``interrupted`` (Ctrl-C / SIGTERM stopped it: the steps recorded
are what ran).  ``pending`` is the outcome of the *started* record stored before the first
write (``audit.py``); a later record of the same ``action_id`` completes it.  Exit code: 0
for ok, dry_run and noop; 1 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "STEP_OK",
    "STEP_SKIPPED",
    "STEP_FAILED",
    "STEP_PLANNED",
    "STEP_REFUSED",
    "STEP_INTERRUPTED",
    "OUTCOMES",
    "WRITE_STEPS",
    "DEFAULT_STEPS",
    "StepResult",
    "Target",
    "ActionResult",
    "normalise_steps",
]

STEP_OK, STEP_SKIPPED, STEP_FAILED, STEP_PLANNED, STEP_REFUSED = "ok", "skipped", "failed", "planned", "refused"
STEP_INTERRUPTED = "interrupted"
OUTCOMES = ("ok", "partial", "failed", "refused", "dry_run", "noop", "interrupted")

# The isolation's write steps, in the order they always run.
WRITE_STEPS = ("disable", "revoke_sessions", "force_password_change")
DEFAULT_STEPS = ("disable", "revoke_sessions")
_ALIASES = {
    "disable": "disable",
    "revoke": "revoke_sessions",
    "revoke_sessions": "revoke_sessions",
    "revoke-sessions": "revoke_sessions",
    "force_password_change": "force_password_change",
    "force-password-change": "force_password_change",
    "password": "force_password_change",
}


def normalise_steps(steps: Any) -> tuple[str, ...]:
    """The requested write steps in execution order; ``ValueError`` names an unknown one."""
    if steps is None:
        return DEFAULT_STEPS
    if isinstance(steps, str):
        steps = [s for s in steps.replace(" ", ",").split(",") if s]
    wanted = set()
    for s in steps:
        key = _ALIASES.get(str(s).strip().lower())
        if key is None:
            raise ValueError(f"unknown isolation step {s!r}; known: {', '.join(WRITE_STEPS)}")
        wanted.add(key)
    return tuple(s for s in WRITE_STEPS if s in wanted)


@dataclass
class StepResult:
    name: str
    status: str
    detail: str = ""
    request_id: str | None = None
    http_status: int | None = None
    error_code: str | None = None
    hint: str | None = None
    request_ids: list[str] = field(default_factory=list)  # every request of a multi-request step

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.name, "status": self.status, "detail": self.detail}
        out["request_id"] = self.request_id
        if self.request_ids:
            out["request_ids"] = list(self.request_ids)
        if self.http_status is not None:
            out["http_status"] = self.http_status
        if self.error_code:
            out["error_code"] = self.error_code
        if self.hint:
            out["hint"] = self.hint
        return out


@dataclass
class Target:
    """The resolved user (what Graph said, not what the analyst typed)."""

    id: str
    user_principal_name: str | None = None
    display_name: str | None = None
    account_enabled: bool | None = None
    user_type: str | None = None
    on_premises_sync_enabled: bool | None = None
    sessions_valid_from: str | None = None

    @classmethod
    def from_graph(cls, obj: dict[str, Any]) -> "Target":
        return cls(
            id=str(obj.get("id") or ""),
            user_principal_name=obj.get("userPrincipalName"),
            display_name=obj.get("displayName"),
            account_enabled=obj.get("accountEnabled"),
            user_type=obj.get("userType"),
            on_premises_sync_enabled=obj.get("onPremisesSyncEnabled"),
            sessions_valid_from=obj.get("signInSessionsValidFromDateTime"),
        )

    def identity(self) -> dict[str, Any]:
        return {"id": self.id, "userPrincipalName": self.user_principal_name, "displayName": self.display_name}

    def state(self) -> dict[str, Any]:
        """The snapshot kept for release and audit."""
        return {
            "accountEnabled": self.account_enabled,
            "userType": self.user_type,
            "onPremisesSyncEnabled": self.on_premises_sync_enabled,
            "signInSessionsValidFromDateTime": self.sessions_valid_from,
        }

    def label(self) -> str:
        name = self.user_principal_name or self.id
        if self.display_name:
            return f"{name} ({self.display_name}, {self.id})"
        return f"{name} ({self.id})"


@dataclass
class ActionResult:
    action: str  # isolate | release
    tenant: str
    tenant_id: str
    action_id: str
    user: str  # what the caller passed
    reason: str
    requested_by: str
    dry_run: bool
    started_at: str
    options: dict[str, Any] = field(default_factory=dict)
    target: Target | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    steps: list[StepResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "failed"
    message: str = ""
    finished_at: str | None = None
    audit_error: str | None = None
    os_user: str | None = None  # the login that ran it, kept even when requested_by names someone else

    # --- building ------------------------------------------------------------------------
    def add(self, name: str, status: str, detail: str = "", **kw: Any) -> StepResult:
        step = StepResult(name, status, detail, **kw)
        self.steps.append(step)
        return step

    def step(self, name: str) -> StepResult | None:
        for s in self.steps:
            if s.name == name:
                return s
        return None

    # --- reading -------------------------------------------------------------------------
    @property
    def exit_code(self) -> int:
        if self.audit_error:
            return 1
        return 0 if self.outcome in ("ok", "dry_run", "noop") else 1

    @property
    def user_key(self) -> str:
        """The key the state store files this action under: the object id once resolved."""
        return self.target.id if self.target is not None and self.target.id else self.user

    def succeeded(self, name: str) -> bool:
        s = self.step(name)
        return s is not None and s.status == STEP_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "action_id": self.action_id,
            "tenant": self.tenant,
            "outcome": self.outcome,
            "message": self.message,
            "dry_run": self.dry_run,
            "requested_by": self.requested_by,
            "os_user": self.os_user,
            "reason": self.reason,
            "user": self.user,
            "target": self.target.identity() if self.target is not None else None,
            "before": self.before,
            "after": self.after,
            "steps": [s.to_dict() for s in self.steps],
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "roles": list(self.roles),
            "options": dict(self.options),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "exit_code": self.exit_code,
            **({"audit_error": self.audit_error} if self.audit_error else {}),
        }
