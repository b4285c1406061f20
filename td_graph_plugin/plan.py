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
from typing import Any, Callable, Iterable

from .discovery import Discovery, discover
from .licensing import CAPABILITIES
from .spec import SourceSpec
from .status import DISABLED, FORBIDDEN, OK, UNLICENSED

__all__ = ["Verdict", "verdict_for", "missing_permissions", "TenantPlanner", "DISCOVERY_TTL"]

log = logging.getLogger(__name__)

DISCOVERY_TTL = 4 * 3600.0


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


class TenantPlanner:
    """Per-tenant discovery cache shared by the engine's workers."""

    def __init__(self, discover_fn: Callable[[Any], Discovery] | None = None, ttl: float = DISCOVERY_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._discover = discover_fn
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, Discovery]] = {}
        self._locks: dict[str, threading.Lock] = {}
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
            d = self._discover(client) if self._discover else discover(client, client.tenant.client_id, tokens=getattr(client, "tokens", None))
            self._cache[tenant_name] = (self.clock(), d)
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
