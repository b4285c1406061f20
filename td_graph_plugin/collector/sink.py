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

Group commit: the written pages queue in ticket order; whichever waiting page finds no commit
running becomes the committer and takes every page queued (up to ``max_batch``) into ONE state
transaction (``commit_many``: one fsync for all of them, applied in ticket order, so the
stored offset is the last page's), and only then releases each of their waiters (``deliver``
returns, ``committed()`` runs).  While it commits, the next pages queue up for the next batch.
A store without ``commit_many`` commits one page per transaction as before.

The first failed write or commit latches the sink (every page of a failed batch gets the
error; none of that batch is committed): every later page is refused, including
pages already written whose turn to commit comes after the failure.  Otherwise such a page
would commit an offset past the failed page's records, which would then be neither adopted at
the next start nor rewritten by it (lost or doubled).  What the failed page left in the file
(complete lines only) is an uncommitted tail, adopted at the next start.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any, Callable, Protocol, Sequence, cast

from ..errors import OutputError
from ..outputs.base import Output, PositionedOutput
from ..state import Commit, StateStore

__all__ = ["Sink", "SyncSink", "groups_commits"]

log = logging.getLogger(__name__)


class Sink(Protocol):
    def deliver(self, lines: Sequence[bytes], commit: Commit, committed: Callable[[], None]) -> None:
        """Hand ``lines`` downstream; commit ``commit`` only once they are accepted.

        Must not return before the commit is visible in the state store (or raise): the
        collectors read their own state between pages (dedup keys, hashes, sweeps).
        """

    def close(self) -> None:
        """Release the output (the process is stopping)."""


def groups_commits(state: Any) -> bool:
    """Whether ``state.commit_many`` is the group form of ``state.commit``: both methods of the
    same object, defined by the same class.  A subclass, wrapper or patch that intercepts
    ``commit`` alone (a fault injector, a fence) keeps seeing every page through ``commit``."""
    one, many = getattr(state, "commit", None), getattr(state, "commit_many", None)
    return (
        callable(many) and getattr(one, "__self__", None) is state and getattr(many, "__self__", None) is state
        and _owner(one) == _owner(many)
    )


def _owner(method: Any) -> str:
    return getattr(getattr(method, "__func__", None), "__qualname__", "?").rpartition(".")[0]


class _Entry:
    """A written page waiting in the turnstile for its checkpoint to commit."""

    __slots__ = ("commit", "mark", "reopened", "done", "error")

    def __init__(self, commit: Commit, mark: Any, reopened: tuple[str, int, str] | None) -> None:
        self.commit, self.mark, self.reopened = commit, mark, reopened
        self.done = False
        self.error: BaseException | None = None


class SyncSink:
    """``adopt(state, lines, (name, position, file_id))`` takes over records an output
    recovered after a crash (written, never checkpointed) so they are not collected and
    written again."""

    def __init__(self, output: Output, state: StateStore, adopt: Callable[..., int] | None = None,
                 max_batch: int = 64) -> None:
        self.output = output
        self.state = state
        self.adopt = adopt
        self.max_batch = max_batch           # pages per group commit at most
        self._lock = threading.Lock()        # the output: one page written at a time; issues tickets
        self._turn = threading.Condition()   # the commit queue and its one committer
        self._pending: deque[_Entry] = deque()  # written, not yet committed, in ticket (= write) order
        self._committing = False             # a thread is committing a batch (under _turn)
        self._issued = 0                     # tickets issued (under _lock)
        self._serving = 0                    # pages done (committed or failed; under _turn)
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
            self._issued += 1
            entry = self._enqueue(commit, mark, reopened)
        self._await(entry)
        committed()

    def _enqueue(self, commit: Commit, mark: Any, reopened: tuple[str, int, str] | None) -> _Entry:
        """Queue a written page for its commit (called in write order, under the output lock)."""
        entry = _Entry(commit, mark, reopened)
        with self._turn:
            self._pending.append(entry)
        return entry

    def _await(self, entry: _Entry) -> None:
        """Return once ``entry`` committed (or raise its error).  Whoever finds no commit running
        becomes the committer: it takes every page waiting (its own and the later ones), commits
        them in one transaction, releases their waiters and hands over to the next waiting page."""
        with self._turn:
            while not entry.done:
                if self._committing or not self._pending:
                    self._turn.wait()
                    continue
                group = groups_commits(self.state)
                batch = self._take_batch(group)
                self._committing = True
                self._turn.release()
                try:
                    errors = self._commit_batch(batch, group)
                finally:
                    self._turn.acquire()
                    self._committing = False
                for e, error in zip(batch, errors):
                    e.error, e.done = error, True
                self._serving += len(batch)
                self._turn.notify_all()
        if entry.error is not None:
            raise entry.error

    def _take_batch(self, group: bool) -> list[_Entry]:
        """The oldest waiting pages (under _turn): up to ``max_batch``, and a page that stores a
        reopened file's mark first only at the head of a batch (it is anyway: it drained)."""
        batch = [self._pending.popleft()]
        limit = self.max_batch if group else 1
        while self._pending and len(batch) < limit and self._pending[0].reopened is None:
            batch.append(self._pending.popleft())
        return batch

    def _commit_batch(self, batch: list[_Entry], group: bool) -> list[BaseException | None]:
        """Commit the pages in one transaction (no lock held); one error (or None) per page.
        A failure latches the sink, and every page of the batch gets it (none of it committed);
        a page of a tenant this replica lost (``LeaseLost`` from a fenced store) fails alone."""
        try:
            self._refuse_after_failure()  # an earlier page failed: its records must not be covered
            if batch[0].reopened is not None:
                self.state.set_output_position(*batch[0].reopened)
            if not group:  # a store without group commit: one page per transaction
                self.state.commit(batch[0].commit, output=batch[0].mark)
                return [None]
            errors = list(self.state.commit_many([(e.commit, e.mark) for e in batch]))  # type: ignore[attr-defined]
            if len(errors) != len(batch):
                raise OutputError(f"state returned {len(errors)} results for {len(batch)} pages")
            return errors
        except BaseException as exc:
            if self._failure is None:
                self._failure = str(exc) or type(exc).__name__
            return [exc] * len(batch)

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
