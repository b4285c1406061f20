"""Which tenants this replica should claim or let go: a pure function of what the database says.

Inputs are one snapshot: every configured tenant, the live replicas (heartbeat within the
lease TTL), and the current holder of every tenant whose lease is still valid.  The answer
moves the cluster towards every live replica holding ``floor(n / r)`` or ``ceil(n / r)``
tenants, without thrashing:

* A replica never holds more than ``ceil(n / r)``: above it, it releases the excess.
* A replica releases below the ceiling only while no tenant is free and it holds at least two
  more tenants than the least loaded live replica, and then only half the difference — so two replicas never hand
  the same tenant back and forth, and a balanced cluster (max - min <= 1) never moves a lease.
* Free tenants (never held, released, or whose holder's lease expired) are claimed only by
  the least loaded replicas, up to the ceiling: a joining replica gets the released tenants,
  the replica that released them never takes them back, and a free tenant is always claimed
  by someone (the least loaded replica is below the ceiling whenever a tenant is free).

Preferences are rendezvous hashes of (replica, tenant): deterministic, and two replicas
claiming at the same moment start with different tenants (``SKIP LOCKED`` settles the rest).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

__all__ = ["Plan", "plan", "preference", "target"]


def preference(replica: str, tenant: str) -> int:
    """Rendezvous score: the higher, the more ``replica`` wants ``tenant``."""
    return int.from_bytes(hashlib.sha256(f"{replica}\0{tenant}".encode()).digest()[:8], "big")


def target(tenants: int, replicas: int) -> int:
    """The most tenants one replica may hold: ``ceil(tenants / replicas)``."""
    return math.ceil(tenants / max(1, replicas))


@dataclass(frozen=True)
class Plan:
    release: list[str] = field(default_factory=list)  # held tenants to let go, least wanted first
    claim: list[str] = field(default_factory=list)  # free tenants to try, most wanted first
    claim_limit: int = 0  # how many of ``claim`` to take at most


def plan(
    me: str,
    tenants: Iterable[str],
    live: Iterable[str],
    owners: Mapping[str, str],
) -> Plan:
    """What ``me`` should do now.

    ``owners`` maps a tenant to its holder for every lease still valid (unexpired); tenants
    absent from it are free.  ``live`` should include ``me`` (it is added if not).
    """
    tenants = sorted(set(tenants))
    replicas = sorted(set(live) | {me})
    n, r = len(tenants), len(replicas)
    if n == 0:
        return Plan()
    ceiling = target(n, r)
    counts = {x: 0 for x in replicas}
    for t in tenants:
        holder = owners.get(t)
        if holder in counts:
            counts[holder] += 1
    mine = sorted((t for t in tenants if owners.get(t) == me), key=lambda t: preference(me, t))
    least = min(counts.values())
    held = len(mine)

    free = [t for t in tenants if t not in owners]
    release: list[str] = []
    if held > ceiling:
        release = mine[: held - ceiling]
    elif held - least >= 2 and not free:  # free tenants go to the least loaded first
        release = mine[: (held - least) // 2]
    if release:
        return Plan(release=release)
    if not free or held >= ceiling or held > least:  # > least: it might take back what it just gave
        return Plan()
    free.sort(key=lambda t: preference(me, t), reverse=True)
    return Plan(claim=free, claim_limit=min(len(free), ceiling - held))
