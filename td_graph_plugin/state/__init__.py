"""Durable state: where each source is, what was emitted, what the output holds."""

from .reader import SourceRow, StateSnapshot, read_state
from .store import SCHEMA_VERSION, Commit, StateStore

__all__ = ["SCHEMA_VERSION", "Commit", "StateStore", "SourceRow", "StateSnapshot", "read_state"]
