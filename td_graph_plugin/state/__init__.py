"""Durable state: where each source is, what was emitted, what the output holds."""

from .backend import Fence, StateBackend
from .reader import SourceRow, StateSnapshot, read_state
from .store import SCHEMA_VERSION, Commit, StateStore

__all__ = [
    "SCHEMA_VERSION", "Commit", "Fence", "StateBackend", "StateStore", "SourceRow", "StateSnapshot",
    "read_state",
]
