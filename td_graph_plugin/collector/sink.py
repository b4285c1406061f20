"""Delivery: output first, checkpoint second — never the other way round.

``SyncSink`` serves outputs that accept records synchronously (stdout, file).  A page is
written (and synced) under the output lock, which also hands it a ticket; its checkpoint (with
the file offset after it and the file's identity) is then committed *in ticket order*, outside
the output lock.  So the next page - another tenant's, typically - is written and synced while
this one's state transaction runs, instead of waiting for both (issue 16: 32 workers queued on
one lock held across the write and the commit).  What the order guarantees is what the single
lock did: a commit stores the offset after its own page, every earlier page has committed
before it, so a stored offset never goes backwards and never covers a page whose checkpoint is
not committed (after a crash, the pages written but not committed are the file's tail past
the offset, adopted at the next start as before).  A page that may change the file (rotation,
a reopen after SIGHUP) first waits for every earlier commit, so no commit ever names an old
file after a newer one.  Hosts with asynchronous acknowledgements (syslog-ng) provide their
own sink that commits from the ack callback.

The first failed write or commit latches the sink: every later page is refused, including
pages already written whose turn to commit comes after the failure.  Otherwise such a page
would commit an offset past the failed page's records, which would then be neither adopted at
the next start nor rewritten by it (lost or doubled).  What the failed page left in the file
(complete lines only) is an uncommitted tail, adopted at the next start.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Protocol, Sequence, cast

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
        self._lock = threading.Lock()        # the output: one page written at a time; issues tickets
        self._turn = threading.Condition()   # commits, one at a time, in ticket (= write) order
        self._issued = 0                     # tickets issued (under _lock)
        self._serving = 0                    # the ticket whose commit may run (under _turn)
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
            self._refuse_after_failure()
            if self._positioned and self._switches_file(lines):
                self._drain()
            try:
                reopened, mark = self._write(lines)
            except BaseException as exc:
                self._failure = str(exc) or type(exc).__name__
                raise
            ticket = self._issued
            self._issued += 1
        with self._turn:
            while self._serving != ticket:
                self._turn.wait()
            try:
                self._refuse_after_failure()  # an earlier page failed: its records must not be covered
                if reopened is not None:
                    self.state.set_output_position(*reopened)
                self.state.commit(commit, output=mark)
            except BaseException as exc:
                if self._failure is None:
                    self._failure = str(exc) or type(exc).__name__
                raise
            finally:
                self._serving += 1
                self._turn.notify_all()
        committed()

    def _refuse_after_failure(self) -> None:
        if self._failure is not None:
            raise OutputError(
                f"{self.output.name}: page refused after an earlier failure ({self._failure}); td-graph must "
                "stop and start again (what that page wrote is adopted at the start, never written twice)"
            )

    def _switches_file(self, lines: Sequence[bytes]) -> bool:
        check = getattr(self.output, "switches_file", None)
        return True if check is None else bool(check(sum(map(len, lines))))

    def _drain(self) -> None:
        """Wait (holding the output lock) until every page written so far has committed."""
        with self._turn:
            while self._serving != self._issued:
                self._turn.wait()

    def _write(self, lines: Sequence[bytes]) -> tuple[tuple[str, int, str] | None, Any]:
        """Write the page; (the mark to store first if the file changed by a reopen, the mark
        to commit with the page)."""
        if not self._positioned:
            position = self.output.write(lines)
            return None, ((self.output.name, position) if position is not None else None)
        output = cast(PositionedOutput, self.output)
        reopened = self._mark(output) if output.reopen_if_requested() else None
        output.write(lines)
        return reopened, self._mark(output)

    def close(self) -> None:
        self.output.close()
