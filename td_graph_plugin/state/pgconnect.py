"""One PostgreSQL connection outside the pool (``check``, ``status``, ``state migrate``, the
store's twin probe), and which errors mean "the connection went away, try a new one"."""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

from ..errors import StateError
from .pgschema import describe_url, mask

__all__ = ["connect_once", "RETRYABLE"]

# Errors that mean "the connection (or server) went away", worth a new connection: psycopg's
# OperationalError covers a dropped socket, AdminShutdown (pg_terminate_backend, server stop),
# serialization failures and deadlocks; InterfaceError a connection already closed.
RETRYABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


def connect_once(url: str, application_name: str, timeout: float = 10.0) -> psycopg.Connection:
    """One autocommit connection, or a ``StateError`` naming the server (never the password)."""
    try:
        return psycopg.connect(
            url, autocommit=True, application_name=application_name, connect_timeout=max(2, int(timeout))
        )
    except psycopg.Error as exc:
        detail = mask(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
        raise StateError(
            f"cannot reach the state database ({describe_url(url)}): {detail}; check state.url, "
            "that the server runs and accepts this host, and the credentials"
        ) from None
    except Exception as exc:  # a malformed URL (psycopg.ProgrammingError is an Error too)
        raise StateError(f"state.url is not a usable PostgreSQL URL: {mask(str(exc), url)}") from None
