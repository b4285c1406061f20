"""What the ECS and OCSF formatters share: the plugin hook, and never losing a record.

A record whose mapping fails (a Graph shape no table foresaw, a bug, a plugin's exception) is
written with the envelope-only mapping instead and logged once per source: formatting must not
turn one odd object into a failing source, nor drop a record the checkpoint then moves past.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

__all__ = ["FormatterBase", "MapHook"]

log = logging.getLogger("td_graph_plugin.formats")

MapHook = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class FormatterBase:
    name = ""

    def __init__(self, hook: MapHook | None = None) -> None:
        self.hook = hook
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        source = record.get("source", "")
        if self.hook is not None:
            try:
                doc = self.hook(record)
            except Exception as exc:  # a plugin's bug: the built-in mapping still writes the record
                self._warn(source, f"the td_graph_map_record hook failed ({exc!r}); built-in mapping used")
                doc = None
            if doc is not None:
                return self.finish_hooked(doc, record)
        try:
            return self.map(record, generic=False)
        except Exception as exc:
            self._warn(source, f"the {self.name} mapping failed ({exc!r}); envelope-only mapping used")
            return self.map(record, generic=True)

    def map(self, record: dict[str, Any], *, generic: bool) -> dict[str, Any]:
        raise NotImplementedError

    def finish_hooked(self, doc: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _warn(self, source: str, message: str) -> None:
        key = (source, message.split("(", 1)[0])
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning("%s: %s (logged once per source)", source, message)
