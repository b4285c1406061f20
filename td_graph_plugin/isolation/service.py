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
unexpected error is recorded as step ``internal`` and audited too.  An action that writes
stores a started record before its first write; Ctrl-C, SIGTERM turned into an exception, or
any other ``BaseException`` is audited as outcome ``interrupted`` (with the steps that ran)
and re-raised, carrying the result as ``exc.isolation_result``.  With ``tenants[].isolation``
configured, the actions run as that app (``credential.py``).
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import time
import traceback
import uuid
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator

from ..config.model import Config, TenantConfig
from ..errors import ConfigError
from ..metrics import Metrics
from ..state import StateStore
from ..state.backend import StateBackend
from ..state.opening import open_isolation_store
from ..timeutil import format_time, utcnow
from .advice import advise
from .audit import store_and_emit, store_started
from .credential import acting_tenant, uses_isolation_app
from .isolate_steps import run_isolate
from .model import STEP_FAILED, STEP_INTERRUPTED, ActionResult, normalise_steps
from .outcome import settle
from .release_steps import run_release
from .resolve import check_user_argument
from .steps import StepContext

__all__ = ["IsolationService", "ClientFactory", "Emit", "open_store", "requesting_user", "operator_name"]

log = logging.getLogger("td_graph_plugin.isolation")

Emit = Callable[[dict[str, Any]], None]
"""Called with each audit record (the ``td_graph.isolation`` envelope), after it is stored."""
ClientFactory = Callable[[TenantConfig], Any]
"""``TenantConfig -> GraphClient``-like; the caller owns (and closes) what it returns."""


def operator_name() -> str:
    """The login name of the process's real uid.  Never ``$USER``/``$LOGNAME`` (what
    ``getpass.getuser`` reads first): the caller sets those, the kernel sets the uid."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:  # pragma: no cover - not a POSIX system
        return getpass.getuser()
    uid = getuid()
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):  # no passwd entry (a container's arbitrary uid): say the uid
        return f"uid {uid}"


def requesting_user(explicit: str | None = None) -> str:
    """Who asked: the caller's ``requested_by``, else the OS user of the real uid."""
    if explicit and explicit.strip():
        return explicit.strip()
    return operator_name()


@contextlib.contextmanager
def open_store(config: Config) -> Iterator[StateBackend]:
    """The shared isolation audit store (``config.isolation_state_path``), not the collector's
    state: isolation must work while ``td-graph run`` holds that (the 3 a.m. case)."""
    store = open_isolation_store(config)
    assert store is not None  # missing_ok=False: always a store
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
        acting = acting_tenant(tcfg)  # ConfigError before anything is sent
        result = self._new_result(
            "isolate", tcfg, user, reason, requested_by, dry_run,
            {"steps": list(wanted), "allow_privileged": bool(allow_privileged), "revoke_again": bool(revoke_again)},
        )
        if self.state is None and not dry_run:
            raise ValueError("isolation needs a state store: it keeps the snapshot release restores from")
        self._note_app(tcfg, acting, result)
        with self._context(tcfg, acting, result) as ctx:
            self._run(tcfg, ctx, result, lambda: run_isolate(ctx, result, wanted, allow_privileged, revoke_again))
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
        allow_privileged: bool = False,
        requested_by: str | None = None,
    ) -> ActionResult:
        """Undo an isolation from its stored snapshot.

        Re-enables only an account the isolation disabled (or, if it was interrupted, may
        have disabled) and that was enabled before it.  Revoked sessions cannot be restored
        and ``forceChangePasswordNextSignIn`` is not reverted (both are said in the result).
        Without an active isolation record it is refused unless ``force``, which re-enables
        the account without a snapshot after the guard rails (protected users; privileged
        roles, PIM-eligible ones included, unless ``allow_privileged``).
        """
        user = check_user_argument(user)
        reason = _check_reason(reason)
        tcfg = self._tenant(tenant)
        acting = acting_tenant(tcfg)
        result = self._new_result("release", tcfg, user, reason, requested_by, dry_run,
                                  {"force": bool(force), "allow_privileged": bool(allow_privileged)})
        if self.state is None and not dry_run:
            raise ValueError("release needs the state store: the isolation snapshot is kept there")
        self._note_app(tcfg, acting, result)
        with self._context(tcfg, acting, result) as ctx:
            self._run(tcfg, ctx, result, lambda: run_release(ctx, result, force, allow_privileged))
        return self._finish(tcfg, result)

    # ------------------------------------------------------------------ plumbing
    def _tenant(self, name: str) -> TenantConfig:
        try:
            return self.config.tenant(name)
        except KeyError:
            known = ", ".join(t.name for t in self.config.tenants)
            raise ConfigError(f"unknown tenant {name!r}; configured: {known}", key="--tenant") from None

    @contextlib.contextmanager
    def _context(self, tenant: TenantConfig, acting: TenantConfig, result: ActionResult) -> Iterator[StepContext]:
        started: list[bool] = []

        def before_write(_step: str) -> bool:
            """The started record, once, before the action's first write (fail closed)."""
            if not started:
                started.append(store_started(self.state, tenant, result, _stamp(self._now())))
            return started[0]

        with self._client(acting) as client:
            yield StepContext(
                client=client, tenant=acting, state=self.state, protected_users=tuple(self.config.protected_users),
                sleep=self._sleep, verify_attempts=self.verify_attempts,
                own_app_ids=tuple(dict.fromkeys((tenant.client_id, acting.client_id))), before_write=before_write,
            )

    def _run(self, tcfg: TenantConfig, ctx: StepContext, result: ActionResult, body: Callable[[], None]) -> None:
        """Run the steps; a bug is recorded as step ``internal``; an interrupt is audited
        (outcome ``interrupted``) and re-raised with the result attached."""
        try:
            body()
        except Exception as exc:  # noqa: BLE001 - a bug must still be audited
            log.error("%s %s: unexpected error (%s)", result.action, result.action_id, type(exc).__name__)
            log.debug("%s %s: where: %s", result.action, result.action_id,
                      "".join(traceback.format_tb(exc.__traceback__)).strip())  # the stack, never the message
            if ctx.in_flight:
                result.add(ctx.in_flight, STEP_FAILED,
                           "unexpected error while the request was in flight: Graph may have applied it")
            detail, hint = advise("internal", exc)
            result.add("internal", STEP_FAILED, detail, hint=hint)
        except BaseException as exc:
            if ctx.in_flight:
                result.add(ctx.in_flight, STEP_INTERRUPTED,
                           "interrupted while the request was in flight: Graph may or may not have applied it",
                           hint="run the same command again (completed steps are skipped), or check the account "
                                "in the Entra admin center")
            result.add("interrupted", STEP_INTERRUPTED,
                       f"stopped ({type(exc).__name__}): the steps above ran, nothing after them did")
            self._finish(tcfg, result)
            try:
                exc.isolation_result = result  # type: ignore[attr-defined]
            except AttributeError:  # pragma: no cover - an exception type without a __dict__
                pass
            raise

    @staticmethod
    def _note_app(tenant: TenantConfig, acting: TenantConfig, result: ActionResult) -> None:
        result.options["app_id"] = acting.client_id
        result.options["credential"] = "isolation app" if uses_isolation_app(tenant) else "collector app"

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
