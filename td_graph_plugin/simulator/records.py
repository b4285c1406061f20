"""``RequestRecord``: one request as the simulator saw it (``GraphSimulator.requests``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RequestRecord"]


@dataclass(frozen=True)
class RequestRecord:
    """One request as the simulator saw it.  Never holds a token, secret or body."""

    method: str
    path: str
    query: dict[str, str]
    status: int  # 0 when no response was sent (reset, stall)
    tenant_id: str | None
    has_authorization: bool
    authorization_scheme: str | None
    time: float
    fault: str | None = None  # the injected fault that mangled/dropped this answer (reset, truncated, ...)
