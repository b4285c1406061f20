"""What ``td-graph check``/``doctor`` learn from the cluster's database without changing it:
reachable, the schema version, the server's version and its clock against this machine's.

Leases are judged by the database's clock alone (``expires_at > now()`` on the server), so a
skewed replica cannot keep or steal a lease; what a skew does distort is every time a replica
writes from its own clock (``last_success``, ``since``, the lag ``status`` shows) and any
reasoning a replica does about a lease's expiry on its own clock.  Hence: a warning beyond
``SKEW_WARN`` seconds, a failure beyond ``SKEW_FAIL`` (fix NTP on the host).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from ..errors import StateError
from .pgschema import PG_SCHEMA_VERSION, describe_url, mask, schema_version
from .pgconnect import connect_once

__all__ = ["DatabaseProbe", "probe_database", "SKEW_WARN", "SKEW_FAIL"]

SKEW_WARN = 2.0
SKEW_FAIL = 10.0


@dataclass(frozen=True)
class DatabaseProbe:
    where: str  # the database, described without its password
    server_version: str
    schema_version: int | None  # None: td-graph never wrote this database
    newest_known: int  # the schema version this td-graph writes
    skew: float  # database clock minus this machine's, seconds

    @property
    def newer(self) -> bool:
        return self.schema_version is not None and self.schema_version > self.newest_known


def probe_database(url: str, timeout: float = 5.0) -> DatabaseProbe:
    """Read-only: raises ``StateError`` (no password in it) when the database is unreachable."""
    where = describe_url(url)
    conn = connect_once(url, "td-graph:check", timeout=timeout)
    try:
        cur = conn.cursor()
        version = schema_version(cur)
        server = str(cur.execute("SHOW server_version").fetchone()[0])
        skews = []
        for _ in range(3):  # the best of three round trips: the network delay is not skew
            before = time.time()
            db_now = float(cur.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])
            after = time.time()
            skews.append((after - before, db_now - (before + after) / 2))
        skew = min(skews)[1]
    except psycopg.Error as exc:
        raise StateError(f"cannot read {where}: {mask(str(exc), url)}") from None
    finally:
        conn.close()
    return DatabaseProbe(where, server, version, PG_SCHEMA_VERSION, skew)
