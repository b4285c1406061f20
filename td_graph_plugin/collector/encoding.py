"""JSON encoding of records and objects, with nothing lost to orjson's limits."""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["encode_json"]


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
