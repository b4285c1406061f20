"""Isolate and release: one ordered action each, every step reported.

isolate: resolve -> guard rails -> snapshot -> disable -> revoke sessions -> (force password
change) -> verify.  release: resolve -> isolation record -> enable (only if the isolation
disabled an account that was enabled before) -> what is not undone -> verify.

Rules the code keeps:

* No write before the guard rails pass; a dry run sends no write request at all.
* A failed write does not stop the next one (revoking sessions is still worth doing when
  disabling failed); the outcome says ``partial`` and every step keeps its own result.
* A password is never set, read or printed: only ``forceChangePasswordNextSignIn``.
* Re-isolating is idempotent: an already disabled account is not patched again, and sessions
  revoked by a still-active isolation are not revoked again unless ``revoke_again``.
* Every action (dry runs and refusals included) is stored and emitted before returning.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import time
import uuid
from datetime import datetime
from typing import Any, Callable, Iterator

import orjson

from ..config.model import Config, TenantConfig
from ..errors import ConfigError, GraphNotFound, TdGraphError
from ..graph.classify import header
from ..metrics import Metrics
from ..state import StateStore
from ..timeutil import format_time, parse_time, utcnow
from .advice import advise, error_fields
from .audit import Emit, active_isolation, chain_did, store_and_emit
from .guards import GuardReport, check_protected, check_roles, own_service_principal_id
from .model import (
    STEP_FAILED,
    STEP_OK,
    STEP_PLANNED,
    STEP_REFUSED,
    STEP_SKIPPED,
    WRITE_STEPS,
    ActionResult,
    Target,
    normalise_steps,
)
from .resolve import SOURCE, check_user_argument, get_user, graph_get, is_object_id

__all__ = ["IsolationService", "requesting_user"]

log = logging.getLogger("td_graph_plugin.isolation")

TOKEN_NOTE = (
    "access tokens already issued stay valid until they expire (typically about an hour, less where "
    "Continuous Access Evaluation applies); Graph says revocation can take a few minutes"
)
SYNC_NOTE = (
    "the account is synchronised from on-premises AD: disable it there too, or the next sync can "
    "re-enable it (a password change also needs password writeback)"
)
GUEST_NOTE = (
    "the account is a guest (external user): revoking sessions does not end its sessions in its "
    "home tenant; disabling it blocks its access to this tenant"
)


def requesting_user(explicit: str | None = None) -> str:
    """Who asked: the caller's ``requested_by``, else the OS user."""
    if explicit and explicit.strip():
        return explicit.strip()
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (containers): say so
        return "unknown"


