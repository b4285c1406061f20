"""Graph objects that pass through without being rebuilt (issue 16).

A collection page is decoded by msgspec (C) into each item's original bytes (``msgspec.Raw``)
plus the handful of top-level fields the collector reads per record (id, the cursor and
event-time fields, ``@removed``); msgspec finds those fields (a struct of ``Raw`` values) and
orjson decodes each one, so every value the collector sees is exactly what orjson (the dict
path) would have produced, big integers (orjson: float) and duplicate keys (the last one wins,
as in msgspec's struct decoding) included.  A ``RawItem`` reads like a read-only mapping
(``get``, ``[k]``, ``in``); anything else (iteration, ``len``, a key outside the decoded
fields) or any mutation materialises the whole object once with ``orjson.loads`` of its
bytes: the dict the dict path would have had.

The envelope then carries the object's bytes as Graph sent them (``orjson.Fragment``, see
``encode_default``), unless it was materialised (a record-filter hook, ``ecs``/``ocsf``, a
related fetch): then the dict is encoded, exactly as on the dict path.

**What "the same output" means, and why.**  The dict path writes
``orjson.dumps(orjson.loads(item))``; the raw path writes ``item``.  The two are byte-identical
whenever the item is already in orjson's canonical form (compact, no ``\\u`` escape orjson
would not write, numbers as orjson prints them, no repeated key) - which is what Graph sends
(compact JSON) and what every recorded cassette holds (``tests/test_raw_equivalence.py``
checks both).  For any other input the guarantee is that ``orjson.loads`` of the two ``data``
values is equal (whitespace, escapes, ``1.50`` vs ``1.5``, integers beyond 64 bits, a
repeated key): the raw path keeps Graph's spelling of the same JSON value.  Detecting and
re-normalising every non-canonical spelling would cost a scan per page that is dearer than
the decode it saves (measured: a number-token regex alone is ~15 us per record, twice the
orjson decode), so only what could change *what* is written (as opposed to its spelling) or
break NDJSON sends a page down the dict path (``jsonbody.loads_raw_page``): a raw line feed or
carriage return (pretty-printed JSON would split a record over lines), an escaped surrogate
(orjson refuses lone ones: the page must fail as it does today), bytes that are not UTF-8, and
anything msgspec refuses (its nesting limit, the recursion limit, is below orjson's 1024
levels, so an item too deep for orjson never takes the raw path).  Non-finite numbers cannot
be written in JSON; a literal that overflows a double (``1e400``) is refused by both decoders,
so such a page takes the dict path too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Union

import msgspec
import orjson

__all__ = ["RawItem", "RawItems", "field_decoder", "typed_decoder", "page_decoder", "materialise", "encode_default",
           "PAGE_KEYS"]

_MISSING: Any = msgspec.UNSET
_DECODERS: dict[tuple[str, ...], tuple[msgspec.json.Decoder, ...]] = {}
_TYPED: dict[tuple[str, ...], tuple[msgspec.json.Decoder, tuple[str, ...], dict[str, str]]] = {}
_STR = Union[str, None, msgspec.UnsetType]
# A collection page's own keys besides "value"; a page with any other key takes the slower,
# general path (jsonbody.loads_raw_page), so nothing of it is dropped.
PAGE_KEYS = {"context": "@odata.context", "next": "@odata.nextLink", "delta": "@odata.deltaLink",
             "count": "@odata.count"}
_PAGE = msgspec.json.Decoder(msgspec.defstruct(
    "RawPage", [("value", list[msgspec.Raw])] + [(k, msgspec.Raw, _MISSING) for k in PAGE_KEYS],
    rename=PAGE_KEYS, forbid_unknown_fields=True,
))


def page_decoder() -> msgspec.json.Decoder:
    """A page as its items' bytes and its @odata keys (raw); refuses any other key."""
    return _PAGE


def field_decoder(fields: Iterable[str]) -> tuple[msgspec.json.Decoder, ...]:
    """Decoders into structs holding just ``fields`` of each item, still raw: of a whole page
    (its other keys ignored), of a ``value`` array, of one item; and the json name ->
    attribute map.  Cached per field set."""
    names = tuple(sorted(set(fields)))
    cached = _DECODERS.get(names)
    if cached is None:
        attrs = {name: f"f{i}" for i, name in enumerate(names)}
        struct = msgspec.defstruct(
            "RawFields", [(attr, msgspec.Raw, _MISSING) for attr in attrs.values()],
            rename={attr: name for name, attr in attrs.items()},
        )
        page = msgspec.defstruct("RawFieldsPage", [("value", list[struct])])  # type: ignore[valid-type]
        cached = (msgspec.json.Decoder(page), msgspec.json.Decoder(list[struct]),  # type: ignore[valid-type]
                  msgspec.json.Decoder(struct), attrs)  # type: ignore[assignment]
        _DECODERS[names] = cached
    return cached


