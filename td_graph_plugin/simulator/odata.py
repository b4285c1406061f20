"""The slice of OData that Graph's log endpoints accept, parsed strictly.

Strict on purpose: the simulator exists so that a client a real tenant would reject is
rejected here too.  ``$filter`` supports exactly what graph-facts documents for these
collections: clauses joined by `` and `` of the form ``<field> <op> <datetime>`` (unquoted
ISO-8601 with a zone) plus beta sign-ins' ``signInEventTypes/any(t: t eq '<type>')``.
Anything else is a ``BadRequest`` the caller turns into Graph's error body.

``TokenCodec`` makes the opaque, signed ``$skiptoken``/``$deltatoken`` values: a client
that edits one gets 400, and a token from another simulator instance is rejected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

import orjson

from .timefmt import TS_LITERAL, parse_ts

__all__ = ["ODataError", "Clause", "ParsedFilter", "parse_query", "parse_filter", "parse_top",
           "parse_select", "parse_orderby", "TokenCodec", "encode_query"]


class ODataError(Exception):
    """A request Graph would answer with 400; ``code``/``message`` go into the error body."""

    def __init__(self, message: str, code: str = "BadRequest", status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def parse_query(raw_query: str) -> dict[str, str]:
    """Query string -> {option-name-lowercased: value}; a repeated option is a 400 (as OData)."""
    out: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        key = name.lower()
        if key in out:
            raise ODataError(
                f"Query option '{name}' was specified more than once, but it must be specified at most once."
            )
        out[key] = value
    return out


def encode_query(items: list[tuple[str, str]]) -> str:
    """Encode like Graph's own links: literal ``$`` in names, percent-encoded values."""
    return "&".join(f"{k}={quote(v, safe=',()')}" for k, v in items)


@dataclass(frozen=True)
class Clause:
    field: str
    op: str
    value: float  # epoch seconds
    text: str


@dataclass(frozen=True)
class ParsedFilter:
    clauses: tuple[Clause, ...] = ()
    event_types: tuple[str, ...] = ()  # from signInEventTypes/any(...)
    equals: tuple[tuple[str, object], ...] = ()  # `<field> eq '<text>'` / `eq true|false`

    def bounds(self, field: str) -> tuple[float | None, float | None, bool, bool, tuple[Clause, ...]]:
        """(low, high, low_inclusive, high_inclusive, clauses on other fields) for ``field``."""
        low = high = None
        low_inc = high_inc = True
        rest = []
        for c in self.clauses:
            if c.field != field:
                rest.append(c)
                continue
            if c.op in ("ge", "gt", "eq"):
                inc = c.op != "gt"
                if low is None or c.value > low or (c.value == low and not inc):
                    low, low_inc = c.value, inc
            if c.op in ("le", "lt", "eq"):
                inc = c.op != "lt"
                if high is None or c.value < high or (c.value == high and not inc):
                    high, high_inc = c.value, inc
        return low, high, low_inc, high_inc, tuple(rest)


_AND = re.compile(r"\s+and\s+")
_COMPARE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_/]*)\s+([A-Za-z]+)\s+('(?:[^']|'')*'|\S+)\s*")
_ANY = re.compile(
    r"\s*signInEventTypes/any\(\s*([A-Za-z_]\w*)\s*:\s*([A-Za-z_]\w*)\s+eq\s+'([^']*)'\s*\)\s*"
)
_OPS = ("eq", "ne", "gt", "ge", "lt", "le")