def _stamp(dt: datetime) -> str:
    return format_time(dt.replace(microsecond=(dt.microsecond // 1000) * 1000)) or ""


class IsolationService:
    """The Python API.  One per process is enough; it is safe to reuse for many actions.

    :param config: the validated configuration (``runtime.load_validated``).
    :param state: the state store (audit trail and release snapshots).  Required for real
        actions: without it nothing could be restored or audited.
    :param metrics: counts ``td_graph_isolation_actions_total``.
    :param emit: called with each audit record (the pipeline's output); None = not emitted.
    :param client_factory: ``TenantConfig -> GraphClient``-like (tests inject fakes).
    """

    def __init__(
        self,
        config: Config,
        *,
        state: StateStore | None,
        metrics: Metrics | None = None,
        emit: Emit | None = None,
        client_factory: Callable[[TenantConfig], Any] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        now: Callable[[], datetime] = utcnow,
        verify_attempts: int = 3,
    ) -> None:
        self.config = config
        self.state = state
        self.metrics = metrics if metrics is not None else Metrics()
        self.emit = emit
        self._client_factory = client_factory
        self._sleep = sleep
        self._now = now
        self.verify_attempts = max(1, verify_attempts)

    # ------------------------------------------------------------------ construction
    @classmethod
    @contextlib.contextmanager
    def open(cls, config: Config | str, *, metrics: Metrics | None = None, emit_to_output: bool = True,
             **kw: Any) -> Iterator["IsolationService"]:
        """A service on the configuration's state database and output (what the CLI uses).

        The isolation audit store is opened first: if it cannot be, nothing is attempted,
        because nothing could be audited.  Audit records reach the pipeline through the
        collector's feed (or through this process when no collector is running).
        """
        from .audit import FeedFlusher

        if isinstance(config, str):
            from ..runtime import load_validated

            config = load_validated(config)[0]
        # The shared audit store, not the collector's state: isolation must work while
        # `td-graph run` holds that (the 3 a.m. case).  The collector emits new audit rows.
        state = StateStore(config.isolation_state_path, exclusive=False)
        try:
            metrics = metrics if metrics is not None else Metrics()
            emitter = FeedFlusher(config, metrics) if emit_to_output else None
            yield cls(config, state=state, metrics=metrics, emit=emitter, **kw)
        finally:
            state.close()

    def _tenant(self, name: str) -> TenantConfig:
        try:
            return self.config.tenant(name)
        except KeyError:
            known = ", ".join(t.name for t in self.config.tenants)
            raise ConfigError(f"unknown tenant {name!r}; configured: {known}", key="--tenant") from None

    @contextlib.contextmanager
    def _client(self, tenant: TenantConfig) -> Iterator[Any]:
        if self._client_factory is not None:
            yield self._client_factory(tenant)
            return
        from ..graph.client import GraphClient

        client = GraphClient(tenant, self.config.http, self.metrics)
        try:
            yield client
        finally:
            client.close()

    def _new_result(self, action: str, tenant: TenantConfig, user: str, reason: str, requested_by: str | None,
                    dry_run: bool, options: dict[str, Any]) -> ActionResult:
        return ActionResult(
            action=action,
            tenant=tenant.name,
            tenant_id=tenant.tenant_id,
            action_id=str(uuid.uuid4()),
            user=user,
            reason=reason,
            requested_by=requesting_user(requested_by),
            dry_run=bool(dry_run),
            started_at=_stamp(self._now()),
            options=options,
            os_user=requesting_user(None),
        )

    @staticmethod
    def _check_reason(reason: Any) -> str:
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("a reason is required (a ticket or incident reference): --reason TEXT")
        return reason.strip()

    # ------------------------------------------------------------------ isolate
    def isolate(
        self,
        tenant: str,
        user: str,
        reason: str,
        steps: Any = None,
        dry_run: bool = False,
        *,
        allow_privileged: bool = False,
        revoke_again: bool = False,
        requested_by: str | None = None,
    ) -> ActionResult:
        """Contain ``user`` (UPN or object id) in ``tenant``.

        ``steps``: any of ``disable``, ``revoke_sessions``, ``force_password_change`` (they
        always run in that order); default ``disable`` + ``revoke_sessions``.  Raises
        ``ValueError`` / ``ConfigError`` for bad arguments before anything is sent.
        """
        wanted = normalise_steps(steps)
        user = check_user_argument(user)
        reason = self._check_reason(reason)
        tcfg = self._tenant(tenant)
        result = self._new_result(
            "isolate", tcfg, user, reason, requested_by, dry_run,
            {"steps": list(wanted), "allow_privileged": bool(allow_privileged), "revoke_again": bool(revoke_again)},
        )
        if self.state is None and not dry_run:
            raise ValueError("isolation needs a state store: it keeps the snapshot release restores from")
        with self._client(tcfg) as client:
            try:
                self._isolate(client, tcfg, result, wanted, allow_privileged, revoke_again)
            except Exception as exc:  # noqa: BLE001 - a bug must still be audited
                log.exception("isolation %s: unexpected error", result.action_id)
                detail, hint = advise("internal", exc)
                result.add("internal", STEP_FAILED, detail, hint=hint)
        result.outcome = _isolate_outcome(result)
        result.message = _isolate_message(result)
        return self._finish(tcfg, result)

    def _isolate(self, client: Any, tcfg: TenantConfig, result: ActionResult, wanted: tuple[str, ...],
                 allow_privileged: bool, revoke_again: bool) -> None:
        user = result.user
        # 0. Never td-graph's own application.
        if user.lower() == tcfg.client_id.lower():
            result.add("resolve", STEP_SKIPPED, "not resolved: USER is td-graph's own application id")
            result.add("guard", STEP_REFUSED, "refused: USER is td-graph's own application (client_id); "
                       "td-graph never isolates its own service principal")
            return
        # 1. Resolve.
        target = self._resolve(client, tcfg, result)
        if target is None:
            return
        # 2. Guard rails.
        report = self._guard(client, result, target, allow_privileged)
        if report is None:
            return
        # 3. Snapshot.
        result.before = target.state()
        chain = self._chain(tcfg, target.id)
        state_text = "enabled" if target.account_enabled else "disabled" if target.account_enabled is False else "unknown"
        snap = f"accountEnabled={str(target.account_enabled).lower()} ({state_text}); sessions valid from {target.sessions_valid_from or 'unknown'}"
        if chain:
            first = chain[0]
            snap += f"; isolation {first.get('id')} of {first.get('event_time')} is still active"
        result.add("snapshot", STEP_OK, snap, request_id=result.step("resolve").request_id)  # type: ignore[union-attr]
        ctx = _Ctx(self, client, tcfg, report)
        # 4. Disable.
        if "disable" not in wanted:
            result.add("disable", STEP_SKIPPED, "not requested (--no-disable)")
        elif target.account_enabled is False:
            result.add("disable", STEP_SKIPPED, "already disabled: nothing to change")
        elif result.dry_run:
            result.add("disable", STEP_PLANNED, f"would PATCH /users/{target.id} {{\"accountEnabled\": false}}")
        else:
            self._write_step(ctx, result, "disable", "PATCH", f"/users/{target.id}", {"accountEnabled": False},
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
            self._write_step(ctx, result, "revoke_sessions", "POST", f"/users/{target.id}/revokeSignInSessions", None,
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
            self._write_step(ctx, result, "force_password_change", "PATCH", f"/users/{target.id}",
                             {"passwordProfile": {"forceChangePasswordNextSignIn": True}},
                             "the user must change the password at next sign-in (no password was set)")
        # 7. Verify.
        self._verify_isolation(client, result, target, wanted)
        if result.succeeded("revoke_sessions"):
            result.notes.append(TOKEN_NOTE)

    # ------------------------------------------------------------------ release
    def release(
        self,
        tenant: str,
        user: str,
        reason: str,
        dry_run: bool = False,
        *,
        force: bool = False,
        requested_by: str | None = None,
    ) -> ActionResult:
        """Undo an isolation from its stored snapshot.

        Re-enables only an account the isolation disabled and that was enabled before it.
        Revoked sessions cannot be restored and ``forceChangePasswordNextSignIn`` is not
        reverted (both are said in the result).  Without an active isolation record it is
        refused unless ``force`` (which then re-enables the account without a snapshot).
        """
        user = check_user_argument(user)
        reason = self._check_reason(reason)
        tcfg = self._tenant(tenant)
        result = self._new_result("release", tcfg, user, reason, requested_by, dry_run, {"force": bool(force)})
        if self.state is None and not dry_run:
            raise ValueError("release needs the state store: the isolation snapshot is kept there")
        with self._client(tcfg) as client:
            try:
                self._release(client, tcfg, result, force)
            except Exception as exc:  # noqa: BLE001
                log.exception("release %s: unexpected error", result.action_id)
                detail, hint = advise("internal", exc)
                result.add("internal", STEP_FAILED, detail, hint=hint)
        result.outcome = _release_outcome(result)
        result.message = _release_message(result)
        return self._finish(tcfg, result)

    def _release(self, client: Any, tcfg: TenantConfig, result: ActionResult, force: bool) -> None:
        target = self._resolve(client, tcfg, result)
        if target is None:
            return
        result.before = target.state()
        records = list(self.state.isolations(tcfg.name, target.id)) if self.state is not None else []
        chain = active_isolation(records)
        ctx = _Ctx(self, client, tcfg, GuardReport())
        if chain:
            first = chain[0]
            d = first.get("data") or {}
            result.add("record", STEP_OK,
                       f"active isolation {first.get('id')} of {first.get('event_time')} by {d.get('requested_by')} "
                       f"(reason: {d.get('reason')}); {len(chain)} isolation action(s) to close")
            result.options["released_isolations"] = [r.get("id") for r in chain]
            baseline = ((d.get("before") or {}).get("accountEnabled"))
            disabled_by = chain_did(chain, "disable")
            if baseline is False:
                result.add("enable", STEP_SKIPPED,
                           f"the account was already disabled before isolation {first.get('id')}: left disabled")
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
                self._enable(ctx, result, target)
        else:
            last = [r for r in records if r.get("action") == "release" and not (r.get("data") or {}).get("dry_run")]
            why = "no active isolation record for this user in tenant " + tcfg.name
            if last:
                why += f" (last released by action {last[-1].get('id')} at {last[-1].get('event_time')})"
            if not force:
                result.add("record", STEP_REFUSED,
                           f"refused: {why}; nothing to restore from. Pass --force to re-enable the account anyway")
                return
            result.add("record", STEP_SKIPPED, f"{why}; --force: re-enabling without a snapshot")
            if target.account_enabled is True:
                result.add("enable", STEP_SKIPPED, "already enabled: nothing to change")
            else:
                self._enable(ctx, result, target)
        # What release does not undo.
        if chain_did(chain, "revoke_sessions") is not None:
            result.add("revoke_sessions", STEP_SKIPPED,
                       "not undone: revoked sessions cannot be restored; the user signs in again")
        pw = chain_did(chain, "force_password_change")
        if pw is not None:
            result.add("force_password_change", STEP_SKIPPED,
                       f"NOT reverted automatically: forceChangePasswordNextSignIn was set by isolation {pw.get('id')}; "
                       "the user must change the password at next sign-in (clear it in the Entra admin center if that is wrong)")
            result.notes.append("forceChangePasswordNextSignIn stays set: release does not revert it")
        # Verify.
        if result.dry_run:
            result.add("verify", STEP_PLANNED, "would read the user back")
        elif result.succeeded("enable"):
            after, rid, ok = self._read_back(client, target.id, lambda t: t.account_enabled is True)
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

    def _enable(self, ctx: "_Ctx", result: ActionResult, target: Target) -> None:
        if result.dry_run:
            result.add("enable", STEP_PLANNED, f"would PATCH /users/{target.id} {{\"accountEnabled\": true}}")
        else:
            self._write_step(ctx, result, "enable", "PATCH", f"/users/{target.id}", {"accountEnabled": True},
                             "accountEnabled set to true")

    # ------------------------------------------------------------------ shared steps
    def _resolve(self, client: Any, tcfg: TenantConfig, result: ActionResult) -> Target | None:
        user = result.user
        try:
            target, rid = get_user(client, user)
        except GraphNotFound as exc:
            if is_object_id(user) and result.action == "isolate":
                sp = own_service_principal_id(client, tcfg.client_id)
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

    def _guard(self, client: Any, result: ActionResult, target: Target, allow_privileged: bool) -> GuardReport | None:
        report = GuardReport()
        check_protected(client, target, self.config.protected_users, report)
        for note in report.notes:
            log.info("isolation guard: %s", note)
        if report.protected_by is not None:
            result.add("guard", STEP_REFUSED,
                       f"refused: {target.label()} is protected (isolation.protected_users entry {report.protected_by!r}); "
                       "nothing was changed", request_ids=list(report.request_ids))
            return None
        if report.errors:
            result.add("guard", STEP_REFUSED,
                       "refused: could not check isolation.protected_users: " + "; ".join(report.errors)
                       + " (fix the error and run again; a protected account must never be isolated by mistake)",
                       request_ids=list(report.request_ids))
            return None
        check_roles(client, target, report)
        result.roles = [{k: v for k, v in r.items() if k != "group_id"} for r in report.roles]
        if report.role_assignable_groups:
            result.options["role_assignable_groups"] = report.role_assignable_groups
        rids = list(report.request_ids)
        if report.errors and not allow_privileged:
            result.add("guard", STEP_REFUSED,
                       "refused: could not check the user's directory roles: " + "; ".join(report.errors)
                       + ". Check the roles in the Entra admin center, then pass --allow-privileged",
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
                f"privileged target ({report.describe_roles()}): the app needs Privileged Authentication Administrator "
                "(or Global Administrator) to change it, else Graph answers 403"
            )
        elif report.errors:
            parts.append("roles could not be checked (--allow-privileged given)")
            result.warnings.extend(report.errors)
        else:
            parts.append("no directory role")
        result.add("guard", STEP_OK, "; ".join(parts), request_ids=rids,
                   request_id=rids[-1] if rids else None)
        return report

    def _chain(self, tcfg: TenantConfig, user_id: str) -> list[dict[str, Any]]:
        if self.state is None:
            return []
        return active_isolation(self.state.isolations(tcfg.name, user_id))

    def _write_step(self, ctx: "_Ctx", result: ActionResult, name: str, method: str, path: str,
                    body: dict[str, Any] | None, done: str) -> None:
        client = ctx.client
        try:
            resp = client.request(
                method, client.url("v1.0", path), json=body, source=SOURCE, throttle_class="directory",
                expect_json=False,
            )
        except TdGraphError as exc:
            detail, hint = advise(name, exc, privileged=ctx.report.privileged, roles=ctx.report.describe_roles(),
                                  granted=ctx.granted() if getattr(exc, "status", None) == 403 else None)
            result.add(name, STEP_FAILED, detail, hint=hint, **error_fields(exc))
            return
        rid = header(resp.headers, "request-id")
        refused = _false_value(resp)
        if refused:
            result.add(name, STEP_FAILED, f"Graph answered {resp.status_code} but with value=false", request_id=rid,
                       http_status=resp.status_code, hint="run the same command again; report it with the request id")
            return
        result.add(name, STEP_OK, f"{done} (HTTP {resp.status_code})", request_id=rid, http_status=resp.status_code)

    def _read_back(self, client: Any, user_id: str, check: Callable[[Target], bool]) -> tuple[Target | None, str | None, bool]:
        target: Target | None = None
        rid: str | None = None
        for attempt in range(self.verify_attempts):
            try:
                target, rid = get_user(client, user_id)
            except TdGraphError as exc:
                log.warning("read-back of %s failed: %s", user_id, exc)
                rid = getattr(exc, "request_id", None) or rid
                target = None
            if target is not None and check(target):
                return target, rid, True
            if attempt + 1 < self.verify_attempts:
                self._sleep(1.0 * (attempt + 1))
        return target, rid, False

    def _verify_isolation(self, client: Any, result: ActionResult, target: Target, wanted: tuple[str, ...]) -> None:
        if result.dry_run:
            result.add("verify", STEP_PLANNED, "would read the user back")
            return
        changed = [n for n in WRITE_STEPS if result.succeeded(n)]
        if not changed:
            result.add("verify", STEP_SKIPPED, "nothing was changed")
            result.after = result.before
            return
        expect_disabled = result.succeeded("disable")
        after, rid, ok = self._read_back(
            client, target.id, (lambda t: t.account_enabled is False) if expect_disabled else (lambda t: True)
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
                data, prid = graph_get(client, f"/users/{target.id}", {"$select": "id,passwordProfile"})
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

    # ------------------------------------------------------------------ end
    def _finish(self, tcfg: TenantConfig, result: ActionResult) -> ActionResult:
        result.finished_at = _stamp(self._now())
        store_and_emit(self.state, self.emit, tcfg, result, _stamp(self._now()))
        self.metrics.isolation(tcfg.name, result.action, result.outcome)
        log.info(
            "%s %s in %s: %s (action %s)", result.action, result.target.id if result.target else result.user,
            tcfg.name, result.outcome, result.action_id,
        )
        return result


class _Ctx:
    """What a failing write needs to explain itself; granted permissions are read lazily."""

    def __init__(self, service: IsolationService, client: Any, tenant: TenantConfig, report: GuardReport) -> None:
        self.service, self.client, self.tenant, self.report = service, client, tenant, report
        self._granted: set[str] | None = None
        self._tried = False

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


# --------------------------------------------------------------------------- outcomes


def _any(result: ActionResult, status: str, names: tuple[str, ...] | None = None) -> bool:
    return any(s.status == status and (names is None or s.name in names) for s in result.steps)


def _isolate_outcome(result: ActionResult) -> str:
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


def _isolate_message(result: ActionResult) -> str:
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


def _release_outcome(result: ActionResult) -> str:
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


def _release_message(result: ActionResult) -> str:
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
