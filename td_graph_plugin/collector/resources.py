"""Connections a non-Graph source shares across its runs, opened lazily, closed with the engine."""

from __future__ import annotations

import threading
from typing import Any, Callable, Hashable

__all__ = ["Resources"]


class Resources:
    """A small keyed cache: ``get(key, open_fn)`` opens once (``open_fn`` may return None for
    "not there yet": nothing is cached then, so it is asked again next time); ``close()`` closes
    everything that has a ``close`` method."""

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, open_fn: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._items:
                value = open_fn()
                if value is None:
                    return None
                self._items[key] = value
            return self._items[key]

    def close(self) -> None:
        with self._lock:
            items, self._items = list(self._items.values()), {}
        for item in items:
            closer = getattr(item, "close", None)
            if closer is not None:
                closer()
