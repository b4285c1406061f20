"""Value conversions named in the mapping tables (``ip``, ``date``, ``map:NAME`` …).

Each converter returns the converted value or None, and None means "write nothing": a value a
schema type cannot hold (Microsoft's documented examples carry ``"123.456.7.89"`` as an IP
address and ``"String (timestamp)"`` as a date) is dropped from the mapped field instead of
making Elasticsearch reject the whole document.  The Graph object itself keeps it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Callable

from ..timeutil import CANONICAL, format_time, parse_time

__all__ = ["CONVERTERS", "compile_conversion", "describe"]

Converter = Callable[[Any], Any]


def _str(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v) if isinstance(v, (str, int, float)) else None


_IPV4 = re.compile(r"^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$")


def _ip(v: Any) -> Any:
    if not isinstance(v, str):
        return None
    if _IPV4.match(v):  # the common case, without ipaddress's cost
        return v
    try:
        return str(ipaddress.ip_address(v.strip()))
    except ValueError:
        return None


def _date(v: Any) -> Any:
    if isinstance(v, str) and CANONICAL.match(v):
        return v
    return format_time(parse_time(v))


def _ms(v: Any) -> Any:
    dt = parse_time(v)
    return int(dt.timestamp() * 1000) if dt is not None else None


def _int(v: Any) -> Any:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    return None


def _bool(v: Any) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return None


def _geo_point(v: Any) -> Any:
    if not isinstance(v, dict):
        return None
    lat, lon = v.get("latitude"), v.get("longitude")
    ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (lat, lon))
    return {"lat": lat, "lon": lon} if ok else None


def _upn_domain(v: Any) -> Any:
    return v.rsplit("@", 1)[1] or None if isinstance(v, str) and "@" in v else None


def _technique(v: Any) -> Any:
    return v.split(".", 1)[0] if isinstance(v, str) and v.upper().startswith("T") else None


def _subtechnique(v: Any) -> Any:
    return v if isinstance(v, str) and v.upper().startswith("T") and "." in v else None


def _nonzero(v: Any) -> Any:
    return None if v in (0, "0") else v


def _first_word(v: Any) -> Any:
    return v.split(None, 1)[0] if isinstance(v, str) and v.strip() else None


def _lower(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


def _ms_to_ns(v: Any) -> Any:
    n = _int(v)
    return n * 1_000_000 if n is not None else None


def _json_string(v: Any) -> Any:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False) if not isinstance(v, str) else v


def _first(v: Any) -> Any:
    return v[0] if isinstance(v, list) else v


def _as_list(v: Any) -> Any:
    return v if isinstance(v, list) else [v]


# name -> (function, applied to each element of a list?)
CONVERTERS: dict[str, tuple[Converter, bool]] = {
    "str": (_str, True),
    "ip": (_ip, True),
    "date": (_date, True),
    "ms": (_ms, True),
    "int": (_int, True),
    "bool": (_bool, True),
    "geo_point": (_geo_point, True),
    "upn_domain": (_upn_domain, True),
    "technique": (_technique, True),
    "subtechnique": (_subtechnique, True),
    "nonzero": (_nonzero, True),
    "first_word": (_first_word, True),
    "lower": (_lower, True),
    "ms_to_ns": (_ms_to_ns, True),
    "json": (_json_string, False),
    "first": (_first, False),
    "list": (_as_list, False),
}

DESCRIPTIONS = {
    "str": "as text", "ip": "a valid IP address, else dropped", "date": "ISO 8601 UTC, else dropped",
    "ms": "epoch milliseconds", "int": "an integer, else dropped", "bool": "true/false, else dropped",
    "geo_point": "{lat, lon}", "upn_domain": "the part after @", "technique": "technique id (T1234)",
    "subtechnique": "sub-technique ids only (T1234.001)", "nonzero": "omitted when 0",
    "first_word": "its first word", "lower": "lower-cased", "ms_to_ns": "milliseconds to nanoseconds",
    "json": "as a JSON string", "first": "the first one", "list": "as a list",
}


def _kv_json(key: str) -> Converter:
    """``additionalInfo`` style: a JSON string of ``[{"Key": …, "Value": …}]``; the Value of ``key``."""

    def get(v: Any) -> Any:
        try:
            items = json.loads(v) if isinstance(v, str) else v
        except ValueError:
            return None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("Key") == key and isinstance(item.get("Value"), str):
                return item["Value"]
        return None

    return get


def _lookup(table: dict[str, Any]) -> Converter:
    default = table.get("*")

    def get(v: Any) -> Any:
        if isinstance(v, bool):
            v = "true" if v else "false"
        return table.get(v if isinstance(v, str) else str(v), default) if isinstance(v, (str, int, float)) else default

    return get


def _constant(text: str) -> Converter:
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return lambda v: value


def _one(name: str, lookups: dict[str, dict[str, Any]]) -> tuple[Converter, bool]:
    if name.startswith("="):
        return _constant(name[1:]), False
    if name.startswith("map:"):
        return _lookup(lookups[name[4:]]), True
    if name.startswith("unless:"):
        known = {k.lower() for k in lookups[name[7:]] if k != "*"}
        return (lambda v: None if isinstance(v, str) and v.lower() in known else v), True
    if name.startswith("kv:"):
        return _kv_json(name[3:]), False
    if name.startswith("prefix:"):
        text = name[7:]
        return (lambda v: text + v if isinstance(v, str) else None), True
    return CONVERTERS[name]


def compile_conversion(spec: str, lookups: dict[str, dict[str, Any]]) -> Converter:
    """``a|b|map:x`` as one function; element-wise steps map over lists (dropping empties)."""
    steps = [_one(part, lookups) for part in spec.split("|")]
    if len(steps) == 1 and not steps[0][1]:
        return steps[0][0]

    def run(value: Any) -> Any:
        for fn, each in steps:
            if each and isinstance(value, list):
                out = []
                for item in value:
                    c = fn(item)
                    if c is not None and c != "" and c not in out:
                        out.append(c)
                value = out
            else:
                value = fn(value)
            if value is None:
                return None
        return value

    return run


def describe(spec: Any) -> str:
    """The conversion in words, for docs/formats.md."""
    if not spec:
        return ""
    if isinstance(spec, dict):
        parts = []
        for key, value in spec.items():
            if key == "_require":
                parts.append("only with " + " or ".join(f"`{k}`" for k in value))
                continue
            src = value[0] if isinstance(value, tuple) else value
            src = " or ".join(src) if isinstance(src, list) else src
            how = describe(value[1]) if isinstance(value, tuple) and len(value) > 1 else ""
            parts.append(f"`{key}` ← `{src}`" + (f" ({how})" if how else ""))
        return "an object: " + "; ".join(parts)
    words = []
    for part in spec.split("|"):
        if part.startswith("="):
            words.append(f"`{part[1:]}` when present")
        elif part.startswith("map:"):
            words.append(f"looked up in `{part[4:]}`")
        elif part.startswith("unless:"):
            words.append(f"only when not in `{part[7:]}`")
        elif part.startswith("kv:"):
            words.append(f"the `{part[3:]}` entry of its Key/Value list")
        elif part.startswith("prefix:"):
            words.append(f"prefixed `{part[7:]}`")
        else:
            words.append(DESCRIPTIONS.get(part, part))
    return ", ".join(words)