def typed_decoder(fields: Iterable[str]) -> tuple[msgspec.json.Decoder, tuple[str, ...], dict[str, str]]:
    """A decoder of a whole page into structs holding ``fields`` as strings (or null), the
    json names in attribute order and the json name -> attribute map.  The page it refuses
    (a field that is a number, an object...: ``msgspec.ValidationError``) takes the raw-field
    decoder.  msgspec reads a JSON string as orjson does once the page has no escaped
    surrogate and is UTF-8 (``jsonbody.loads_raw_page`` checks both first), and a repeated
    key's last value wins in both."""
    names = tuple(sorted(set(fields)))
    cached = _TYPED.get(names)
    if cached is None:
        attrs = {name: f"f{i}" for i, name in enumerate(names)}

        def get(self: Any, key: str, default: Any = None, _attrs: dict[str, str] = attrs) -> Any:
            # A RawItem's fields (``RawItem.get``): the value, msgspec.UNSET when absent.
            attr = _attrs.get(key)
            return default if attr is None else getattr(self, attr)

        struct = msgspec.defstruct(
            "StrFields", [(attr, _STR, _MISSING) for attr in attrs.values()],
            rename={attr: name for name, attr in attrs.items()}, namespace={"get": get},
        )
        page = msgspec.defstruct("StrFieldsPage", [("value", list[struct])])  # type: ignore[valid-type]
        cached = _TYPED[names] = (msgspec.json.Decoder(page), names, attrs)
    return cached


class RawItems(list):
    """A page's items (``RawItem``s) that also hold, side by side, each item's bytes and its
    decoded string fields (msgspec structs, ``attrs`` names their attributes): what the window
    collector's per-page path reads without going through the items (collector/window.py)."""

    __slots__ = ("raws", "structs", "attrs")

    def __init__(self, items: Iterable[Any], raws: list[bytes], structs: list[Any], attrs: dict[str, str]) -> None:
        super().__init__(items)
        self.raws, self.structs, self.attrs = raws, structs, attrs


class RawItem:
    """One Graph object: its bytes, its pre-decoded fields, and the dict once materialised."""

    __slots__ = ("raw", "_fields", "_known", "_dict")

    def __init__(self, raw: msgspec.Raw | bytes, fields: Any, known: frozenset[str]) -> None:
        self.raw = raw          # the object exactly as Graph sent it (msgspec.Raw or bytes)
        # The pre-decoded fields present in the object (orjson values): a dict, or the
        # ``typed_decoder`` struct itself (its ``get`` answers msgspec.UNSET for an absent one).
        self._fields = fields
        self._known = known     # the fields that were looked for (absent: not in the object)
        self._dict: dict[str, Any] | None = None

    @classmethod
    def from_struct(cls, raw: msgspec.Raw, struct: Any, attrs: dict[str, str], known: frozenset[str]) -> RawItem:
        """From a ``field_decoder`` struct: each present field decoded by orjson, as the dict
        path decodes it (big integers, repeated keys: the same values)."""
        fields = {}
        for name, attr in attrs.items():
            value = getattr(struct, attr)
            if value is not _MISSING:
                fields[name] = orjson.loads(memoryview(value))
        return cls(raw, fields, known)

    # --- reading ---------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        d = self._dict
        if d is None:
            value = self._fields.get(key, _MISSING)
            if value is not _MISSING:
                return value
            if key in self._known:
                return default
            d = self.materialise()
        return d.get(key, default)

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self.get(key, _MISSING) is not _MISSING  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        return iter(self.materialise())

    def __len__(self) -> int:
        return len(self.materialise())

    def keys(self) -> Any:
        return self.materialise().keys()

    def items(self) -> Any:
        return self.materialise().items()

    def values(self) -> Any:
        return self.materialise().values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RawItem):
            return self.materialise() == other.materialise()
        return self.materialise() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        raw = bytes(self.raw)
        return f"RawItem({raw[:60]!r}{'...' if len(raw) > 60 else ''})"

    # --- materialising -----------------------------------------------------------------
    @property
    def materialised(self) -> bool:
        return self._dict is not None

    def materialise(self) -> dict[str, Any]:
        """The object as a dict (``orjson.loads`` of its bytes, as the dict path decodes it);
        from now on this item is the dict and is written from it."""
        d = self._dict
        if d is None:
            d = self._dict = orjson.loads(memoryview(self.raw))
        return d

    def __setitem__(self, key: str, value: Any) -> None:
        self.materialise()[key] = value

    def __delitem__(self, key: str) -> None:
        del self.materialise()[key]

    def setdefault(self, key: str, default: Any = None) -> Any:
        return self.materialise().setdefault(key, default)

    def pop(self, key: str, *default: Any) -> Any:
        return self.materialise().pop(key, *default)

    def update(self, *args: Any, **kw: Any) -> None:
        self.materialise().update(*args, **kw)

    def copy(self) -> dict[str, Any]:
        return dict(self.materialise())


def materialise(value: Any, depth: int = 3) -> Any:
    """``value`` as the dict path would hold it: RawItems as plain dicts, so a hook, a formatter
    or a hash sees ordinary JSON values.  RawItems only ever sit in the first levels (a
    record's ``data``, a related fetch's list under it), so only ``depth`` levels are searched
    (an object nested thousands of levels deep is not walked)."""
    if isinstance(value, RawItem):
        value = value.materialise()
    if depth <= 0:
        return value
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (RawItem, dict, list)):
                value[k] = materialise(v, depth - 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, (RawItem, dict, list)):
                value[i] = materialise(v, depth - 1)
    return value


def encode_default(obj: Any) -> Any:
    """orjson's ``default``: a RawItem is written as its bytes, or its dict once materialised."""
    if type(obj) is RawItem:
        d = obj._dict
        return orjson.Fragment(bytes(obj.raw)) if d is None else d
    raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")
