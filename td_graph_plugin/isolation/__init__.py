"""User isolation (threat containment): disable, revoke sessions, force a password change; release.

One entry point, the Python API ``IsolationService`` (``service.py``); the CLI commands
``td-graph isolate`` / ``td-graph release`` (``cli/isolation_cmd.py``) call it, and so can a
SOAR integration.  It is handed an already loaded configuration, the isolation audit store and
an ``emit`` callable; it loads nothing itself::

    from td_graph_plugin.isolation import IsolationService, open_store

    with open_store(config) as store:
        svc = IsolationService(config, state=store, emit=send_to_siem)
        r = svc.isolate("contoso", "alice@contoso.com", "INC-4711",
                        steps=("disable", "revoke_sessions"), dry_run=True)
        print(r.outcome, [(s.name, s.status, s.request_id) for s in r.steps])
        svc.release("contoso", "alice@contoso.com", "INC-4711 closed")

Modules: ``model`` (results), ``resolve`` (UPN/object id -> user), ``guards`` (protected
accounts, privileged roles), ``advice`` (errors -> what to do), ``steps`` (what every step
shares: context, resolve, write, read back), ``isolate_steps`` (guard rails, disable, revoke,
password change, verify), ``release_steps`` (restore from the snapshot), ``outcome``
(outcome and message from the steps), ``service`` (the API), ``audit`` (state + pipeline
record), ``report`` (human text).
"""

from .audit import active_isolation
from .model import DEFAULT_STEPS, OUTCOMES, WRITE_STEPS, ActionResult, StepResult, Target, normalise_steps
from .report import render
from .service import ClientFactory, Emit, IsolationService, open_store, requesting_user

__all__ = [
    "IsolationService",
    "ClientFactory",
    "Emit",
    "open_store",
    "ActionResult",
    "StepResult",
    "Target",
    "DEFAULT_STEPS",
    "WRITE_STEPS",
    "OUTCOMES",
    "normalise_steps",
    "active_isolation",
    "requesting_user",
    "render",
]
