"""The isolation API: isolate or release one user, every step reported, every action audited.

The one entry point: ``td-graph isolate`` / ``td-graph release`` call it, and so does a SOAR
integration.  It is given what it works with (nothing is loaded behind the caller's back):
the validated configuration, the isolation audit store, an ``emit`` callable for the audit
record and, optionally, a Graph client factory::

    from td_graph_plugin.isolation import IsolationService, open_store

    with open_store(config) as store:                  # config: an already loaded Config
        service = IsolationService(config, state=store, emit=my_emit)
        r = service.isolate("contoso", "alice@contoso.com", "INC-4711",
                            steps=("disable", "revoke_sessions"), dry_run=True, requested_by="soar")
        print(r.outcome, r.exit_code, [(s.name, s.status, s.request_id) for s in r.steps])
        service.release("contoso", "alice@contoso.com", "INC-4711 closed")

Every action (dry runs and refusals included) is stored and emitted before it returns; an
unexpected error is recorded as step ``internal`` and audited too.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import time
import uuid
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator

from ..config.model import Config, TenantConfig
from ..errors import ConfigError
from ..metrics import Metrics
from ..state import StateStore
from ..timeutil import format_time, utcnow
from .advice import advise
from .audit import store_and_emit
from .isolate_steps import run_isolate
from .model import STEP_FAILED, ActionResult, normalise_steps
from .outcome import settle
from .release_steps import run_release
from .resolve import check_user_argument
from .steps import StepContext

__all__ = ["IsolationService", "ClientFactory", "Emit", "open_store", "requesting_user"]

log = logging.getLogger("td_graph_plugin.isolation")

Emit = Callable[[dict[str, Any]], None]
"""Called with each audit record (the ``td_graph.isolation`` envelope), after it is stored."""
ClientFactory = Callable[[TenantConfig], Any]
"""``TenantConfig -> GraphClient``-like; the caller owns (and closes) what it returns."""


def requesting_user(explicit: str | None = None) -> str:
    """Who asked: the caller's ``requested_by``, else the OS user."""
    if explicit and explicit.strip():
        return explicit.strip()
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (containers): say so
        return "unknown"


@contextlib.contextmanager
def open_store(config: Config) -> Iterator[StateStore]:
    """The shared isolation audit store (``config.isolation_state_path``), not the collector's
    state: isolation must work while ``td-graph run`` holds that (the 3 a.m. case)."""
    store = StateStore(config.isolation_state_path, exclusive=False)
    try:
        yield store
    finally:
        store.close()


def _stamp(dt: datetime) -> str:
    return format_time(dt.replace(microsecond=(dt.microsecond // 1000) * 1000)) or ""


class IsolationService:
    """Isolate and release.  One per process is enough; it is safe to reuse for many actions.

    :param config: the validated configuration (tenants, ``isolation.protected_users``, http).
    :param state: the isolation audit store (``open_store(config)``): the audit trail and the
        snapshots release restores from.  Required for real actions; a dry run may pass None.
    :param metrics: counts ``td_graph_isolation_actions_total``.
    :param emit: called with each audit record after it is stored; None = not emitted.
    :param client_factory: ``TenantConfig -> GraphClient``-like (a SOAR's own client, test
        fakes); default: a ``GraphClient`` per action, closed after it.
    :param sleep: pause between read-back attempts; ``now``: the clock of the timestamps.
    :param verify_attempts: how often the user is read back before verify fails.
    """

    def __init__(
        self,
        config: Config,
        *,
        state: StateStore | None,
        metrics: Metrics | None = None,
        emit: Emit | None = None,
        client_factory: ClientFactory | None = None,
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

    # ------------------------------------------------------------------ isolate
    def isolate(
        self,
        tenant: str,
        user: str,
        reason: str,
        steps: Iterable[str] | str | None = None,
        dry_run: bool = False,
        *,
        allow_privileged: bool = False,
        revoke_again: bool = False,
        requested_by: str | None = None,
    ) -> ActionResult:
        """Contain ``user`` (UPN or object id) in ``tenant`` (its configured name).

        ``steps``: any of ``disable``, ``revoke_sessions``, ``force_password_change`` (they
        always run in that order); default ``disable`` + ``revoke_sessions``.
        ``allow_privileged``: allow a target holding a directory role (never a protected
        user).  ``revoke_again``: revoke sessions even if a still-active isolation did.
        ``requested_by``: who asks (default: the OS user).  Raises ``ValueError`` /
        ``ConfigError`` for bad arguments before anything is sent.
        """
        wanted = normalise_steps(steps)
        user = check_user_argument(user)
        reason = _check_reason(reason)
        tcfg = self._tenant(tenant)
        result = self._new_result(
            "isolate", tcfg, user, reason, requested_by, dry_run,
            {"steps": list(wanted), "allow_privileged": bool(allow_privileged), "revoke_again": bool(revoke_again)},
        )
        if self.state is None and not dry_run:
            raise ValueError("isolation needs a state store: it keeps the snapshot release restores from")
        with self._context(tcfg) as ctx:
            try:
                run_isolate(ctx, result, wanted, allow_privileged, revoke_again)
            except Exception as exc:  # noqa: BLE001 - a bug must still be audited
                log.exception("isolation %s: unexpected error", result.action_id)
                detail, hint = advise("internal", exc)
                result.add("internal", STEP_FAILED, detail, hint=hint)
        return self._finish(tcfg, result)

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
        reason = _check_reason(reason)
        tcfg = self._tenant(tenant)
        result = self._new_result("release", tcfg, user, reason, requested_by, dry_run, {"force": bool(force)})
        if self.state is None and not dry_run:
            raise ValueError("release needs the state store: the isolation snapshot is kept there")
        with self._context(tcfg) as ctx:
            try:
                run_release(ctx, result, force)
            except Exception as exc:  # noqa: BLE001
                log.exception("release %s: unexpected error", result.action_id)
                detail, hint = advise("internal", exc)
                result.add("internal", STEP_FAILED, detail, hint=hint)
        return self._finish(tcfg, result)

    # ------------------------------------------------------------------ plumbing
    def _tenant(self, name: str) -> TenantConfig:
        try:
            return self.config.tenant(name)
        except KeyError:
            known = ", ".join(t.name for t in self.config.tenants)
            raise ConfigError(f"unknown tenant {name!r}; configured: {known}", key="--tenant") from None

    @contextlib.contextmanager
    def _context(self, tenant: TenantConfig) -> Iterator[StepContext]:
        with self._client(tenant) as client:
            yield StepContext(
                client=client, tenant=tenant, state=self.state, protected_users=tuple(self.config.protected_users),
                sleep=self._sleep, verify_attempts=self.verify_attempts,
            )

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

    def _finish(self, tcfg: TenantConfig, result: ActionResult) -> ActionResult:
        settle(result)
        result.finished_at = _stamp(self._now())
        store_and_emit(self.state, self.emit, tcfg, result, _stamp(self._now()))
        self.metrics.isolation(tcfg.name, result.action, result.outcome)
        log.info(
            "%s %s in %s: %s (action %s)", result.action, result.target.id if result.target else result.user,
            tcfg.name, result.outcome, result.action_id,
        )
        return result


def _check_reason(reason: Any) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("a reason is required (a ticket or incident reference): --reason TEXT")
    return reason.strip()
