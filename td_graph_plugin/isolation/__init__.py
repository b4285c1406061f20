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

Modules: ``model`` (results), ``resolve`` (UPN/object id -> user), ``protected``
(``isolation.protected_users`` entries -> object ids, fail closed), ``guards`` (protected
accounts, privileged roles with PIM), ``advice`` (errors -> fixed descriptions and what to
do), ``credential`` (the separate isolation app), ``steps`` (what every step shares: context,
resolve, write, read back), ``isolate_steps`` (guard rails, disable, revoke, password change,
verify), ``release_steps`` (restore from the snapshot), ``outcome`` (outcome and message from
the steps), ``service`` (the API), ``audit`` (state + pipeline record, started and final),
``report`` (human text), ``doctor`` (doctor's isolation section).
"""

from .audit import active_isolation
from .doctor import isolation_checks, render_isolation
from .model import DEFAULT_STEPS, OUTCOMES, WRITE_STEPS, ActionResult, StepResult, Target, normalise_steps
from .protected import unresolvable_protected_entries
from .report import render
from .service import ClientFactory, Emit, IsolationService, open_store, operator_name, requesting_user

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
    "operator_name",
    "render",
    "unresolvable_protected_entries",
    "isolation_checks",
    "render_isolation",
]