def parse_filter(text: str, time_fields: dict[str, frozenset[str]], event_types: tuple[str, ...] = (),
                 eq_fields: frozenset[str] = frozenset()) -> ParsedFilter:
    """Parse ``$filter`` against an endpoint's allowed ``{field: operators}``.

    ``event_types`` non-empty enables the beta ``signInEventTypes/any(...)`` clause;
    ``eq_fields`` accept ``<field> eq '<text>'`` and ``<field> eq true|false``.
    """
    if not text.strip():
        raise ODataError("Invalid filter clause: the $filter expression is empty.")
    clauses: list[Clause] = []
    types: list[str] = []
    equals: list[tuple[str, object]] = []
    # Parenthesised `or` groups of signInEventTypes are not in the documented grammar here.
    for part in _AND.split(text.strip()):
        m = _ANY.fullmatch(part)
        if m:
            if not event_types:
                raise ODataError("Invalid filter clause: Could not find a property named 'signInEventTypes' on type 'microsoft.graph.signIn'.")
            var, var2, value = m.groups()
            if var != var2:
                raise ODataError(f"Invalid filter clause: Could not find a property named '{var2}'.")
            if value not in event_types:
                raise ODataError(
                    f"Invalid filter clause: The value '{value}' is not a valid signInEventType. "
                    f"Supported values: {', '.join(event_types)}."
                )
            types.append(value)
            continue
        m = _COMPARE.fullmatch(part)
        if not m:
            raise ODataError(f"Invalid filter clause: Syntax error at '{part.strip()}'.")
        field, op, literal = m.groups()
        if field in eq_fields and field not in time_fields:
            if op != "eq":
                raise ODataError(f"Invalid filter clause: The operator '{op}' is not supported for property '{field}'. "
                                 "Supported operators: eq.")
            if literal.startswith("'") and literal.endswith("'") and len(literal) >= 2:
                equals.append((field, literal[1:-1].replace("''", "'")))
            elif literal in ("true", "false"):
                equals.append((field, literal == "true"))
            else:
                raise ODataError(f"Invalid filter clause: Syntax error at position of '{literal}'.")
            continue
        if field not in time_fields:
            raise ODataError(
                f"Invalid filter clause: filtering on property '{field}' is not supported. "
                f"Supported properties: {', '.join(sorted(set(time_fields) | set(eq_fields))) or 'none'}."
            )
        if op not in _OPS:
            raise ODataError(f"Invalid filter clause: Syntax error: unknown operator '{op}'.")
        if op not in time_fields[field]:
            raise ODataError(
                f"Invalid filter clause: The operator '{op}' is not supported for property '{field}'. "
                f"Supported operators: {', '.join(sorted(time_fields[field]))}."
            )
        if literal.startswith("'") or literal.startswith('"'):
            raise ODataError(
                "Invalid filter clause: A binary operator with incompatible types was detected. "
                f"Found operand types 'Edm.DateTimeOffset' and 'Edm.String' for operator kind '{op}'."
            )
        if not TS_LITERAL.fullmatch(literal):
            raise ODataError(
                f"Invalid filter clause: The DateTimeOffset text '{literal}' should be in format "
                "'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?' and each field value is within valid range."
            )
        try:
            value = parse_ts(literal)
        except (ValueError, OverflowError):
            raise ODataError(f"Invalid filter clause: The DateTimeOffset text '{literal}' is out of range.") from None
        clauses.append(Clause(field, op, value, literal))
    if len(types) > 1:
        raise ODataError("Invalid filter clause: only one signInEventTypes/any() clause is supported.")
    return ParsedFilter(tuple(clauses), tuple(types), tuple(equals))


def parse_top(text: str, max_top: int, error_code: str = "BadRequest") -> int:
    try:
        top = int(text)
    except ValueError:
        raise ODataError(f"Invalid value '{text}' for $top query option found. The $top query option requires a non-negative integer value.") from None
    if top < 1:
        raise ODataError(f"Invalid value '{text}' for $top query option found. The $top query option requires a positive integer value.")
    if top > max_top:
        # Shape observed for incidents (graph-facts §0.3); used for every endpoint's $top limit.
        raise ODataError(
            "The query specified in the URI is not valid. "
            f"The limit of '{max_top}' for Top query has been exceeded. The value from the incoming request is '{top}'.",
            code=error_code,
        )
    return top


def parse_select(text: str, known: frozenset[str] | None, type_name: str) -> tuple[str, ...]:
    fields = tuple(f.strip() for f in text.split(",") if f.strip())
    if not fields:
        raise ODataError("Invalid $select clause: the list of properties is empty.")
    if known is not None:
        for f in fields:
            if f not in known:
                raise ODataError(f"Could not find a property named '{f}' on type '{type_name}'.")
    return fields


def parse_orderby(text: str, allowed: tuple[str, ...]) -> bool:
    """``<field> [asc|desc]`` on an allowed field -> descending?"""
    parts = text.split()
    if not parts or len(parts) > 2 or parts[0] not in allowed or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
        raise ODataError(
            f"Invalid $orderby expression '{text}'. Supported: {', '.join(allowed) or 'none'} [asc|desc]."
        )
    return len(parts) == 2 and parts[1].lower() == "desc"


class TokenCodec:
    """Opaque signed tokens: base64url(JSON payload) + '.' + truncated HMAC-SHA256."""

    def __init__(self, key: bytes):
        self._key = key

    def encode(self, payload: dict) -> str:
        body = base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=")
        sig = base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()[:18])
        return (body + b"." + sig).decode("ascii")

    def decode(self, token: str) -> dict:
        """Payload, or ODataError if the token is malformed, altered or foreign."""
        try:
            body, sig = token.encode("ascii").split(b".")
            want = base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()[:18])
            if not hmac.compare_digest(sig, want):
                raise ValueError("bad signature")
            payload = orjson.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
            if not isinstance(payload, dict):
                raise ValueError("not an object")
            return payload
        except (ValueError, UnicodeError, orjson.JSONDecodeError):
            raise ODataError("The provided $skiptoken or $deltatoken is invalid: it is malformed, was altered, or was not issued for this request.") from None
