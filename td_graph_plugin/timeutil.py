"""Graph timestamps in and out: parse every form Graph emits, write the one form filters accept."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["parse_time", "format_time", "filter_literal", "utcnow", "to_epoch", "fresh", "CLOCK_SKEW"]

# A stored time this far ahead of the clock is not trusted: the clock was moved back.
CLOCK_SKEW = 300.0


def fresh(stored_at: float, now: float, ttl: float) -> bool:
    """Whether what was stored at ``stored_at`` (epoch seconds) is still within ``ttl`` at
    ``now``.  The one rule for every copy kept across processes (discovery, OpenID
    configuration): younger than ``ttl``, and not more than ``CLOCK_SKEW`` in the future."""
    return -CLOCK_SKEW <= now - stored_at < ttl


UTC = timezone.utc
# 2026-11-26T10:00:00Z, ...00.1234567Z, ...00+00:00, ...00-08:00, and the doc's malformed "...Z)".
_TS = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?\)?\s*$"
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_time(value: object) -> datetime | None:
    """A timezone-aware UTC datetime, or None when the value is missing or malformed.

    Graph sends up to seven fractional digits (more than ``fromisoformat`` takes), offsets such
    as ``-08:00`` (Intune examples) and, in one documented example, a stray ``)``.  The common
    forms take ``fromisoformat`` (C, ~8x faster); the rest the regular expression.
    """
    if type(value) is str and value[-1:] == "Z" and len(value) in _CANON_LENGTHS and value[10:11] == "T":
        # Graph's canonical UTC form (0, 3, 6 or 7 fraction digits): no regex, no tz arithmetic.
        # fromisoformat reads the same fields the regex below reads (the 7th digit is cut, as
        # there); what it refuses (a leap second, a stray character) takes the paths below.
        try:
            return _fromisoformat(value if len(value) != 28 else value[:26] + "Z")
        except ValueError:
            pass
    if not isinstance(value, str):
        return None
    if _FAST.match(value):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
        return dt.replace(tzinfo=UTC) if dt.utcoffset() == _ZERO else dt.astimezone(UTC)
    m = _TS.match(value)
    if not m:
        return None
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    tz = m.group(8)
    try:
        dt = datetime(year, month, day, hour, minute, min(second, 59), micro, tzinfo=UTC)
    except ValueError:
        return None
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        dt = dt - sign * offset
    return dt


# Forms fromisoformat reads exactly like the regex: 0, 3 or 6 fraction digits, Z or +hh:mm.
_FAST = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3}|\.\d{6})?(?:Z|[+-]\d{2}:\d{2})$")
_ZERO = timedelta(0)
_CANON_LENGTHS = frozenset((20, 24, 27, 28))
_fromisoformat = datetime.fromisoformat
# Graph timestamps that are already in the envelope's form and can be passed through as is.
CANONICAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$")


def format_time(dt: datetime | None) -> str | None:
    """``2026-11-26T10:00:00Z`` or ``2026-11-26T10:00:00.123456Z`` (UTC)."""
    if dt is None:
        return None
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    if dt.year >= 1000:  # isoformat (C) writes the same digits strftime does, without a format parse
        return dt.isoformat()[:-6] + "Z"  # "...+00:00" -> "...Z"
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def filter_literal(dt: datetime, *, ceil: bool = False) -> str:
    """A whole-second UTC literal for ``$filter`` (unquoted, as Graph's DateTimeOffset wants)."""
    dt = dt.astimezone(UTC)
    if ceil and dt.microsecond:
        dt = dt + timedelta(seconds=1)
    return dt.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_epoch(dt: datetime | None) -> float | None:
    return dt.timestamp() if dt is not None else None
