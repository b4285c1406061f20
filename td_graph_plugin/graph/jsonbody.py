"""Decoding a page body so that one pathological item cannot block its source forever.

orjson refuses a document nested deeper than 1024 levels, and so would fail the whole page on
every poll.  When that happens the page is split at its top-level ``value`` array (an iterative
scan: no recursion) and each item decoded on its own; an item still too deep becomes ``None``,
which the collectors skip and count as a bad item like any other malformed one.

Raw pages (issue 16): while ``RAW_FIELDS`` names fields (the collectors set it around their
page reads, ``raw_pages``), a page whose bytes allow it is decoded by msgspec into
``RawItem``s (graph/rawitem.py: the item's bytes plus those fields) instead of dicts.  Any
page that does not qualify, and any decode msgspec refuses, takes the orjson path above, so
errors (and what a refused page costs) are exactly the dict path's.  When every field read is a
string or null in every item (the usual page), those fields are decoded as strings by msgspec
itself (``rawitem.typed_decoder``) and the items come as ``RawItems``, which the window
collector reads a page at a time (``collector.window.page_lines_writer``).
"""

from __future__ import annotations

import sys
from contextvars import ContextVar
from itertools import repeat
from typing import Any

import msgspec
import orjson

from .rawitem import PAGE_KEYS, RawItem, RawItems, field_decoder, page_decoder, typed_decoder

__all__ = ["loads_page", "loads_raw_page", "RAW_FIELDS"]

# The fields the current reader needs per item, when it takes RawItems; None: plain dicts.
RAW_FIELDS: ContextVar[tuple[str, ...] | None] = ContextVar("td_graph_raw_fields", default=None)
_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RAWS = msgspec.json.Decoder(list[msgspec.Raw])
_UNSET: Any = msgspec.UNSET


def loads_page(body: bytes) -> Any:
    fields = RAW_FIELDS.get()
    if fields is not None:
        page = loads_raw_page(body, fields)
        if page is not None:
            return page
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" not in str(exc) and "recursion" not in str(exc).lower():
            raise
        split = _split_value_array(body)
        if split is None:
            raise
    start, end, items = split
    page = orjson.loads(body[:start] + b"[]" + body[end:])  # the rest of the page is shallow
    if isinstance(page, dict):
        page["value"] = [_item(body[a:b]) for a, b in items]
    return page


