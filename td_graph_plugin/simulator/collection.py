"""A tenant's stored objects: ``Collection`` (one per endpoint-table name) and its ``ChangeLog``.

A collection is a list of plain Graph dicts in the order the endpoint serves them plus a
parallel list of sort keys.  Writers build a new pair and swap it in one assignment
(copy-on-write), so request threads read a consistent view with no lock and a page being
served never sees a half-applied change.  Stored dicts are never mutated.
"""

from __future__ import annotations

import bisect
from typing import Iterable

from .timefmt import parse_ts

__all__ = ["Collection", "ChangeLog"]


class Collection:
    """Objects in served order with ascending sort keys (``-epoch`` when newest-first)."""

    def __init__(self, order_field: str | None, descending: bool = True):
        self.order_field = order_field
        self.descending = descending
        self._data: tuple[list[dict], list[float]] = ([], [])
        self._idx: tuple[list[dict], dict[str, int]] | None = None
        self._counter = 0  # insertion keys for unordered collections

    # -- reading (lock-free: one attribute read gives a consistent pair)
    @property
    def items(self) -> list[dict]:
        return self._data[0]

    def view(self) -> tuple[list[dict], list[float]]:
        return self._data

    def __len__(self) -> int:
        return len(self._data[0])

    def _key(self, obj: dict) -> float:
        if self.order_field is None:
            self._counter += 1
            return float(self._counter)
        value = parse_ts(obj[self.order_field])
        return -value if self.descending else value

    # -- writing (callers hold the tenant lock)
    def extend(self, objs: list[dict]) -> None:
        items, keys = self._data
        new = [(self._key(o), o) for o in objs]
        if not items:
            pairs = new
        else:
            pairs = list(zip(keys, items))
            pairs.extend(new)
        pairs.sort(key=lambda p: p[0])
        self._data = ([p[1] for p in pairs], [p[0] for p in pairs])

    def index(self) -> dict[str, int]:
        """id -> position in ``items`` (cached per items list; one attribute, so thread-safe)."""
        items = self._data[0]
        cached = self._idx
        if cached is None or cached[0] is not items:
            cached = (items, {o["id"]: i for i, o in enumerate(items)})
            self._idx = cached
        return cached[1]

    def get(self, obj_id: str) -> dict | None:
        """The current object with this id, or None (lock-free, consistent)."""
        items = self._data[0]
        cached = self._idx
        if cached is None or cached[0] is not items:
            cached = (items, {o["id"]: i for i, o in enumerate(items)})
            self._idx = cached
        i = cached[1].get(obj_id)
        return items[i] if i is not None else None

    def replace(self, new_objs: Iterable[dict]) -> None:
        """Swap in new versions of existing objects (same id), in one assignment.  An object
        whose order field changed moves to its new sorted position."""
        new_objs = list(new_objs)
        items, keys = self._data
        idx = self.index()
        if self.order_field is not None and any(
                o.get(self.order_field) != items[idx[o["id"]]].get(self.order_field) for o in new_objs):
            by_id = {o["id"]: o for o in new_objs}
            pairs = [(k, o) for k, o in zip(keys, items) if o["id"] not in by_id]
            pairs.extend((self._key(o), o) for o in by_id.values())
            pairs.sort(key=lambda p: p[0])
            self._data = ([p[1] for p in pairs], [p[0] for p in pairs])
            return
        items = list(items)
        for o in new_objs:
            items[idx[o["id"]]] = o
        self._data = (items, keys)
        self._idx = (items, idx)

    def remove(self, ids: set[str]) -> None:
        items, keys = self._data
        kept = [(k, o) for k, o in zip(keys, items) if o["id"] not in ids]
        self._data = ([p[1] for p in kept], [p[0] for p in kept])

    def slice_bounds(self, keys: list[float], low: float | None, high: float | None, low_inc: bool,
                     high_inc: bool) -> tuple[int, int]:
        """Index range of ``keys`` (from the same ``view()`` as the items) whose order-field
        epoch lies within [low, high], honouring inclusivity."""
        start, end = 0, len(keys)
        if self.descending:
            if high is not None:
                start = (bisect.bisect_left if high_inc else bisect.bisect_right)(keys, -high)
            if low is not None:
                end = (bisect.bisect_right if low_inc else bisect.bisect_left)(keys, -low)
        else:
            if low is not None:
                start = (bisect.bisect_left if low_inc else bisect.bisect_right)(keys, low)
            if high is not None:
                end = (bisect.bisect_right if high_inc else bisect.bisect_left)(keys, high)
        return start, max(start, end)


class ChangeLog:
    """The change log of one collection: ids in change order, which properties each change
    touched (None: the whole object - an addition or a removal), and removal reasons."""

    __slots__ = ("changes", "fields", "removed")

    def __init__(self) -> None:
        self.changes: list[str] = []  # sequence number = index + 1
        self.fields: list[frozenset[str] | None] = []  # parallel to ``changes``
        self.removed: dict[str, str] = {}  # id -> "changed" | "deleted"
