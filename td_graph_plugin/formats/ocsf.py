"""``output.format: ocsf``: the envelope as an OCSF event of the class the source's table names.

The Graph object's fields no rule wrote go under ``unmapped`` (OCSF: "attributes that are not
mapped to the event schema"), beside ``unmapped.td_graph`` (the envelope without ``data``);
``raw_data`` holds the Graph object itself as JSON text ("the raw event data as received from
the source"), so the object is never lost to a lossy conversion and crash recovery of the file
output reads it back exactly.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import orjson

from .base import FormatterBase, MapHook
from .rules import Mapping, compile_mapping, compile_when
from .tables.lookups import LOOKUPS
from .tables.ocsf import CLASSES, COMMON, OCSF_VERSION, SEVERITY, TABLES

__all__ = ["OcsfFormatter", "OCSF_VERSION", "envelope_from_ocsf"]

Variant = tuple["Callable[[Any], bool] | None", dict[str, Any], Mapping]


def _compile(table: dict[str, Any]) -> list[Variant]:
    out: list[Variant] = []
    for variant in table.get("variants") or [table]:
        when = compile_when(variant["when"], LOOKUPS) if variant.get("when") else None
        out.append((when, CLASSES[variant["class"]], compile_mapping(variant, COMMON, LOOKUPS)))
    return out


class OcsfFormatter(FormatterBase):
    """Envelope -> OCSF event (class, activity, severity, the mapped attributes, unmapped)."""

    name = "ocsf"

    def __init__(self, tables: dict[str, dict[str, Any]] | None = None, hook: MapHook | None = None) -> None:
        super().__init__(hook)
        tables = TABLES if tables is None else tables
        self.variants: dict[str, list[Variant]] = {s: _compile(t) for s, t in tables.items()}
        self.generic: list[Variant] = _compile({"class": "base_event"})

    def map(self, record: dict[str, Any], *, generic: bool) -> dict[str, Any]:
        variants = self.generic if generic else self.variants.get(record["source"], self.generic)
        cls, mapping = variants[-1][1], variants[-1][2]
        for when, c, m in variants:
            if when is None or when(record):
                cls, mapping = c, m
                break
        doc: dict[str, Any] = {}
        consumed: set[str] = set()
        mapping.apply(record, doc, consumed)
        doc = classify(doc, cls)
        data = record.get("data") or {}
        rest = {k: v for k, v in data.items() if k not in consumed} if isinstance(data, dict) else {}
        return stamp(doc, record, rest)

    def finish_hooked(self, doc: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        return stamp(doc, record, {})


def classify(doc: dict[str, Any], cls: dict[str, Any]) -> dict[str, Any]:
    """The class's ids and the schema's captions, in front of the mapped attributes."""
    activity = doc.get("activity_id")
    activity = activity if isinstance(activity, int) and not isinstance(activity, bool) else 0
    caption = cls["activities"].get(activity, "Other")
    severity = doc.get("severity_id", 1)
    head: dict[str, Any] = {
        "class_uid": cls["class_uid"], "class_name": cls["class_name"],
        "category_uid": cls["category_uid"], "category_name": cls["category_name"],
        "activity_id": activity, "activity_name": doc.get("activity_name") if activity == 99 else caption,
        "type_uid": cls["class_uid"] * 100 + activity, "type_name": f"{cls['class_name']}: {caption}",
        "severity_id": severity, "severity": SEVERITY.get(severity, "Other"),
    }
    if head["activity_name"] is None:
        head["activity_name"] = caption
    status = doc.get("status_id")
    if isinstance(status, int) and status != 99:
        head["status_id"], head["status"] = status, cls["status"].get(status, "Other")
    head.update((k, v) for k, v in doc.items() if k not in head)
    return head


def stamp(doc: dict[str, Any], record: dict[str, Any], rest: dict[str, Any]) -> dict[str, Any]:
    """``unmapped`` (the rest of the Graph object and ``td_graph``, the envelope) and ``raw_data``."""
    unmapped = doc.get("unmapped")
    if not isinstance(unmapped, dict):
        unmapped = doc["unmapped"] = {}
    for key, value in rest.items():
        unmapped.setdefault(key, value)
    unmapped["td_graph"] = {k: v for k, v in record.items() if k != "data"}
    if "raw_data" not in doc:
        try:
            doc["raw_data"] = orjson.dumps(record.get("data")).decode()
        except TypeError:  # beyond orjson (an integer over 64 bits): the standard library
            try:
                doc["raw_data"] = json.dumps(record.get("data"), ensure_ascii=False)
            except (RecursionError, ValueError):
                pass  # nested beyond any encoder: the output skips the record as a bad item
    return doc


def envelope_from_ocsf(doc: dict[str, Any], *, data: bool = True) -> dict[str, Any] | None:
    """The contract's envelope back from a td-graph OCSF event (None if it is not one)."""
    unmapped = doc.get("unmapped")
    td = unmapped.get("td_graph") if isinstance(unmapped, dict) else None
    if not isinstance(td, dict) or not isinstance(td.get("source"), str):
        return None
    if not data:
        return td
    try:
        obj = orjson.loads(doc.get("raw_data") or "{}")
    except orjson.JSONDecodeError:
        obj = json.loads(doc["raw_data"])
    return {**td, "data": obj if isinstance(obj, dict) else {}}
