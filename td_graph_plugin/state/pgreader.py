"""Read-only view of the PostgreSQL state for ``td-graph status``: never takes a lease, never
writes (a read-only transaction: the server refuses any write), never migrates."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from ..errors import StateError
from .pgschema import SCHEMA as S
from .pgschema import PG_SCHEMA_VERSION, describe_url, mask, newer_schema_error, schema_version
from .pgconnect import connect_once
from .snapshot import SourceRow, StateSnapshot

__all__ = ["read_pg_state"]


def read_pg_state(url: str) -> StateSnapshot | None:
    """What the cluster's state says per tenant x source, with each tenant's lease owner; None
    when td-graph never wrote this database."""
    where = describe_url(url)
    conn = connect_once(url, "td-graph:status")
    try:
        conn.autocommit = False
        conn.read_only = True
        with conn.transaction():
            cur = conn.cursor()
            version = schema_version(cur)
            if version is None:
                return None
            if version > PG_SCHEMA_VERSION:
                raise newer_schema_error(where, version)
            rows: dict[tuple[str, str], dict[str, Any]] = {}
            for tenant, source, cursor, updated, success, newest in cur.execute(
                f"SELECT tenant, source, cursor, updated_at, last_success, newest_event FROM {S}.checkpoints"
            ).fetchall():
                rows.setdefault((tenant, source), {}).update(
                    cursor=_json(cursor), updated_at=updated, last_success=success, newest_event=newest or None
                )
            for tenant, source, state, reason, since, next_check in cur.execute(
                f"SELECT tenant, source, state, reason, since, next_check FROM {S}.source_status"
            ).fetchall():
                rows.setdefault((tenant, source), {}).update(
                    state=state, reason=reason, since=since, next_check=next_check
                )
            for tenant, source, shape in cur.execute(f"SELECT tenant, source, shape FROM {S}.query_shapes").fetchall():
                rows.setdefault((tenant, source), {})["query_shape"] = shape
            # an expired lease has no owner: the tenant waits for a replica to take it over
            owners = {
                t: o for t, o in cur.execute(
                    f"SELECT tenant, owner FROM {S}.leases WHERE owner IS NOT NULL AND expires_at > now()"
                ).fetchall()
            }
    except psycopg.Error as exc:
        raise StateError(f"cannot read the state in {where}: {mask(str(exc), url)}") from None
    finally:
        conn.close()
    return StateSnapshot(
        where,
        {k: SourceRow(k[0], k[1], **v, replica=owners.get(k[0])) for k, v in rows.items()},
        owners=owners,
    )


def _json(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
