"""Tenant leases in PostgreSQL: one row per tenant (owner, epoch, expiry), times from ``now()``.

* ``claim`` locks free rows (never held, released, or expired) with ``FOR UPDATE SKIP LOCKED``
  — two replicas claiming at once never wait on each other and never get the same tenant —
  and bumps the epoch on every acquisition, so a previous holder's fence no longer matches.
* ``renew`` extends only the rows whose owner *and* epoch still match and whose lease has not
  expired: a replica that was frozen past its lease cannot revive it, even if nobody took the
  tenant meanwhile (it claims it again, at a new epoch).
* ``release`` frees rows at once (clean stop, rebalancing), so the next holder does not wait
  for the expiry and the hand-over is not counted as a takeover.

Every statement runs in its own short transaction; row locks, not session-level advisory
locks, so the leases behave the same behind a connection pooler (PgBouncer, transaction mode).
The checkpoint fence (state/postgres.py) re-reads the row ``FOR SHARE`` in the commit's own
transaction, which makes the epoch, not this module's bookkeeping, the final word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..state.pgschema import SCHEMA

__all__ = ["Acquired", "ensure_rows", "claim", "renew", "release", "valid_owners"]


@dataclass(frozen=True)
class Acquired:
    tenant: str
    epoch: int
    previous_owner: str | None  # the holder whose lease expired (None: the row was free)
    previous_epoch: int


def ensure_rows(conn: Any, tenants: Iterable[str]) -> None:
    """One lease row per configured tenant (idempotent)."""
    names = sorted(set(tenants))
    if not names:
        return
    with conn.transaction():
        conn.execute(
            f"INSERT INTO {SCHEMA}.leases (tenant) SELECT unnest(%s::text[]) ON CONFLICT (tenant) DO NOTHING",
            (names,),
        )


def valid_owners(conn: Any) -> dict[str, str]:
    """tenant -> holder, for every lease that has not expired (by the database's clock)."""
    with conn.transaction():
        rows = conn.execute(
            f"SELECT tenant, owner FROM {SCHEMA}.leases WHERE owner IS NOT NULL AND expires_at > now()"
        ).fetchall()
    return {t: o for t, o in rows}


def claim(conn: Any, replica: str, candidates: list[str], limit: int, ttl: float) -> list[Acquired]:
    """Take up to ``limit`` of ``candidates`` (in that order of preference) that are free now."""
    if limit <= 0 or not candidates:
        return []
    with conn.transaction():
        rows = conn.execute(
            f"""
            WITH free AS (
                SELECT tenant, owner, epoch FROM {SCHEMA}.leases
                WHERE tenant = ANY(%(c)s::text[])
                  AND (owner IS NULL OR expires_at IS NULL OR expires_at <= now())
                ORDER BY array_position(%(c)s::text[], tenant)
                LIMIT %(n)s
                FOR UPDATE SKIP LOCKED)
            UPDATE {SCHEMA}.leases AS l
               SET owner = %(me)s, epoch = l.epoch + 1,
                   expires_at = now() + make_interval(secs => %(ttl)s), acquired_at = now()
              FROM free
             WHERE l.tenant = free.tenant
            RETURNING l.tenant, l.epoch, free.owner, free.epoch
            """,
            {"c": candidates, "n": limit, "me": replica, "ttl": float(ttl)},
        ).fetchall()
    return [Acquired(t, e, o, pe) for t, e, o, pe in rows]


def renew(conn: Any, replica: str, held: Mapping[str, int], ttl: float) -> set[str]:
    """Extend the leases in ``held`` (tenant -> epoch) still ours at that epoch; returns them."""
    if not held:
        return set()
    names = sorted(held)
    with conn.transaction():
        rows = conn.execute(
            f"""
            UPDATE {SCHEMA}.leases AS l
               SET expires_at = now() + make_interval(secs => %(ttl)s)
              FROM (SELECT unnest(%(t)s::text[]) AS tenant, unnest(%(e)s::bigint[]) AS epoch) AS h
             WHERE l.tenant = h.tenant AND l.epoch = h.epoch AND l.owner = %(me)s AND l.expires_at > now()
            RETURNING l.tenant
            """,
            {"t": names, "e": [held[t] for t in names], "me": replica, "ttl": float(ttl)},
        ).fetchall()
    return {r[0] for r in rows}


def release(conn: Any, replica: str, held: Mapping[str, int]) -> set[str]:
    """Free the leases in ``held`` (tenant -> epoch) that are still ours; returns them."""
    if not held:
        return set()
    names = sorted(held)
    with conn.transaction():
        rows = conn.execute(
            f"""
            UPDATE {SCHEMA}.leases AS l SET owner = NULL, expires_at = NULL
              FROM (SELECT unnest(%(t)s::text[]) AS tenant, unnest(%(e)s::bigint[]) AS epoch) AS h
             WHERE l.tenant = h.tenant AND l.epoch = h.epoch AND l.owner = %(me)s
            RETURNING l.tenant
            """,
            {"t": names, "e": [held[t] for t in names], "me": replica},
        ).fetchall()
    return {r[0] for r in rows}