def loads_raw_page(body: bytes, fields: tuple[str, ...]) -> dict[str, Any] | None:
    """The page with its ``value`` items as ``RawItem``s, or None when it must take the dict
    path: a raw CR/LF (not compact: a record would span lines), an escaped surrogate or bytes
    that are not UTF-8 (orjson refuses them, so the page must fail as it does today), a
    recursion limit above msgspec's usual one, or anything msgspec refuses (its nesting limit
    is below orjson's, so an item orjson could not decode never gets here)."""
    # One-byte searches are memchr (~0.02 ms per 1.7 MB page); the two-byte ones only run on
    # a page that has a backslash at all.
    if b"\n" in body or b"\r" in body or sys.getrecursionlimit() > 1000:
        return None
    if b"\\" in body and (b"\\ud" in body or b"\\uD" in body):
        return None
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    whole, many, one, attrs = field_decoder(fields)
    try:  # the common page: two C passes (items' bytes and @odata keys; the fields)
        shell = page_decoder().decode(body)
        raws = shell.value
        page: dict[str, Any] = {name: orjson.loads(memoryview(raw)) for attr, name in PAGE_KEYS.items()
                                if (raw := getattr(shell, attr)) is not _UNSET}
        typed, names, typed_attrs = typed_decoder(fields)
        try:  # every field a string or null (the usual page): decoded in C, no per-item Python
            strs = typed.decode(body).value
        except msgspec.ValidationError:
            strs = None
        if strs is not None and len(strs) == len(raws):
            copies = list(map(bytes, raws))  # copied out of the body: see below
            known = frozenset(names)  # each item reads its fields from its struct (no dict)
            page["value"] = RawItems(map(RawItem, copies, strs, repeat(known)), copies, strs, typed_attrs)
            return page
        structs = whole.decode(body).value
    except (msgspec.DecodeError, orjson.JSONDecodeError, RecursionError):
        structs = None
        try:  # other top-level keys, or an item that is not an object: the general path
            top = _TOP.decode(body)
            value = top.get("value")
            if value is None:
                return None
            raws = _RAWS.decode(value)
            page = {k: orjson.loads(memoryview(v)) for k, v in top.items() if k != "value"}
        except (msgspec.DecodeError, orjson.JSONDecodeError, RecursionError):
            return None
        try:
            structs = many.decode(value)
        except (msgspec.DecodeError, RecursionError):  # an item that is not an object: item by item
            try:
                page["value"] = [_raw_item(bytes(r), one, attrs) for r in raws]
            except orjson.JSONDecodeError:
                return None
            return page
    known = frozenset(attrs)
    make = RawItem.from_struct
    try:
        # Each item's bytes are copied out of the body (bytes(r)): a msgspec.Raw is a view that
        # would keep the whole 1-2 MB body alive as long as any of its records; measured, that
        # made the peak RSS of a 1M-record run grow by ~20% over a 200k one (copied: +1.2%).
        page["value"] = [make(bytes(r), st, attrs, known) for r, st in zip(raws, structs)]
    except orjson.JSONDecodeError:  # a field orjson reads differently from msgspec: the dict path
        return None
    return page


def _raw_item(raw: bytes, one: msgspec.json.Decoder, attrs: dict[str, str]) -> Any:
    try:
        return RawItem.from_struct(raw, one.decode(raw), attrs, frozenset(attrs))
    except (msgspec.DecodeError, RecursionError):
        return orjson.loads(memoryview(raw))  # a string, a number, null...: what the dict path has


def _item(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # too deep (or broken): a bad item, counted by the collector


def _split_value_array(body: bytes) -> tuple[int, int, list[tuple[int, int]]] | None:
    """(start, end) of the top-level ``"value": [...]`` array and its items' byte ranges."""
    depth, i, n = 0, 0, len(body)
    in_string = False
    key_start = -1
    last_key = b""
    start = -1
    items: list[tuple[int, int]] = []
    item_start = -1
    while i < n:
        c = body[i]
        if in_string:
            if c == 0x5C:  # backslash: skip the escaped byte
                i += 2
                continue
            if c == 0x22:
                in_string = False
                if depth == 1 and start < 0:
                    last_key = body[key_start + 1 : i]
            i += 1
            continue
        if c == 0x22:
            in_string = True
            key_start = i
            if depth == 2 and start >= 0 and item_start < 0:
                item_start = i
        elif c in (0x5B, 0x7B):  # [ {
            if depth == 1 and c == 0x5B and last_key == b"value" and start < 0:
                start = i
            elif depth == 2 and start >= 0 and item_start < 0:
                item_start = i
            depth += 1
        elif c in (0x5D, 0x7D):  # ] }
            depth -= 1
            if depth == 1 and start >= 0 and c == 0x5D:
                if item_start >= 0:
                    items.append((item_start, i))
                return start, i + 1, [(a, _rstrip(body, b)) for a, b in items]
        elif c == 0x2C and depth == 2 and start >= 0:  # , between items
            if item_start >= 0:
                items.append((item_start, i))
            item_start = -1
        elif depth == 2 and start >= 0 and item_start < 0 and c not in (0x20, 0x09, 0x0A, 0x0D):
            item_start = i  # a number, true, false or null
        i += 1
    return None


def _rstrip(body: bytes, end: int) -> int:
    while end > 0 and body[end - 1] in (0x20, 0x09, 0x0A, 0x0D):
        end -= 1
    return end
