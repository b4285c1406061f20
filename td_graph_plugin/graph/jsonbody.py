"""Decoding a page body so that one pathological item cannot block its source forever.

orjson refuses a document nested deeper than 1024 levels, and so would fail the whole page on
every poll.  When that happens the page is split at its top-level ``value`` array (an iterative
scan: no recursion) and each item decoded on its own; an item still too deep becomes ``None``,
which the collectors skip and count as a bad item like any other malformed one.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["loads_page"]


def loads_page(body: bytes) -> Any:
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
