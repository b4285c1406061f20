"""A collector process (``td-graph run``, the syslog-ng host) as one replica of a cluster
(``state.url``): the coordinator that holds this replica's tenant leases, and sinks that
never let a lost lease latch the output."""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

from ..catalogue import Catalogue
from ..cluster import Coordinator
from ..collector import SyncSink
from ..collector.recovery import make_adopter
from ..collector.sink import groups_commits
from ..config import Config
from ..hosts.ack_sink import AckSink
from ..errors import LeaseLost
from ..metrics import Metrics
from ..outputs import output_from_config

__all__ = ["cluster_coordinator", "FencedSink", "FencedAckSink", "Replica"]

log = logging.getLogger("td_graph_plugin.cli")


def cluster_coordinator(config: Config, tenants: list[str], metrics: Metrics) -> Coordinator | None:
    """With ``state.url``: this replica's coordinator (not started), its name in the User-Agent."""
    if not config.state_url or config.cluster is None:
        return None
    from ..graph.http import set_replica

    set_replica(config.cluster.replica)
    return Coordinator(
        str(config.state_url), config.cluster.replica, tenants, lease_ttl=config.cluster.lease_ttl, metrics=metrics
    )


class FencedSink(SyncSink):
    """The file/stdout sink of a cluster replica.  A page of a tenant whose lease this replica
    no longer holds is not written at all when the loss is already known (the local lease
    clock ran out: a frozen replica that wakes); when only the commit finds out (the database
    says another replica holds the epoch), the page was written but not committed — the one
    duplicate a takeover may cause.  Either way ``LeaseLost`` ends that job only: it is not an
    output failure, so the sink does not latch (later pages commit past the page, and the new
    owner collects it again from the last committed checkpoint).  The state is wrapped, not
    the sink's internals, so this holds whatever way ``SyncSink`` orders writes and commits."""

    def __init__(self, output: Any, state: Any, adopt: Any, fence: Callable[[str], Any]) -> None:
        self._catcher = _LeaseLossCatcher(state)
        super().__init__(output, self._catcher, adopt=adopt)  # type: ignore[arg-type]
        self.fence = fence

    @classmethod
    def for_config(cls, config: Config, catalogue: Catalogue, state: Any, fence: Callable[[str], Any]) -> "FencedSink":
        return cls(output_from_config(config), state, make_adopter(config, catalogue), fence)

    def deliver(self, lines: Sequence[bytes], commit: Any, committed: Callable[[], None]) -> None:
        _refuse_unfenced(self.fence, commit, self._catcher)
        super().deliver(lines, commit, committed)
        self._catcher.raise_if_lost(commit)


def _refuse_unfenced(fence: Callable[[str], Any], commit: Any, state: Any) -> None:
    if fence(commit.tenant) is None:
        raise LeaseLost(commit.tenant, getattr(state, "replica", "?"), None)


class _LeaseLossCatcher:
    """The state as the sinks see it: a commit refused for a lost lease is remembered for the
    page's ``deliver`` to raise once the sink is done with it, instead of latching the sink
    like a broken database (one page per commit object, so ``id`` is a safe key while the
    page's ``deliver`` is running)."""

    def __init__(self, state: Any) -> None:
        self._state = state
        self.lost: dict[int, LeaseLost] = {}
        if groups_commits(state):  # the sink groups commits only if the store can
            self.commit_many = self._commit_many

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)

    def commit(self, c: Any, **kw: Any) -> None:
        try:
            self._state.commit(c, **kw)
        except LeaseLost as exc:
            self.lost[id(c)] = exc

    def _commit_many(self, commits: Sequence[tuple[Any, Any]]) -> list[None]:
        """Group commit: a page refused for a lost lease fails alone (the store wrote the
        batch's other pages); it is remembered for its own ``deliver``, never a sink error."""
        results = self._state.commit_many(commits)
        for (c, _), result in zip(commits, results):
            if isinstance(result, LeaseLost):
                self.lost[id(c)] = result
            elif result is not None:
                raise result
        return [None] * len(commits)

    def raise_if_lost(self, c: Any) -> None:
        lost = self.lost.pop(id(c), None)
        if lost is not None:
            raise lost


class FencedAckSink(AckSink):
    """syslog-ng's acknowledging sink for a cluster replica: a page of a tenant whose lease is
    known lost is not handed to syslog-ng; a page whose commit finds the lease gone (it was
    already handed over: the in-flight duplicate of a takeover) ends its job with ``LeaseLost``
    and the sink goes on with the other tenants."""

    def __init__(self, state: Any, *, fence: Callable[[str], Any], **kw: Any) -> None:
        self._catcher = _LeaseLossCatcher(state)
        super().__init__(self._catcher, **kw)  # type: ignore[arg-type]
        self.fence = fence

    def deliver(self, lines: Sequence[bytes], commit: Any, committed: Callable[[], None]) -> None:
        _refuse_unfenced(self.fence, commit, self._catcher)
        super().deliver(lines, commit, committed)
        self._catcher.raise_if_lost(commit)


class Replica:
    """The cluster side of one collector process (``run`` or the syslog-ng host); every method
    is a no-op with SQLite state, so callers need no ``if``."""

    def __init__(self, config: Config, tenants: list[str] | None, metrics: Metrics) -> None:
        names = [t.name for t in config.select_tenants(tenants)]
        self.metrics = metrics
        self.coordinator = cluster_coordinator(config, names, metrics)

    def fence(self) -> Callable[[str], Any] | None:
        return self.coordinator.fence_for if self.coordinator is not None else None

    def join(self, runtime: Any) -> Callable[[str], bool] | None:
        """Fence the state's commits, claim this replica's share; returns ``owns`` (or None)."""
        c = self.coordinator
        if c is None:
            return None
        runtime.state.set_fencing(c.fence_for)
        c.busy = runtime.engine.busy
        # Graph's per-app limits: this replica spends 1 / live replicas of them.
        runtime.engine.app_budgets.set_share(c.share)
        c.start()
        log.info("replica %s of %d: holds %d of %d tenants", c.replica, len(c.live), len(c.owned()), len(c.tenants))
        return c.owns

    def leave(self, *, release: bool = True) -> None:
        if self.coordinator is not None:
            self.coordinator.stop(release=release)
