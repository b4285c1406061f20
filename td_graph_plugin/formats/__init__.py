"""Record formats (``output.format``): the contract's envelope (``raw``), ECS or OCSF.

A formatter is a callable applied to each record after the record filter and before encoding
(``SourceRun.formatter``), for every output alike: stdout, file and syslog-ng.  The mapping of
each source is a data table (``formats/tables``), documented in docs/formats.md, and a plugin
maps a source of its own through ``td_graph_map_record(fmt, source, record)``.

``envelope_of`` reads the envelope back from any of the three forms: td-graph itself needs it
after writing (the file output's crash recovery, syslog-ng's name-value pairs).
"""

from __future__ import annotations

from typing import Any, Callable

from .ecs import ECS_VERSION, EcsFormatter, envelope_from_ecs
from .ocsf import OCSF_VERSION, OcsfFormatter, envelope_from_ocsf

__all__ = ["FORMATS", "build_formatter", "envelope_of", "EcsFormatter", "OcsfFormatter", "ECS_VERSION", "OCSF_VERSION"]

FORMATS = ("raw", "ecs", "ocsf")
Formatter = Callable[[dict[str, Any]], dict[str, Any]]


def build_formatter(fmt: str | None, pm: Any = None) -> Formatter | None:
    """The formatter for ``output.format`` (None for ``raw``: the envelope is written as is).

    :param pm: the plugin manager; its ``td_graph_map_record`` implementations, if any, are
        asked first for every record.
    """
    if fmt in (None, "", "raw"):
        return None
    hook = _map_hook(pm, fmt)
    if fmt == "ecs":
        return EcsFormatter(hook=hook)
    if fmt == "ocsf":
        return OcsfFormatter(hook=hook)
    raise ValueError(f"unknown output.format {fmt!r} (one of {', '.join(FORMATS)})")


def _map_hook(pm: Any, fmt: str) -> Callable[[dict[str, Any]], dict[str, Any] | None] | None:
    caller = getattr(getattr(pm, "hook", None), "td_graph_map_record", None)
    if caller is None or not caller.get_hookimpls():
        return None  # no plugin maps anything: no per-record hook call at all

    def call(record: dict[str, Any]) -> dict[str, Any] | None:
        result = caller(fmt=fmt, source=record["source"], record=record)
        return result if isinstance(result, dict) else None

    return call


def envelope_of(doc: Any, *, data: bool = True) -> dict[str, Any] | None:
    """The envelope (tenant, tenant_id, source, id, event_time, collected_at, removed, data) of
    a written record in any format; None when ``doc`` is none of td-graph's.  ``data=False``
    skips reading the Graph object back (OCSF's ``raw_data``) when only the identity matters."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("source"), str) and "data" in doc:
        return doc
    if "td_graph" in doc:
        return envelope_from_ecs(doc)
    if "unmapped" in doc:
        return envelope_from_ocsf(doc, data=data)
    return None
