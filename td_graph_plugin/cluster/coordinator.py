"""One replica's view of the cluster: heartbeat, renew, rebalance — every ``lease_ttl / 3``.

The engine asks ``owns(tenant)`` before every run; the PostgreSQL state asks
``fence_for(tenant)`` on every checkpoint commit and re-checks the lease row in the commit's
own transaction.  ``fence_for`` only answers while the lease is believed valid by the local
monotonic clock (renewed less than ``lease_ttl - margin`` ago, measured from *before* the
renewing statement was sent, so it always ends before the database's expiry).  A replica
frozen by SIGSTOP, a GC pause or a partition therefore stops committing the moment it wakes,
before it has even talked to the database; its first renew then finds the epoch changed and
drops the tenant for good.

A tenant the balancer gives away is first *drained*: ``owns`` turns false (no new run
starts) while in-flight pages still commit under the lease; it is released once no run of it
is active (``busy``) or after one TTL, whichever comes first.  Released leases are freed at
once, so the next holder does not wait for the expiry.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..metrics import Metrics
from ..state.backend import Fence
from ..state.pgschema import mask, session_options
from . import balance, leases, membership

__all__ = ["Coordinator"]

log = logging.getLogger("td_graph_plugin.cluster")


@dataclass
class _Lease:
    epoch: int
    renewed: float  # local monotonic time the last successful renew/claim was *sent*


class Coordinator:
    def __init__(
        self,
        url: str,
        replica: str,
        tenants: Iterable[str],
        *,
        lease_ttl: float = 30.0,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        busy: Callable[[str], bool] | None = None,
        on_lost: Callable[[str], None] | None = None,
        on_gained: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        self.replica = replica
        self.tenants = sorted(set(tenants))
        self.ttl = float(lease_ttl)
        self.interval = self.ttl / 3
        self.margin = self.ttl / 4
        self.metrics = metrics
        self.clock = clock
        self.busy = busy
        self.on_lost = on_lost
        self.on_gained = on_gained
        self._held: dict[str, _Lease] = {}
        self._draining: dict[str, float] = {}  # tenant -> local time the drain began
        self._live: list[str] = [replica]
        self._lock = threading.RLock()
        self._conn: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    # --- what the engine and the state ask ------------------------------------------------
    def fence_for(self, tenant: str) -> Fence | None:
        with self._lock:
            lease = self._held.get(tenant)
            if lease is None or self.clock() >= lease.renewed + self.ttl - self.margin:
                return None
            return Fence(tenant, self.replica, lease.epoch)

    def owns(self, tenant: str) -> bool:
        with self._lock:
            return tenant not in self._draining and self.fence_for(tenant) is not None

    def owned(self) -> set[str]:
        with self._lock:
            return {t for t in self._held if self.owns(t)}

    def epochs(self) -> dict[str, int]:
        with self._lock:
            return {t: lease.epoch for t, lease in self._held.items()}

    def share(self) -> float:
        """This replica's share of an app-wide budget: 1 / live replicas."""
        with self._lock:
            return 1.0 / max(1, len(self._live))

    @property
    def live(self) -> list[str]:
        with self._lock:
            return list(self._live)

    # --- the loop -------------------------------------------------------------------------
    def start(self) -> "Coordinator":
        """First tick now (the run starts with its share), then a tick every ``ttl / 3``."""
        self.tick()
        self._thread = threading.Thread(target=self._loop, name="td-graph-cluster", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def stop(self, *, release: bool = True) -> None:
        """Stop ticking; with ``release`` free every lease at once and leave the cluster."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl)
            self._thread = None
        if release:
            with self._lock:
                held = {t: lease.epoch for t, lease in self._held.items()}
            try:
                conn = self._connection()
                freed = leases.release(conn, self.replica, held)
                membership.leave(conn, self.replica)
                log.info("released %d tenant leases; replica %s left the cluster", len(freed), self.replica)
            except Exception as exc:  # the leases expire by themselves after the TTL
                log.warning("could not release the leases (they expire after %gs): %s", self.ttl, self._masked(exc))
            with self._lock:
                self._held.clear()
                self._draining.clear()
        self._close()
        self._publish()

    def tick(self) -> None:
        """Heartbeat, renew, release drained tenants, rebalance. Never raises."""
        started = self.clock()
        try:
            conn = self._connection()
            live = membership.heartbeat(conn, self.replica, self.ttl)
            with self._lock:
                self._live = live
                held = {t: lease.epoch for t, lease in self._held.items()}
            kept = leases.renew(conn, self.replica, held, self.ttl)
            for tenant in sorted(set(held) - kept):
                self._drop(tenant, held[tenant], "its lease was taken over or expired (epoch changed)")
            with self._lock:
                for tenant in kept:
                    lease = self._held.get(tenant)
                    if lease is not None and lease.epoch == held[tenant]:
                        lease.renewed = started
            self._release_drained(conn)
            owners = leases.valid_owners(conn)
            plan = balance.plan(self.replica, self.tenants, live, owners)
            self._begin_drain(plan.release)
            if plan.claim_limit:
                self._claim(conn, plan.claim, plan.claim_limit)
            if self._failing:
                log.info("cluster database reachable again")
                self._failing = False
        except Exception as exc:  # psycopg errors, a restarting server: next tick reconnects
            if not self._failing:
                log.warning(
                    "cluster tick failed (leases stay valid for up to %gs without a renewal): %s",
                    self.ttl - self.margin, self._masked(exc),
                )
            self._failing = True
            self._close()
        finally:
            self._expire_local()
            self._publish()

    # --- steps ----------------------------------------------------------------------------
    def _claim(self, conn: Any, candidates: list[str], limit: int) -> None:
        leases.ensure_rows(conn, candidates)
        sent = self.clock()
        for got in leases.claim(conn, self.replica, candidates, limit, self.ttl):
            with self._lock:
                self._held[got.tenant] = _Lease(got.epoch, sent)
                self._draining.pop(got.tenant, None)
            if got.previous_owner is not None and got.previous_owner != self.replica:
                log.warning(
                    "lease acquired: tenant %s epoch %d, taken over from replica %s (its lease at epoch %d expired)",
                    got.tenant, got.epoch, got.previous_owner, got.previous_epoch,
                )
                if self.metrics is not None:
                    self.metrics.lease_takeovers.labels(self.replica).inc()
            else:
                log.info("lease acquired: tenant %s epoch %d", got.tenant, got.epoch)
            if self.on_gained is not None:
                self.on_gained(got.tenant)

    def _begin_drain(self, tenants: list[str]) -> None:
        now = self.clock()
        with self._lock:
            for tenant in tenants:
                if tenant in self._held and tenant not in self._draining:
                    self._draining[tenant] = now
                    log.info("rebalancing: tenant %s is handed over once its running pages commit", tenant)

    def _release_drained(self, conn: Any) -> None:
        now = self.clock()
        with self._lock:
            ready = {
                t: self._held[t].epoch
                for t, since in self._draining.items()
                if t in self._held and (now - since >= self.ttl or self.busy is None or not self.busy(t))
            }
        if not ready:
            return
        freed = leases.release(conn, self.replica, ready)
        with self._lock:
            for tenant in ready:
                self._held.pop(tenant, None)
                self._draining.pop(tenant, None)
        for tenant in sorted(freed):
            log.info("lease released: tenant %s epoch %d (rebalancing)", tenant, ready[tenant])

    def _drop(self, tenant: str, epoch: int, why: str) -> None:
        with self._lock:
            lease = self._held.get(tenant)
            if lease is None or lease.epoch != epoch:
                return
            del self._held[tenant]
            self._draining.pop(tenant, None)
        log.warning("lease lost: tenant %s epoch %d: %s; dropped", tenant, epoch, why)
        if self.on_lost is not None:
            self.on_lost(tenant)

    def _expire_local(self) -> None:
        now = self.clock()
        with self._lock:
            gone = [(t, l.epoch) for t, l in self._held.items() if now >= l.renewed + self.ttl - self.margin]
        for tenant, epoch in gone:
            self._drop(tenant, epoch, f"not renewed for {self.ttl - self.margin:g}s (database unreachable or this replica was paused)")

    def _publish(self) -> None:
        if self.metrics is None:
            return
        with self._lock:
            self.metrics.cluster_replicas.set(len(self._live))
            self.metrics.tenants_owned.labels(self.replica).set(len(self._held))

    # --- the connection -------------------------------------------------------------------
    def _connection(self) -> Any:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        import psycopg

        timeout_ms = max(1000, int(self.ttl * 1000 / 3))
        self._conn = psycopg.connect(
            self.url,
            autocommit=True,  # each step opens its own short transaction
            application_name=f"td-graph:{self.replica}:leases",  # the state's own pool is td-graph:<replica>
            connect_timeout=max(2, int(self.ttl / 3)),
            options=f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms} {session_options(self.ttl)}",
        )
        return self._conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _masked(self, exc: BaseException) -> str:
        return mask(str(exc).strip() or type(exc).__name__, self.url)
