"""Durations as operators write them in YAML: ``90s``, ``15m``, ``24h``, ``7d``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["parse_duration", "format_duration"]

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: object) -> timedelta:
    """Parse ``"15m"`` or a bare number of seconds; raise ValueError with the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, 15m, 24h or 7d, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return timedelta(seconds=value)
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 30s, 15m, 24h or 7d, got {value!r}")
    text = value.strip().lower().replace(" ", "")
    if not text:
        raise ValueError("expected a duration such as 30s, 15m, 24h or 7d, got an empty string")
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"expected a duration such as 30s, 15m, 24h or 7d, got {value!r}")
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    """The shortest exact spelling, for tables and docs (``86400s`` -> ``1d``)."""
    seconds = delta.total_seconds()
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            count = int(seconds // size)
            seconds -= count * size
            out.append(f"{count}{unit}")
    if seconds > 1e-9:
        out.append(f"{round(seconds * 1000)}ms")
    return "".join(out)
