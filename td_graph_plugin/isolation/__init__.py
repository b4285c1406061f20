"""User isolation (threat containment): disable, revoke sessions, force a password change; release.

Python API::

    from td_graph_plugin.isolation import IsolationService
    with IsolationService.open("td-graph.yaml") as svc:          # state + configured output
        r = svc.isolate("contoso", "alice@contoso.com", reason="INC-4711",
                        steps=("disable", "revoke_sessions"), dry_run=True)
        print(r.outcome, [(s.name, s.status, s.request_id) for s in r.steps])
        svc.release("contoso", "alice@contoso.com", reason="INC-4711 closed")

Hooks ``td_graph_isolate_user`` / ``td_graph_release_user`` are implemented by
``plugin.IsolationPlugin`` (registered as ``td_graph.isolation``); the CLI commands are
``td-graph isolate`` and ``td-graph release`` (``cli/isolation_cmd.py``).

Modules: ``model`` (results), ``resolve`` (UPN/object id -> user), ``guards`` (protected
accounts, privileged roles), ``advice`` (errors -> what to do), ``actions`` (the ordered
steps), ``audit`` (state + pipeline record), ``report`` (human text), ``plugin`` (hooks).
"""

from .actions import IsolationService, requesting_user
from .audit import FeedFlusher, active_isolation
from .model import DEFAULT_STEPS, OUTCOMES, WRITE_STEPS, ActionResult, StepResult, Target, normalise_steps
from .plugin import PLUGIN_NAME, IsolationPlugin, register_builtin
from .report import render

__all__ = [
    "IsolationService",
    "IsolationPlugin",
    "PLUGIN_NAME",
    "register_builtin",
    "FeedFlusher",
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
