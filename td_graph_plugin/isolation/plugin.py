"""td-graph's own implementation of the isolation hooks, registered as ``td_graph.isolation``.

The hooks carry no configuration, so the plugin object must be bound to an
``IsolationService`` first (the CLI does this; an embedding SOAR integration does the same)::

    config, pm, _ = load_validated("td-graph.yaml")
    with IsolationService.open(config) as service:
        pm.get_plugin(PLUGIN_NAME).bind(service)
        result = pm.hook.td_graph_isolate_user(tenant="contoso", user="a@contoso.com",
                                                reason="INC-1", steps=["disable", "revoke_sessions"],
                                                dry_run=True, requested_by="soar")

The result is ``ActionResult.to_dict()`` (outcome, steps with request ids, exit_code).
Calling an unbound plugin is an error naming the fix, never a silent ``None``.
"""

from __future__ import annotations

from typing import Any

import pluggy

from ..errors import TdGraphError
from ..hookspecs import hookimpl

__all__ = ["PLUGIN_NAME", "IsolationPlugin", "register_builtin"]

PLUGIN_NAME = "td_graph.isolation"


class IsolationNotBound(TdGraphError):
    kind = "config"


class IsolationPlugin:
    """The hook implementations; one instance per plugin manager."""

    def __init__(self, service: Any = None) -> None:
        self.service = service

    def bind(self, service: Any) -> "IsolationPlugin":
        self.service = service
        return self

    def _svc(self) -> Any:
        if self.service is None:
            raise IsolationNotBound(
                "the td_graph.isolation plugin is not bound to a configuration: call "
                "pm.get_plugin('td_graph.isolation').bind(IsolationService(...)) first"
            )
        return self.service

    @hookimpl
    def td_graph_isolate_user(
        self, tenant: str, user: str, reason: str, steps: list[str], dry_run: bool, requested_by: str | None
    ) -> dict[str, Any]:
        result = self._svc().isolate(tenant, user, reason, steps, dry_run, requested_by=requested_by)
        return result.to_dict()

    @hookimpl
    def td_graph_release_user(
        self, tenant: str, user: str, reason: str, dry_run: bool, force: bool, requested_by: str | None
    ) -> dict[str, Any]:
        result = self._svc().release(tenant, user, reason, dry_run, force=force, requested_by=requested_by)
        return result.to_dict()


def register_builtin(pm: pluggy.PluginManager) -> IsolationPlugin | None:
    """Register a fresh, unbound plugin under ``td_graph.isolation`` (unless blocked)."""
    if pm.is_blocked(PLUGIN_NAME):
        return None
    existing = pm.get_plugin(PLUGIN_NAME)
    if existing is not None:
        return existing
    plugin = IsolationPlugin()
    pm.register(plugin, name=PLUGIN_NAME)
    return plugin
