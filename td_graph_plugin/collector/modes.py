"""The built-in collection modes, and which collector reads a given source."""

from __future__ import annotations

from ..spec import SourceSpec
from .base import SourceCollector
from .inventory import DELTA, SNAPSHOT
from .window import WINDOW

__all__ = ["MODES", "collector_for"]

MODES: dict[str, SourceCollector] = {"window": WINDOW, "delta": DELTA, "snapshot": SNAPSHOT}


def collector_for(spec: SourceSpec) -> SourceCollector:
    """The spec's own collector when it names one, else its mode's."""
    return spec.collector if spec.collector is not None else MODES[spec.mode]  # type: ignore[no-any-return]
