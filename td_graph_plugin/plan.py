"""Which sources a tenant will run, and why not: licence, permission, cloud.

The verdict per source is advisory for Graph (our plan-name table may miss a SKU), so the
engine never hammers a skipped source but does probe it with one request per re-check period;
``doctor`` prints the same plan.  Discovery is cached per tenant and refreshed every few hours
or on demand (``invalidate``), e.g. when a source answers with a licence error after all.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

from .discovery import Discovery, discover, roles_fingerprint
from .errors import TdGraphError
from .licensing import CAPABILITIES
from .spec import SourceSpec
from .timeutil import fresh
from .status import DISABLED, FORBIDDEN, OK, UNLICENSED

__all__ = ["Verdict", "verdict_for", "missing_permissions", "TenantPlanner", "DISCOVERY_TTL", "DiscoveryStore"]

log = logging.getLogger(__name__)

DISCOVERY_TTL = 4 * 3600.0
DISCOVERY_KIND = "discovery"  # the state's tenant_cache kind


@dataclass(frozen=True)
class Verdict:
    status: str  # OK | UNLICENSED | FORBIDDEN | DISABLED (status.py)
    reason: str = ""

    @property
    def runs(self) -> bool:
        return self.status == OK


def missing_permissions(spec: SourceSpec, granted: Iterable[str]) -> list[str]:
    """Requirements (``A|B`` = either) of ``spec`` that ``granted`` does not satisfy."""
    have = set(granted)
    return [req for req in spec.permissions if not any(alt in have for alt in req.split("|"))]


def verdict_for(spec: SourceSpec, cloud: str, d: Discovery | None) -> Verdict:
    if cloud not in spec.clouds:
        see = f" (see {spec.doc})" if spec.doc else ""
        return Verdict(DISABLED, f"not offered in the {cloud} cloud{see}")
    if not spec.reads_graph:
        return Verdict(OK, "reads a local store, not Graph")
    if d is not None and d.permissions is not None:
        missing = missing_permissions(spec, d.permissions)
        if missing:
            names = ", ".join(m.split("|")[0] for m in missing)
            return Verdict(FORBIDDEN, f"permission {names} not granted")
    if d is not None and d.capabilities is not None and spec.licence and spec.licence not in d.capabilities:
        label = CAPABILITIES.get(spec.licence, spec.licence)
        return Verdict(UNLICENSED, f"licence {label} not found in subscribedSkus")
    return Verdict(OK)


class DiscoveryStore(Protocol):
    """The state's per-tenant cache (``StateBackend.cached`` / ``set_cached``)."""

    def cached(self, tenant: str, kind: str) -> tuple[float, str] | None: ...
    def set_cached(self, tenant: str, kind: str, at: float, payload: str) -> None: ...


class TenantPlanner:
    """Per-tenant discovery cache shared by the engine's workers.

    With a ``store``, a complete discovery is also kept in the state, so a new process (a
    ``run --once`` every few minutes from cron, a restarted service, a replica taking a tenant
    over) reuses it for the rest of its TTL instead of sending four more requests per tenant,
    as a long-running collector does from memory.  It is reused only while the tenant's new
    token carries the same ``roles`` as the token of the discovery that stored it, so a grant
    or a revoked permission is seen at the next start (tokens that are not readable JWTs give
    no fingerprint: then the TTL alone applies, as in memory).  A discovery with errors is
    never stored, and ``invalidate`` (a source answered with a licence error) stops the reuse.
    """

    def __init__(
        self,
        discover_fn: Callable[[Any], Discovery] | None = None,
        ttl: float = DISCOVERY_TTL,
        clock: Callable[[], float] = time.monotonic,
        *,
        store: DiscoveryStore | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._discover = discover_fn
        self.ttl = ttl
        self.clock = clock
        self.wall = wall
        self.store = store
        self._cache: dict[str, tuple[float, Discovery]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._fresh_only: set[str] = set()  # invalidated: the stored copy is stale too
        self._lock = threading.Lock()

    def discovery(self, tenant_name: str, client: Any) -> Discovery:
        with self._lock:
            lock = self._locks.setdefault(tenant_name, threading.Lock())
        with lock:
            hit = self._cache.get(tenant_name)
            if hit is not None:
                # A discovery that partly failed (network, permissions) is retried sooner.
                ttl = self.ttl if not hit[1].errors else min(self.ttl, 300.0)
                if self.clock() - hit[0] < ttl:
                    return hit[1]
            roles = self._roles(client) if self.store is not None else None
            stored = self._stored(tenant_name, roles)
            if stored is not None:
                # Expires in memory when the stored copy would have: TTL from when it was read.
                self._cache[tenant_name] = (self.clock() - max(0.0, self.wall() - stored.at), stored)
                return stored
            d = self._discover(client) if self._discover else discover(client, client.tenant.client_id, tokens=getattr(client, "tokens", None))
            self._cache[tenant_name] = (self.clock(), d)
            self._store(tenant_name, d, roles)
            log.info(
                "%s: licences %s; permissions %s",
                tenant_name,
                ", ".join(sorted(d.capabilities)) if d.capabilities is not None else "unknown",
                f"{len(d.permissions)} granted (from {d.permissions_from})" if d.permissions is not None else "unknown",
            )
            return d

    def invalidate(self, tenant_name: str) -> None:
        with self._lock:
            self._cache.pop(tenant_name, None)
            self._fresh_only.add(tenant_name)

    # --- the stored copy ------------------------------------------------------------------
    @staticmethod
    def _roles(client: Any) -> str | None:
        """The fingerprint of the current token's roles ("" when there is no token to read)."""
        tokens = getattr(client, "tokens", None)
        if tokens is None:
            return ""
        try:
            return roles_fingerprint(tokens.token())
        except TdGraphError:
            return ""  # no token: nothing stored is trusted; discovery reports the failure

    def _stored(self, tenant_name: str, roles: str | None) -> Discovery | None:
        if self.store is None or roles == "" or tenant_name in self._fresh_only:
            return None
        try:
            row = self.store.cached(tenant_name, DISCOVERY_KIND)
        except TdGraphError as exc:
            log.debug("%s: stored discovery unreadable (%s); discovering", tenant_name, exc)
            return None
        parsed = Discovery.from_json(row[1]) if row is not None else None
        if parsed is None:
            return None
        d, stored_roles = parsed
        now = self.wall()
        age = now - d.at
        if stored_roles != roles or not fresh(d.at, now, self.ttl):
            return None
        log.debug("%s: licences and permissions as discovered %.0f s ago", tenant_name, age)
        return d

    def _store(self, tenant_name: str, d: Discovery, roles: str | None) -> None:
        if self.store is None or roles == "" or d.errors:
            return
        try:
            self.store.set_cached(tenant_name, DISCOVERY_KIND, d.at, d.to_json(roles))
        except TdGraphError as exc:
            log.debug("%s: cannot store the discovery (%s)", tenant_name, exc)
            return
        self._fresh_only.discard(tenant_name)
