"""Replica heartbeats: a row per replica, live while its heartbeat is within the lease TTL.

The database's clock decides (``now()``), so replicas with skewed clocks agree on who is
live.  A replica's row is deleted on a clean stop; rows of replicas gone for ten TTLs are
cleaned by whoever heartbeats next (``td-graph status`` and the metrics only show live ones).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from ..state.pgschema import SCHEMA

__all__ = ["heartbeat", "live_replicas", "leave"]

STALE_TTLS = 10  # a replica row silent for this many TTLs is removed


def heartbeat(conn: Any, replica: str, ttl: float) -> list[str]:
    """Record that ``replica`` is alive; returns the live replicas (sorted, ``replica`` included)."""
    with conn.transaction():
        conn.execute(
            f"""
            INSERT INTO {SCHEMA}.replicas (replica, host, pid, started_at, heartbeat_at)
            VALUES (%s, %s, %s, now(), now())
            ON CONFLICT (replica) DO UPDATE
               SET heartbeat_at = now(), host = EXCLUDED.host, pid = EXCLUDED.pid
            """,
            (replica, socket.gethostname(), os.getpid()),
        )
        conn.execute(
            f"DELETE FROM {SCHEMA}.replicas WHERE heartbeat_at < now() - make_interval(secs => %s)",
            (float(ttl) * STALE_TTLS,),
        )
        rows = conn.execute(
            f"SELECT replica FROM {SCHEMA}.replicas WHERE heartbeat_at > now() - make_interval(secs => %s) "
            "ORDER BY replica",
            (float(ttl),),
        ).fetchall()
    live = [r[0] for r in rows]
    if replica not in live:
        live = sorted(live + [replica])
    return live


def live_replicas(conn: Any, ttl: float) -> list[str]:
    with conn.transaction():
        rows = conn.execute(
            f"SELECT replica FROM {SCHEMA}.replicas WHERE heartbeat_at > now() - make_interval(secs => %s) "
            "ORDER BY replica",
            (float(ttl),),
        ).fetchall()
    return [r[0] for r in rows]


def leave(conn: Any, replica: str) -> None:
    """A clean stop: the replica stops counting at once (the others rebalance on their next tick)."""
    with conn.transaction():
        conn.execute(f"DELETE FROM {SCHEMA}.replicas WHERE replica = %s", (replica,))
