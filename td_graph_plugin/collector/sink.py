"""Delivery: output first, checkpoint second — never the other way round.

``SyncSink`` serves outputs that accept records synchronously (stdout, file): it writes the
page and commits its checkpoint (with the file offset and the file's identity) under one lock,
so pages of concurrent tenants never interleave between a write and its commit.  Hosts with
asynchronous acknowledgements (syslog-ng) provide their own sink that commits from the ack
callback.

The first failed write or commit latches the sink: every later page is refused.  Otherwise
another job's page would commit an offset past the failed page's records, which would then be
neither adopted at the next start nor rewritten by it (lost or doubled).  What the failed page
left in the file (complete lines only) is an uncommitted tail, adopted at the next start.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Protocol, Sequence, cast

from ..errors import OutputError
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
    """``adopt(state, lines, (name, position, file_id))`` takes over records an output
    recovered after a crash (written, never checkpointed) so they are not collected and
    written again."""

    def __init__(self, output: Output, state: StateStore, adopt: Callable[..., int] | None = None) -> None:
        self.output = output
        self.state = state
        self.adopt = adopt
        self._lock = threading.Lock()
        self._failure: str | None = None
        self._positioned = isinstance(output, PositionedOutput)

    def open(self) -> None:
        output = self.output
        if not isinstance(output, PositionedOutput):
            output.open(self.state.output_position(output.name))
            return
        mark = self.state.output_mark(output.name)
        output.open(*(mark or (None, None)))
        if output.recovered and self.adopt is not None:
            self.adopt(self.state, output.recovered, self._mark(output))
            return
        if output.recovered:
            output.discard_recovered()
        self.state.set_output_position(*self._mark(output))

    @staticmethod
    def _mark(output: PositionedOutput) -> tuple[str, int, str]:
        return output.name, output.position, output.file_id

    def request_reopen(self) -> None:
        """SIGHUP after an external rotation: the next page goes to the new file at the path.
        Only sets a flag, so it is safe to call from a signal handler."""
        if self._positioned:
            cast(PositionedOutput, self.output).request_reopen()

    def deliver(self, lines: Sequence[bytes], commit: Commit, committed: Callable[[], None]) -> None:
        with self._lock:
            if self._failure is not None:
                raise OutputError(
                    f"{self.output.name}: page refused after an earlier failure ({self._failure}); td-graph must "
                    "stop and start again (what that page wrote is adopted at the start, never written twice)"
                )
            try:
                self._write_and_commit(lines, commit)
            except BaseException as exc:
                self._failure = str(exc) or type(exc).__name__
                raise
        committed()

    def _write_and_commit(self, lines: Sequence[bytes], commit: Commit) -> None:
        if not self._positioned:
            position = self.output.write(lines)
            self.state.commit(commit, output=(self.output.name, position) if position is not None else None)
            return
        output = cast(PositionedOutput, self.output)
        if output.reopen_if_requested():
            self.state.set_output_position(*self._mark(output))
        output.write(lines)
        self.state.commit(commit, output=self._mark(output))

    def close(self) -> None:
        self.output.close()
