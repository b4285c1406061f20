"""Checkpoint-after-acknowledge for hosts that acknowledge messages asynchronously (syslog-ng).

``AckSink`` implements the collector's ``Sink`` protocol.  ``deliver(lines, commit, committed)``
puts each line on a bounded queue under the next value of one monotonically increasing sequence
number, and remembers the page's ``Commit`` in order, keyed by the sequence number of its last
line.  The host takes lines with ``take()``, posts them with the sequence number as bookmark,
and reports acknowledgements either as the highest *contiguous* acknowledged number
(``ack(seq)``, what a consecutive tracker reports) or message by message in any order
(``ack_each(seqs)``, what syslog-ng's ``BatchedAckTracker`` reports; the sink keeps the
out-of-order ones until the gap before them closes).  The sink then commits, in order, every
pending page whose last line is at or below the contiguous mark, and every empty-batch commit (a
window completion) queued after them.  Nothing is committed before its lines are acknowledged.

Three guarantees the collectors rely on:

* **Order.**  Pages are numbered in the order they are queued (one producer at a time) and
  committed in that order; an empty batch carries the number of the newest line queued before
  it, so it commits only once everything before it is acknowledged.
* **Backpressure.**  ``deliver`` blocks while the queue is full, so a stalled destination stops
  the Graph reads instead of growing memory.
* **Read-your-writes.**  By default ``deliver`` returns only once its own page is committed.  The
  collectors read their own state between pages (seen keys, object hashes, the stale-object
  sweep after a full read, the cursor of the next run), so a page must be committed before the
  collector goes on; pages of *other* jobs (tenants/sources) stay in flight concurrently.

On stop (``stop`` event set, or ``close()``), a ``deliver`` that is waiting raises
``DeliveryStopped`` (a ``GraphStopped``, which the engine records as "stopped"): its page is not
committed and is collected again after the restart.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from ..errors import GraphStopped
from ..state import Commit, StateStore

__all__ = ["AckSink", "DeliveryStopped"]

log = logging.getLogger("td_graph_plugin.hosts")


class DeliveryStopped(GraphStopped):
    """The host is stopping: the page was not (entirely) acknowledged and is not committed."""

    kind = "stopped"


@dataclass
class _Pending:
    last: int  # sequence number of the page's last line (for an empty batch: the newest queued)
    commit: Commit
    committed: Callable[[], None]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class AckSink:
    """Queue for the host, commits from the host's acknowledgements (see the module docstring).

    :param state: the state store commits go to.
    :param stop: the runtime's stop event; a waiting ``deliver`` gives up when it is set.
    :param max_queue: lines queued for the host at most (backpressure beyond).
    :param wait_for_commit: ``deliver`` returns once its page is committed (the collectors need
        this; unit tests switch it off to observe the pending list).
    :param poll: seconds between stop checks while blocked.
    """

    def __init__(
        self,
        state: StateStore,
        *,
        stop: threading.Event | None = None,
        max_queue: int = 1000,
        wait_for_commit: bool = True,
        poll: float = 0.1,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.state = state
        self.stop = stop or threading.Event()
        self.max_queue = max_queue
        self.wait_for_commit = wait_for_commit
        self.poll = poll
        self._queue: deque[tuple[int, bytes]] = deque()
        self._queue_cond = threading.Condition()
        self._produce = threading.Lock()  # one page at a time: a page's lines are contiguous
        self._lock = threading.Lock()  # pending commits, the acknowledged mark, closing
        self._pending: deque[_Pending] = deque()
        self._seq = 0  # last sequence number handed out
        self._acked = 0  # highest contiguous acknowledged sequence number
        self._out_of_order: set[int] = set()  # acknowledged above a gap
        self._closed = False
        self._wake = False
        self.failed: BaseException | None = None

    # --- collector side (Sink protocol) ------------------------------------------------
    def deliver(self, lines: Sequence[bytes], commit: Commit, committed: Callable[[], None]) -> None:
        with self._produce:
            self._check_usable()
            for line in lines:
                self._put(line)
            entry = _Pending(self._seq, commit, committed)
            with self._lock:
                if self._closed:
                    raise DeliveryStopped("td-graph is stopping; the page is collected again after the restart")
                self._pending.append(entry)
                self._drain_locked()  # an empty batch after acknowledged lines commits at once
        if self.wait_for_commit:
            self._wait(entry)

    def _check_usable(self) -> None:
        if self.failed is not None:
            raise self.failed
        if self._closed or self.stop.is_set():
            raise DeliveryStopped("td-graph is stopping; the page is collected again after the restart")

    def _put(self, line: bytes) -> None:
        with self._queue_cond:
            while len(self._queue) >= self.max_queue:
                self._check_usable()
                self._queue_cond.wait(self.poll)
            self._check_usable()
            self._seq += 1
            self._queue.append((self._seq, line))
            self._queue_cond.notify_all()

    def _wait(self, entry: _Pending) -> None:
        while not entry.done.wait(self.poll):
            if self._closed or self.stop.is_set():
                if entry.done.is_set():
                    break
                raise DeliveryStopped(
                    "td-graph is stopping before the host acknowledged the page; it is collected again after the restart"
                )
        if entry.error is not None:
            raise entry.error

    # --- host side -------------------------------------------------------------------
    def take(self, timeout: float = 0.0) -> tuple[int, bytes] | None:
        """The next (sequence number, line), waiting up to ``timeout`` seconds; None if none."""
        with self._queue_cond:
            if not self._queue and timeout > 0 and not self._wake:
                self._queue_cond.wait(timeout)
            self._wake = False
            if not self._queue:
                return None
            item = self._queue.popleft()
            self._queue_cond.notify_all()  # room for a blocked producer
            return item

    def wake(self) -> None:
        """Make a waiting ``take`` return now (the host is exiting)."""
        with self._queue_cond:
            self._wake = True
            self._queue_cond.notify_all()

    def ack(self, seq: int) -> None:
        """Every line up to and including ``seq`` is acknowledged (a consecutive tracker's report)."""
        with self._lock:
            if self._closed or seq <= self._acked:
                return
            if seq > self._seq:
                log.error("acknowledgement for record %d, but only %d were handed out; ignored", seq, self._seq)
                return
            self._acked = seq
            self._out_of_order = {s for s in self._out_of_order if s > seq}
            self._advance_locked()
            self._drain_locked()

    def ack_each(self, seqs: Iterable[int]) -> None:
        """These lines are acknowledged, in any order (a batched/instant tracker's report); only
        the contiguous prefix from the first unacknowledged line counts."""
        with self._lock:
            if self._closed:
                return
            for seq in seqs:
                if seq > self._seq or seq < 1:
                    log.error("acknowledgement for record %d, but only %d were handed out; ignored", seq, self._seq)
                elif seq > self._acked:
                    self._out_of_order.add(seq)
            if self._advance_locked():
                self._drain_locked()

    def _advance_locked(self) -> bool:
        moved = False
        while self._acked + 1 in self._out_of_order:
            self._acked += 1
            self._out_of_order.discard(self._acked)
            moved = True
        return moved

    def _drain_locked(self) -> None:
        while self._pending and self._pending[0].last <= self._acked and self.failed is None:
            entry = self._pending.popleft()
            try:
                self.state.commit(entry.commit)
            except BaseException as exc:  # StateError: nothing after it may commit either
                self.failed = exc
                entry.error = exc
                entry.done.set()
                log.error("%s/%s: cannot save the checkpoint: %s", entry.commit.tenant, entry.commit.source, exc)
                for rest in self._pending:
                    rest.error = exc
                    rest.done.set()
                self._pending.clear()
                self.stop.set()
                return
            entry.done.set()
            try:
                entry.committed()
            except Exception:  # metrics only; never lose the order over it
                log.exception("post-commit callback failed")

    # --- introspection and shutdown ------------------------------------------------------
    @property
    def acked(self) -> int:
        return self._acked

    @property
    def handed_out(self) -> int:
        """Sequence number of the last line queued."""
        return self._seq

    def pending(self) -> int:
        """Pages (and empty batches) waiting for acknowledgements."""
        with self._lock:
            return len(self._pending)

    def queued(self) -> int:
        with self._queue_cond:
            return len(self._queue)

    def close(self) -> None:
        """Stop: drop unacknowledged pages (not committed), wake every waiter, ignore later acks."""
        with self._lock:
            self._closed = True
            dropped = len(self._pending)
            for entry in self._pending:
                entry.error = DeliveryStopped("td-graph stopped before the host acknowledged the page")
                entry.done.set()
            self._pending.clear()
        with self._queue_cond:
            unsent = len(self._queue)
            self._queue.clear()
            self._queue_cond.notify_all()
        if dropped or unsent:
            log.info(
                "stopping with %d page(s) unacknowledged and %d record(s) not yet taken by the host: "
                "not committed, collected again after the restart",
                dropped,
                unsent,
            )
