"""JSON encoding of records and objects, with nothing lost to orjson's limits."""

from __future__ import annotations

import json
from typing import Any

import orjson

from ..graph.rawitem import RawItem, encode_default, materialise

__all__ = ["encode_json", "encode_record"]


def encode_record(record: dict[str, Any]) -> bytes:
    """One record line's JSON (no newline).  A RawItem under ``data`` is written as the bytes
    Graph sent (graph/rawitem.py); what orjson refuses (integers beyond 64 bits from a plugin,
    nesting beyond its 255 levels) goes through ``encode_json`` as plain values.  Raises
    RecursionError when no encoder can nest that deep."""
    data = record.get("data")
    if type(data) is RawItem and not data.materialised and next(reversed(record)) == "data":
        # The envelope with "data": null, then the object's bytes spliced in its place: no copy
        # of the object, no orjson callback (make_record puts "data" last).
        record["data"] = None
        try:
            head = orjson.dumps(record)
        except TypeError:
            head = b""
        finally:
            record["data"] = data
        if head.endswith(b"null}"):
            return b"".join((memoryview(head)[:-5], data.raw, b"}"))
    try:
        return orjson.dumps(record, default=encode_default)
    except TypeError:
        return encode_json(materialise(record))


def encode_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """orjson, with the standard library as the fallback for what orjson refuses (integers
    beyond 64 bits that a plugin or a CSV-derived item may carry): the data is kept, not lost."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except TypeError:
        return json.dumps(_finite(value), ensure_ascii=False, sort_keys=sort_keys, separators=(",", ":"), default=str).encode()


def _finite(value: Any) -> Any:
    """NaN and infinities become null, as orjson writes them (the stdlib would write invalid JSON)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
