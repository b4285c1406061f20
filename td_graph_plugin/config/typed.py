"""Typed access to the parsed YAML that collects problems instead of stopping at the first.

One run shows the operator every mistake at once, each as ``dotted.key (line N): what is
wrong``; the file is named once, by the ``ConfigError`` that carries them all.  Messages never
echo a value read under ``secret=True`` nor a substituted environment value.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Mapping as MappingType

from ..durations import parse_duration
from ..errors import ConfigError

__all__ = ["Problems", "Mapping", "expand", "parse_size", "SIZE_UNITS"]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TAIL = re.compile(r"(\[\d+\]|\.[^.\[\]]*)$")

# Sizes: SI prefixes are powers of 1000 and IEC ones powers of 1024, as the standards define
# them (IEC 80000-13), so "1GB" and "1GiB" mean what they say.  Units are case-insensitive.
SIZE_UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_SIZE_HELP = "a size such as 1048576, 500MB or 1GiB (KB, MB, GB: 1000-based; KiB, MiB, GiB: 1024-based)"


class Problems:
    """Every problem of one file, each tied to its dotted key and, when known, its YAML line."""

    def __init__(self, file: str, lines: MappingType[str, int] | None = None) -> None:
        self.file = file
        self.lines = lines or {}
        self.items: list[tuple[str, str]] = []

    def add(self, key: str, message: str) -> None:
        self.items.append((key, message))

    def line_of(self, key: str) -> int | None:
        """The line of ``key`` or, for a key the file lacks, of the nearest enclosing one."""
        while key:
            if key in self.lines:
                return self.lines[key]
            shorter = _TAIL.sub("", key)
            if shorter == key:  # a top-level key the file lacks
                return None
            key = shorter
        return None

    def render(self, key: str, message: str) -> str:
        line = self.line_of(key)
        where = f"{key} (line {line})" if line else key
        return f"{where}: {message}" if where else message

    def rendered(self) -> list[str]:
        return [self.render(k, m) for k, m in self.items]

    def raise_if_any(self) -> None:
        lines = self.rendered()
        if len(lines) == 1:
            raise ConfigError(lines[0], file=self.file)
        if lines:
            raise ConfigError(f"{len(lines)} problems:\n  - " + "\n  - ".join(lines), file=self.file)


class Mapping:
    """One YAML mapping: unknown and missing keys are reported on construction."""

    def __init__(self, data: Any, prefix: str, p: Problems, *, required: Iterable[str] = (), optional: Iterable[str] = ()):
        self.p = p
        self.prefix = prefix
        if not isinstance(data, dict):
            p.add(prefix or "(top level)", "must be a mapping")
            data = {}
        self.data = data
        allowed = set(required) | set(optional)
        for k in data:
            if k not in allowed:
                hint = _closest(str(k), allowed)
                p.add(self.key(str(k)), "unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))
        for k in required:
            if k not in data or data[k] is None:
                p.add(self.key(k), "required key is missing")

    def key(self, k: str) -> str:
        return f"{self.prefix}.{k}" if self.prefix else k

    def get(self, k: str) -> Any:
        return self.data.get(k)

    def _typed(self, k: str, check: Callable[[Any], bool], want: str) -> Any:
        v = self.data.get(k)
        if v is None:
            return None
        if not check(v):
            self.p.add(self.key(k), f"expected {want}, got {type(v).__name__} {_show(v)}")
            return None
        return v

    def str(self, k: str, default: Any = None, choices: Iterable[str] | None = None, secret: bool = False) -> Any:
        v = self.data.get(k)
        if v is None:
            return default
        if not isinstance(v, str):
            shown = "" if secret else f" {_show(v)}"
            self.p.add(self.key(k), f"expected a string, got {type(v).__name__}{shown}")
            return default
        if not v.strip():
            self.p.add(self.key(k), "must not be empty")
            return default
        if choices is not None and v not in choices:
            self.p.add(self.key(k), f"must be one of {', '.join(choices)}, got {v!r}")
            return default
        return v

    def url(self, k: str) -> str | None:
        v = self.str(k)
        if v is None:
            return None
        if not re.match(r"^https://[^/\s]+", v):
            self.p.add(self.key(k), f"expected an https:// URL, got {v!r}")
            return None
        return v.rstrip("/")

    def int(self, k: str, default: Any, minimum: int | None = None) -> Any:
        v = self._typed(k, lambda x: isinstance(x, int) and not isinstance(x, bool), "an integer")
        if v is None:
            return default
        if minimum is not None and v < minimum:
            self.p.add(self.key(k), f"must be at least {minimum}, got {v}")
            return default
        return v

    def bool(self, k: str) -> Any:
        return self._typed(k, lambda x: isinstance(x, bool), "true or false")

    def duration(self, k: str) -> timedelta | None:
        v = self.data.get(k)
        if v is None:
            return None
        try:
            return parse_duration(v)
        except ValueError as exc:
            self.p.add(self.key(k), str(exc))
            return None

    def seconds(self, k: str, default: float) -> float:
        d = self.duration(k)
        return default if d is None else d.total_seconds()

    def size(self, k: str) -> int | None:
        """A byte count: an integer, or a number with a unit of ``SIZE_UNITS``."""
        v = self.data.get(k)
        if v is None:
            return None
        try:
            return parse_size(v)
        except ValueError as exc:
            self.p.add(self.key(k), str(exc))
            return None

    def str_list(self, k: str, default: Iterable[str]) -> list[str]:
        v = self.data.get(k)
        if v is None:
            return list(default)
        if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
            self.p.add(self.key(k), "expected a list of strings")
            return list(default)
        return list(v)


def parse_size(value: object) -> int:
    """``1048576``, ``"500MB"``, ``"1.5 GiB"`` -> bytes (at least 1, a whole number)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected {_SIZE_HELP}, got {type(value).__name__} {_show(value)}")
    if isinstance(value, int):
        amount = Decimal(value)
    else:
        m = _SIZE.match(value)
        unit = (m.group(2) or "b").lower() if m else ""
        if not m or unit not in SIZE_UNITS:
            raise ValueError(f"expected {_SIZE_HELP}, got {_show(value)}")
        try:
            amount = Decimal(m.group(1)) * SIZE_UNITS[unit]
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimal numbers
            raise ValueError(f"expected {_SIZE_HELP}, got {_show(value)}") from None
    if amount != amount.to_integral_value():
        raise ValueError(f"is not a whole number of bytes: {_show(value)}")
    if amount < 1:
        raise ValueError(f"must be at least 1 byte, got {_show(value)}")
    return int(amount)


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _closest(word: str, options: Iterable[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.75)
    return match[0] if match else None


def expand(
    value: Any,
    key: str,
    env: MappingType[str, str],
    p: Problems,
    defer: Callable[[str], bool] | None = None,
) -> Any:
    """Replace ``${NAME}`` everywhere; an unset variable is a problem naming key and variable.

    Subtrees whose key ``defer`` accepts are left as written, for their owner to expand with
    its own rules (the per-tenant isolation credential is not the collector's business).
    """
    if defer is not None and key and defer(key):
        return value
    if isinstance(value, dict):
        return {k: expand(v, f"{key}.{k}" if key else str(k), env, p, defer) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, f"{key}[{i}]", env, p, defer) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                p.add(key, f"environment variable {name} is not set")
                return ""
            return env[name]

        return _ENV.sub(sub, value)
    return value
