"""Hook specifications: the extension points of td-graph (pluggy project ``td_graph``).

Every hook is named ``td_graph_*``.  Plugins implement them with ``@hookimpl`` (importable from
``td_graph_plugin``) in a module named in the ``td_graph_plugin`` entry-point group or dropped
into the configured ``hooks_dir``.  The manager calls ``check_pending()``, so a misspelt hook
name is an error, not a silent no-op.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    from .spec import SourceSpec

__all__ = [
    "PROJECT",
    "hookspec",
    "hookimpl",
    "td_graph_register_sources",
    "td_graph_filter_record",
    "td_graph_map_record",
]

PROJECT = "td_graph"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def td_graph_register_sources(register: Callable[["SourceSpec"], None]) -> None:
    """Register Graph sources by calling ``register(spec)`` once per :class:`SourceSpec`.

    The built-in catalogue uses this same hook.  Registering a name that another plugin already
    registered is an error naming both plugins.

    :param register: callback taking one ``SourceSpec``.
    """


@hookspec
def td_graph_filter_record(tenant: str, source: str, record: dict[str, Any]) -> bool | None:
    """Decide whether a collected record goes to the output.

    Return ``False`` to drop it (it is counted and the checkpoint still advances past it);
    ``None`` or ``True`` to keep it.  A plugin may also edit ``record["data"]`` in place, for
    example to remove a field.  Called for every record, so keep it cheap.

    :param tenant: the tenant's configured name.
    :param source: the source name, e.g. ``audit_logs.sign_ins``.
    :param record: the envelope (tenant, tenant_id, source, id, event_time, collected_at, data).
    """


@hookspec(firstresult=True)
def td_graph_map_record(fmt: str, source: str, record: dict[str, Any]) -> dict[str, Any] | None:
    """Map a record to ``output.format`` yourself (docs/formats.md, "Mapping your own source").

    Return the document to write (a dict) to replace td-graph's mapping of ``source``, or
    ``None`` to leave it to td-graph.  Stops at the first non-None result.  td-graph then adds
    what it reads back itself: ``td_graph.{tenant,tenant_id,source,id}``, the Graph object and
    missing ``@timestamp``/``event.created`` (ECS), ``unmapped.td_graph`` and ``raw_data``
    (OCSF).  Not called for ``raw``; called for every record otherwise, so keep it cheap.

    :param fmt: ``ecs`` or ``ocsf``.
    :param source: the source name, e.g. ``acme.widgets``.
    :param record: the envelope (tenant, tenant_id, source, id, event_time, collected_at, data).
    """
