"""Graph timestamps: formatting them the way Graph does, and parsing them exactly.

Graph writes ``2026-11-26T10:00:00Z`` and, for some objects, seven fractional digits
(``2026-11-26T10:00:00.1234567Z``).  The simulator keeps every timestamp as the string it
serves plus a float sort key computed *from that string* with the same function that parses
``$filter`` literals, so ``eq``/``ge``/``le`` compare exactly what a client sees (no
microsecond truncation surprises from ``datetime.fromisoformat``).
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import datetime, timezone

__all__ = ["format_ts", "parse_ts", "to_epoch", "TS_LITERAL", "inner_error_date"]

# An OData DateTimeOffset literal: date, time (seconds optional), optional fraction, and a
# mandatory zone (Z or +hh:mm / -hh:mm).  Graph rejects a literal without a zone.
TS_LITERAL = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?(Z|[+-]\d{2}:\d{2})",
    re.IGNORECASE,
)


_DAY_PREFIX: dict[int, str] = {}


def format_ts(epoch: float, frac: bool = False) -> str:
    """Epoch seconds -> Graph text; ``frac`` adds Graph's 7-digit (100 ns) fraction.

    Hot path of data generation (hundreds of thousands of calls), hence the per-day prefix cache.
    """
    secs = int(epoch // 1)
    day, rem = divmod(secs, 86400)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = _DAY_PREFIX[day] = "%04d-%02d-%02dT" % time.gmtime(day * 86400)[:3]
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    if not frac:
        return f"{prefix}{hh:02d}:{mm:02d}:{ss:02d}Z"
    ticks = int((epoch - secs) * 10_000_000)
    return f"{prefix}{hh:02d}:{mm:02d}:{ss:02d}.{ticks:07d}Z"


_DAY_EPOCH: dict[str, int] = {}


def parse_ts(text: str) -> float:
    """Graph/OData timestamp text -> epoch seconds (float); ValueError if malformed.

    The key used for ordering and for ``$filter`` comparisons alike.  Graph's own two shapes
    (``...:SSZ`` and ``...:SS.fffffffZ``) take a fast path: sorting 200,000 sign-ins parses
    200,000 of them.
    """
    n = len(text)
    if (n == 20 or n == 28) and text[-1] == "Z" and text[10] == "T" and (n == 20 or text[19] == "."):
        day = _DAY_EPOCH.get(text[:10])
        if day is None:
            m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text[:10])
            if m:
                day = _DAY_EPOCH[text[:10]] = calendar.timegm((int(m[1]), int(m[2]), int(m[3]), 0, 0, 0, 0, 0, 0))
        if day is not None and text[13] == ":" and text[16] == ":":
            try:
                secs = day + int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])
                if n == 20:
                    return float(secs)
                return secs + int(text[20:27]) / 10_000_000
            except ValueError:
                pass
    m = TS_LITERAL.fullmatch(text)
    if not m:
        raise ValueError(f"not an ISO-8601 timestamp with a zone: {text!r}")
    y, mo, d, h, mi, s, fr, zone = m.groups()
    secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s or 0), 0, 0, 0))
    if zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        secs -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    if fr:
        return secs + int(fr.ljust(7, "0")) / 10_000_000
    return float(secs)


def to_epoch(value: object, default: float) -> float:
    """Accept a datetime (naive = UTC), epoch number or timestamp text; None -> default."""
    if value is None:
        return default
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return parse_ts(value)
    raise TypeError(f"expected a datetime, epoch seconds or timestamp text, not {type(value).__name__}")


def inner_error_date(now: float | None = None) -> str:
    """``innerError.date`` is written without a zone suffix by Graph (``2021-04-16T08:26:49``)."""
    return "%04d-%02d-%02dT%02d:%02d:%02d" % time.gmtime(now if now is not None else time.time())[:6]
