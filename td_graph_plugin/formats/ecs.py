"""``output.format: ecs``: the envelope as an Elastic Common Schema document.

The Graph object is kept whole under ``td_graph.data.<source>`` (``td_graph.data.audit_logs.sign_ins``):
one field per source, so no two sources' objects can ever meet under the same name, whether
each source has its own index (td-graph's template) or several share one (a data view, a
user's own routing).  ``data.status`` is an object in sign-ins and a string in alerts: under
one shared name, whichever arrived first would fix the mapping and Elasticsearch would reject
the other kind.  Beside it, ``td_graph.{tenant,tenant_id,source,id,removed}``.
"""

from __future__ import annotations

from typing import Any

from .base import FormatterBase, MapHook
from .rules import Mapping, compile_mapping
from .tables.ecs import COMMON, ECS_VERSION, TABLES
from .tables.lookups import LOOKUPS

__all__ = ["EcsFormatter", "ECS_VERSION", "data_path", "envelope_from_ecs"]

def data_path(source: str) -> tuple[str, ...]:
    """Where the Graph object of ``source`` sits: ``("td_graph", "data", *source.split("."))``."""
    return ("td_graph", "data", *source.split("."))


class EcsFormatter(FormatterBase):
    """Envelope -> ECS document, per the source's table (or the envelope alone)."""

    name = "ecs"

    def __init__(self, tables: dict[str, dict[str, Any]] | None = None, hook: MapHook | None = None) -> None:
        super().__init__(hook)
        tables = TABLES if tables is None else tables
        self.mappings: dict[str, Mapping] = {s: compile_mapping(t, COMMON, LOOKUPS) for s, t in tables.items()}
        self.generic = compile_mapping({}, COMMON, LOOKUPS)

    def map(self, record: dict[str, Any], *, generic: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        mapping = self.generic if generic else self.mappings.get(record["source"], self.generic)
        mapping.apply(record, doc)
        return stamp(doc, record)

    def finish_hooked(self, doc: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        """A plugin's document, with the envelope's times where it has none (read back too)."""
        doc.setdefault("@timestamp", record.get("event_time") or record.get("collected_at"))
        event = doc.setdefault("event", {})
        if isinstance(event, dict):
            event.setdefault("created", record.get("collected_at"))
        return stamp(doc, record)


def stamp(doc: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Add what td-graph itself reads back (crash recovery, syslog-ng name-value pairs):
    ``td_graph``'s envelope identity, and the Graph object unless a hook placed it."""
    td = doc.get("td_graph")
    if not isinstance(td, dict):
        td = doc["td_graph"] = {}
    td["tenant"], td["tenant_id"], td["source"], td["id"] = (
        record["tenant"], record["tenant_id"], record["source"], record["id"])
    if record.get("removed") is not None:
        td["removed"] = record["removed"]
    holder = td
    *parents, last = data_path(record["source"])[1:]
    for key in parents:
        nxt = holder.get(key)
        if not isinstance(nxt, dict):
            nxt = holder[key] = {}
        holder = nxt
    holder.setdefault(last, record["data"])
    return doc


def envelope_from_ecs(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The contract's envelope back from a td-graph ECS document (None if it is not one)."""
    td = doc.get("td_graph")
    if not isinstance(td, dict) or not isinstance(td.get("source"), str):
        return None
    data: Any = doc
    for key in data_path(td["source"]):
        data = data.get(key) if isinstance(data, dict) else None
    event = doc.get("event") if isinstance(doc.get("event"), dict) else {}
    out = {"tenant": td.get("tenant"), "tenant_id": td.get("tenant_id"), "source": td["source"], "id": td.get("id"),
           "event_time": doc.get("@timestamp"), "collected_at": event.get("created")}
    if td.get("removed") is not None:
        out["removed"] = td["removed"]
    out["data"] = data if isinstance(data, dict) else {}
    return out
