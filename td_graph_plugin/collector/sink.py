"""Delivery: output first, checkpoint second — never the other way round.

``SyncSink`` serves outputs that accept records synchronously (stdout, file): it writes the
page and commits its checkpoint (with the file offset) under one lock, so pages of concurrent
tenants never interleave between a write and its commit.  Hosts with asynchronous
acknowledgements (syslog-ng) provide their own sink that commits from the ack callback.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Protocol, Sequence

from ..outputs.base import Output, PositionedOutput
from ..state import Commit, StateStore

__all__ = ["Sink", "SyncSink"]

log = logging.getLogger(__name__)


class Sink(Protocol):
    def deliver(self, lines: Sequence[bytes], commit: Commit, committed: Callable[[], None]) -> None:
        """Hand ``lines`` downstream; commit ``commit`` only once they are accepted.

        Must not return before the commit is visible in the state store (or raise): the
        collectors read their own state between pages (dedup keys, hashes, sweeps).
        """

    def close(self) -> None:
        """Release the output (the process is stopping)."""


class SyncSink:
    """``adopt(state, lines, (name, position))`` takes over records an output recovered after
    a crash (written, never checkpointed) so they are not collected and written again."""

    def __init__(self, output: Output, state: StateStore, adopt: Callable[..., int] | None = None) -> None:
        self.output = output
        self.state = state
        self.adopt = adopt
        self._lock = threading.Lock()

    def open(self) -> None:
        output = self.output
        output.open(self.state.output_position(output.name))
        if not isinstance(output, PositionedOutput):
            return
        if output.recovered and self.adopt is not None:
            self.adopt(self.state, output.recovered, (output.name, output.position))
            return
        if output.recovered:
            output.discard_recovered()
        self.state.set_output_position(output.name, output.position)

    def deliver(self, lines: Sequence[bytes], commit: Commit, committed: Callable[[], None]) -> None:
        with self._lock:
            position = self.output.write(lines)
            self.state.commit(commit, output=(self.output.name, position) if position is not None else None)
        committed()

    def close(self) -> None:
        self.output.close()
