"""The small rule language the mapping tables are written in, compiled once per format.

A rule is ``(target, source)`` or ``(target, source, conversion)``:

* **source**: a path into the envelope (``data.userPrincipalName``, ``event_time``); ``x[]``
  iterates a list, ``x[?key=value]`` keeps the elements whose ``key`` (matched without regard to
  case: Microsoft's own examples write ``Type`` for ``type``) equals ``value``; ``.`` is the
  element itself inside a sub-mapping; an OData annotation (``@odata.type``) is a path's last
  key; a list of paths takes the first that yields a value.
* **conversion**: names joined by ``|`` (``lower|map:severity``), see ``convert.CONVERTERS``;
  ``=VALUE`` writes VALUE when the source yields anything; a dict is a sub-mapping that builds
  one object per source element.
* **target**: a dotted path; ``x[]`` accumulates a list (de-duplicated), otherwise the first
  rule that yields a value wins.  Empty values (None, "", [], {}) are never written.

Tables stay data (tuples and dicts); this module turns them into closures so a record costs a
few dict lookups per rule, and the documentation is rendered from the same tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from .convert import compile_conversion

__all__ = ["Rule", "Mapping", "compile_rules", "compile_mapping", "compile_path", "compile_when", "put", "is_empty"]

_PART = re.compile(r"\.(?![^\[]*\])")  # a dot outside brackets
_BRACKETS = re.compile(r"\[([^\]]*)\]")
Getter = Callable[[Any], Any]


_EMPTYABLE = frozenset((str, list, dict))


def is_empty(value: Any) -> bool:
    """None, "", [] or {} (never 0 or False)."""
    return value is None or (type(value) in _EMPTYABLE and not value)


def compile_path(expr: str, base: tuple[str, ...] = ("data",)) -> tuple[Getter, bool, str | None]:
    """(getter, yields_many, consumes) for one path expression.

    ``consumes`` names what of the Graph object the path reads whole: a top-level key (``data.X``
    at the envelope, ``X`` inside a sub-mapping, whose element ``base`` is then ``()``), ``"."``
    for the object itself (``data`` / ``.``), or None."""
    if expr == ".":
        return (lambda v: v), False, "."
    steps: list[tuple[Any, ...]] = []
    parts = _PART.split(expr)
    for i, part in enumerate(parts):  # an OData annotation (@odata.type) ends the path
        if part.startswith("@"):
            parts[i:] = [".".join(parts[i:])]
            break
    for part in parts:
        key = part.split("[", 1)[0]
        if key:
            steps.append(("key", key))
        for inner in _BRACKETS.findall(part[len(key):]):
            if inner == "":
                steps.append(("each",))
            elif inner.startswith("?") and "=" in inner:
                k, v = inner[1:].split("=", 1)
                steps.append(("filter", k.lower(), v))
            else:
                raise ValueError(f"bad path {expr!r}: [{inner}]")
    many = any(s[0] != "key" for s in steps)
    keys = tuple(s[1] for s in steps) if not many else ()
    consumes = None
    if keys == base:
        consumes = "."
    elif len(keys) == len(base) + 1 and keys[: len(base)] == base:
        consumes = keys[-1]
    if not many:
        return _key_getter(keys), False, consumes

    def get_many(root: Any) -> list[Any]:
        out: list[Any] = []
        _walk(root, steps, 0, out)
        return out

    return get_many, True, consumes


def _key_getter(keys: tuple[str, ...]) -> Getter:
    """Nested dict lookups; the one- and two-key paths (most rules) without a loop."""
    if len(keys) == 1:
        k0 = keys[0]
        return lambda r: r.get(k0) if type(r) is dict else None
    if len(keys) == 2:
        k0, k1 = keys

        def get2(r: Any) -> Any:
            v = r.get(k0) if type(r) is dict else None
            return v.get(k1) if type(v) is dict else None

        return get2

    def get(root: Any) -> Any:
        for k in keys:
            if type(root) is not dict:
                return None
            root = root.get(k)
        return root

    return get


def _matches(item: dict[str, Any], key: str, want: str) -> bool:
    for k, v in item.items():
        if k.lower() == key:
            return v == want or str(v) == want
    return False


def _walk(value: Any, steps: Sequence[tuple[Any, ...]], i: int, out: list[Any]) -> None:
    while i < len(steps):
        if value is None:
            return
        step = steps[i]
        if step[0] == "key":
            value = value.get(step[1]) if type(value) is dict else None
        elif step[0] == "each":
            for item in value if isinstance(value, list) else [value]:
                _walk(item, steps, i + 1, out)
            return
        else:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict) and _matches(item, step[1], step[2]):
                    _walk(item, steps, i + 1, out)
            return
        i += 1
    if not is_empty(value):
        out.append(value)


def put(doc: dict[str, Any], keys: Sequence[str], value: Any, many: bool) -> None:
    """Write ``value`` at ``keys``: lists accumulate (de-duplicated), a scalar keeps the first."""
    put_at(doc, tuple(keys[:-1]), keys[-1], value, many)


def put_at(doc: dict[str, Any], parents: tuple[str, ...], last: str, value: Any, many: bool) -> None:
    for k in parents:
        nxt = doc.get(k)
        if type(nxt) is not dict:
            nxt = doc[k] = {}
        doc = nxt
    if many:
        current = doc.get(last)
        if current is None:
            current = doc[last] = []
        for v in value if isinstance(value, list) else [value]:
            if v not in current:
                current.append(v)
    elif last not in doc:
        doc[last] = value
    elif type(doc[last]) is dict and type(value) is dict:
        for k, v in value.items():
            doc[last].setdefault(k, v)


@dataclass
class Rule:
    target: str
    source: Any
    conversion: Any = None
    keys: tuple[str, ...] = ()
    many: bool = False
    getters: list[tuple[Getter, bool, str | None]] = field(default_factory=list)
    convert: Callable[[Any], Any] | None = None
    build: Callable[[Any], tuple[Any, frozenset[str]]] | None = None  # a sub-mapping
    parents: tuple[str, ...] = ()
    last: str = ""


def compile_rule(spec: Sequence[Any], lookups: dict[str, dict[str, Any]], base: tuple[str, ...] = ("data",)) -> Rule:
    target, source = spec[0], spec[1]
    conversion = spec[2] if len(spec) > 2 else None
    many = target.endswith("[]")
    name = target[:-2] if many else target
    keys = tuple(name.split("."))
    rule = Rule(target, source, conversion, keys, many, parents=keys[:-1], last=keys[-1])
    sources = source if isinstance(source, (list, tuple)) else [source]
    rule.getters = [compile_path(s, base) for s in sources]
    if isinstance(conversion, dict):
        rule.build = _sub_mapping(conversion, lookups, many)
    elif conversion:
        rule.convert = compile_conversion(conversion, lookups)
    return rule


def _sub_mapping(spec: dict[str, Any], lookups: dict[str, dict[str, Any]], many: bool
                 ) -> Callable[[Any], tuple[Any, frozenset[str]]]:
    """One object per element; ``_require``: keys one of which the object must have (else none,
    as OCSF's at-least-one constraints want: a location alone is no endpoint)."""
    required = spec.get("_require") or ()
    steps = [_step(compile_rule((t, *(s if isinstance(s, tuple) else (s,))), lookups, ()))
             for t, s in spec.items() if not t.startswith("_")]

    def build(value: Any) -> tuple[Any, frozenset[str]]:
        objects: list[dict[str, Any]] = []
        used: set[str] = set()
        for item in value if isinstance(value, list) else [value]:
            obj: dict[str, Any] = {}
            item_used: set[str] = set()
            for step in steps:
                step(item, obj, item_used)
            if obj and (not required or any(k in obj for k in required)) and obj not in objects:
                objects.append(obj)
                used.update(item_used)
                if not many:
                    break
        if many:
            return objects, frozenset(used)
        return (objects[0] if objects else None), frozenset(used)

    return build


def compile_rules(specs: Iterable[Sequence[Any]], lookups: dict[str, dict[str, Any]]) -> list[Rule]:
    return [compile_rule(s, lookups) for s in specs]


def compile_when(conditions: Sequence[tuple[str, str]], lookups: dict[str, dict[str, Any]]) -> Callable[[Any], bool]:
    """A variant's ``when``: every (path, test) holds; tests are ``exists``, ``=VALUE``, ``in:LOOKUP``."""
    checks = []
    for path, test in conditions:
        get, many, _ = compile_path(path)
        if test.startswith("in:"):
            table = lookups[test[3:]]
            ok: Callable[[Any], bool] = lambda v, t=table: isinstance(v, (str, int)) and str(v) in t
        elif test.startswith("="):
            ok = lambda v, want=test[1:]: str(v) == want
        elif test == "exists":
            ok = lambda v: True
        else:
            raise ValueError(f"unknown condition {test!r} on {path}")
        checks.append((get, many, ok))

    def holds(root: Any) -> bool:
        for get, many, ok in checks:
            value = get(root)
            if is_empty(value) or not any(ok(v) for v in (value if many else [value])):
                return False
        return True

    return holds


@dataclass
class Mapping:
    """One source's compiled mapping: rules, removal rules, constants (see ``Mapping.apply``)."""

    rules: list[Rule]
    removed_rules: list[Rule]
    const: dict[str, Any]
    removed_const: dict[str, Any]

    def __post_init__(self) -> None:
        self._steps = [_step(r) for r in self.rules]
        self._removal_steps = [_step(r) for r in self.removed_rules] + self._steps
        self._const = _const_steps(self.const)
        self._removed_const = _const_steps(self.removed_const)

    def apply(self, record: dict[str, Any], doc: dict[str, Any], consumed: set[str] | None = None) -> None:
        """Removal rules (for a removal record), then rules, then constants as defaults."""
        removed = record.get("removed") is not None
        for step in self._removal_steps if removed else self._steps:
            step(record, doc, consumed)
        for parents, last, value, many in self._removed_const if removed else self._const:
            put_at(doc, parents, last, value, many)


def _step(rule: Rule) -> Callable[[dict[str, Any], dict[str, Any], "set[str] | None"], None]:
    """``rule`` as one closure (read, convert, write, note what it consumed): the hot path of
    every formatted record, so no method calls or tuples beyond what the rule needs."""
    getters = [(get, consumes) for get, _, consumes in rule.getters]
    convert, build, parents, last, many = rule.convert, rule.build, rule.parents, rule.last, rule.many
    empty = _EMPTYABLE

    def step(record: dict[str, Any], doc: dict[str, Any], consumed: set[str] | None) -> None:
        for get, consumes in getters:
            v = get(record)
            if v is None or (type(v) in empty and not v):
                continue
            inner = None
            if build is not None:
                v, inner = build(v)
            elif convert is not None:
                v = convert(v)
            if v is None or (type(v) in empty and not v):
                continue
            d = doc
            for k in parents:
                nxt = d.get(k)
                if type(nxt) is not dict:
                    nxt = d[k] = {}
                d = nxt
            current = d.get(last)
            if many:
                put_at(d, (), last, v, True)
            elif current is None:
                d[last] = v
            elif type(current) is dict and type(v) is dict:
                for k, x in v.items():
                    current.setdefault(k, x)
            else:
                return  # an earlier rule wrote this field: this value is not used, nor consumed
            if consumed is not None and consumes is not None:
                if consumes != ".":
                    if build is None:
                        consumed.add(consumes)
                elif inner:
                    consumed.update(inner)
            return

    return step


def _const_steps(const: dict[str, Any]) -> list[tuple[tuple[str, ...], str, Any, bool]]:
    steps = []
    for target, value in const.items():
        many = target.endswith("[]")
        keys = tuple((target[:-2] if many else target).split("."))
        steps.append((keys[:-1], keys[-1], value, many))
    return steps


def compile_mapping(table: dict[str, Any], common: dict[str, Any], lookups: dict[str, dict[str, Any]]) -> Mapping:
    """A source table over the format's common (envelope) table: common rules first (the
    envelope fields are fixed), the source's constants over the common ones, removal over both."""
    removed, common_removed = table.get("removed", {}), common.get("removed", {})
    const = {**common.get("const", {}), **table.get("const", {})}
    return Mapping(
        rules=compile_rules([*common.get("fields", []), *table.get("fields", [])], lookups),
        removed_rules=compile_rules([*common_removed.get("fields", []), *removed.get("fields", [])], lookups),
        const=const,
        removed_const={**const, **common_removed.get("const", {}), **removed.get("const", {})},
    )
