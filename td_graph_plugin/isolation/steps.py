"""What isolate and release share: the per-action context, resolving USER, one write, reading back.

Every function records what happened on the ``ActionResult`` (one ``StepResult`` per step,
with its request id) instead of raising: a failed step does not stop the next one, and the
outcome is decided from the steps afterwards (``outcome.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from ..config.model import TenantConfig
from ..errors import GraphNotFound, TdGraphError
from ..graph.classify import header
from ..state import StateStore
from .advice import advise, describe, error_fields
from .audit import active_isolation
from .guards import GuardReport, own_service_principal_id
from .model import STEP_FAILED, STEP_OK, STEP_REFUSED, STEP_SKIPPED, ActionResult, Target
from .resolve import SOURCE, get_user, is_object_id

__all__ = ["StepContext", "GUEST_NOTE", "SYNC_NOTE", "resolve_step", "write_step", "read_back"]

log = logging.getLogger("td_graph_plugin.isolation")

SYNC_NOTE = (
    "the account is synchronised from on-premises AD: disable it there too, or the next sync can "
    "re-enable it (a password change also needs password writeback)"
)
GUEST_NOTE = (
    "the account is a guest (external user): revoking sessions does not end its sessions in its "
    "home tenant; disabling it blocks its access to this tenant"
)


@dataclass
class StepContext:
    """One action's Graph client, tenant and audit store, and what a failing write needs to
    explain itself (the guard report; the app's granted permissions, read lazily once).

    ``tenant`` is the *acting* tenant config: its client id and credential are the isolation
    app's when ``tenants[].isolation`` is configured.  ``own_app_ids``: td-graph's apps (the
    collector's and the isolation app), never a target.  ``before_write(step)`` runs before
    every write request (the service stores the started record there) and returns False when
    the write must not be sent; ``in_flight`` names the write whose request is on the wire.
    """

    client: Any
    tenant: TenantConfig
    state: StateStore | None
    protected_users: tuple[str, ...] = ()
    sleep: Callable[[float], object] = lambda _s: None
    verify_attempts: int = 3
    report: GuardReport = field(default_factory=GuardReport)
    own_app_ids: tuple[str, ...] = ()
    before_write: Callable[[str], bool] | None = None
    in_flight: str | None = None
    _granted: set[str] | None = field(default=None, init=False, repr=False)
    _tried: bool = field(default=False, init=False, repr=False)

    def records(self, user_id: str) -> list[dict[str, Any]]:
        """The stored audit records of ``user_id`` in this tenant, oldest first."""
        if self.state is None:
            return []
        return list(self.state.isolations(self.tenant.name, user_id))

    def chain(self, user_id: str) -> list[dict[str, Any]]:
        """The still-active isolation of ``user_id`` (``audit.active_isolation``)."""
        return active_isolation(self.records(user_id))

    def granted(self) -> set[str] | None:
        if not self._tried:
            self._tried = True
            from ..discovery import discover_permissions, roles_from_token

            try:
                self._granted = discover_permissions(self.client, self.tenant.client_id)
            except Exception:  # noqa: BLE001 - advice only; fall back to the token's roles
                try:
                    self._granted = roles_from_token(self.client.tokens.token())
                except Exception:  # noqa: BLE001
                    self._granted = None
        return self._granted


def resolve_step(ctx: StepContext, result: ActionResult) -> Target | None:
    """USER -> the user object (``result.target``); None when it cannot be (step recorded)."""
    user = result.user
    try:
        target, rid = get_user(ctx.client, user)
    except GraphNotFound as exc:
        if is_object_id(user) and result.action == "isolate":
            for app_id in ctx.own_app_ids or (ctx.tenant.client_id,):
                sp = own_service_principal_id(ctx.client, app_id)
                if sp is not None and sp.lower() == user.lower():
                    result.add("resolve", STEP_SKIPPED, "not a user: the object id is td-graph's own service principal")
                    result.add("guard", STEP_REFUSED, "refused: td-graph never isolates its own service principal")
                    return None
        detail, hint = advise("resolve", exc)
        result.add("resolve", STEP_FAILED, detail, hint=hint, **error_fields(exc))
        return None
    except TdGraphError as exc:
        detail, hint = advise("resolve", exc)
        result.add("resolve", STEP_FAILED, detail, hint=hint, **error_fields(exc))
        return None
    result.target = target
    kind = target.user_type or "unknown type"
    where = "synced from on-premises AD" if target.on_premises_sync_enabled else "cloud-only"
    enabled = {True: "enabled", False: "disabled", None: "state unknown"}[target.account_enabled]
    result.add("resolve", STEP_OK,
               f"{target.user_principal_name} -> {target.id} ({target.display_name}; {kind}, {enabled}, {where})",
               request_id=rid)
    if (target.user_type or "").lower() == "guest":
        result.warnings.append(GUEST_NOTE)
    if target.on_premises_sync_enabled:
        result.warnings.append(SYNC_NOTE)
    return target


def write_step(ctx: StepContext, result: ActionResult, name: str, method: str, path: str,
               body: dict[str, Any] | None, done: str) -> None:
    """One write request, recorded as step ``name`` (ok with ``done``, or failed with advice).

    Nothing is sent when ``ctx.before_write`` says no (the started record could not be stored)."""
    client = ctx.client
    if ctx.before_write is not None and not ctx.before_write(name):
        result.add(name, STEP_FAILED, "not attempted: the action's audit record could not be stored",
                   hint="fix the isolation store (see the audit error), then run the same command again")
        return
    ctx.in_flight = name
    try:
        resp = client.request(
            method, client.url("v1.0", path), json=body, source=SOURCE, throttle_class="directory",
            expect_json=False,
        )
    except TdGraphError as exc:
        ctx.in_flight = None
        detail, hint = advise(name, exc, privileged=ctx.report.privileged, roles=ctx.report.describe_roles(),
                              granted=ctx.granted() if getattr(exc, "status", None) == 403 else None)
        result.add(name, STEP_FAILED, detail, hint=hint, **error_fields(exc))
        return
    ctx.in_flight = None
    rid = header(resp.headers, "request-id")
    if _false_value(resp):
        result.add(name, STEP_FAILED, f"Graph answered {resp.status_code} but with value=false", request_id=rid,
                   http_status=resp.status_code, hint="run the same command again; report it with the request id")
        return
    result.add(name, STEP_OK, f"{done} (HTTP {resp.status_code})", request_id=rid, http_status=resp.status_code)


def read_back(ctx: StepContext, user_id: str,
              check: Callable[[Target], bool]) -> tuple[Target | None, str | None, bool]:
    """Read the user until ``check`` holds (``verify_attempts`` tries, growing pauses):
    (the last user read or None, its request id, whether ``check`` held)."""
    target: Target | None = None
    rid: str | None = None
    attempts = max(1, ctx.verify_attempts)
    for attempt in range(attempts):
        try:
            target, rid = get_user(ctx.client, user_id)
        except TdGraphError as exc:
            log.warning("read-back of %s failed: %s", user_id, describe(exc))
            rid = getattr(exc, "request_id", None) or rid
            target = None
        if target is not None and check(target):
            return target, rid, True
        if attempt + 1 < attempts:
            ctx.sleep(1.0 * (attempt + 1))
    return target, rid, False


def _false_value(resp: Any) -> bool:
    """revokeSignInSessions answers 200 {"value": true} (documented 204); value=false is a failure."""
    try:
        body = resp.content
    except Exception:  # noqa: BLE001
        return False
    if not body or not body.strip():
        return False
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and data.get("value") is False
