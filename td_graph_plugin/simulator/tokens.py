"""Access tokens the fake login service issued: opaque strings mapped to (tenant, app, expiry, generation).

Apart from auth.py so the simulator's state (core.py) can hold the store without importing the
login service's handlers.  Tokens are never logged or recorded anywhere else.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Protocol

__all__ = ["IssuedToken", "TokenStore"]


class TenantIdentity(Protocol):
    """The tenant fields a token records (``SimTenant`` has them)."""

    tenant_id: str
    client_id: str
    token_generation: int


@dataclass(frozen=True)
class IssuedToken:
    tenant_id: str
    client_id: str
    expires_at: float
    generation: int


class TokenStore:
    """token -> IssuedToken.  Tokens are never logged or recorded anywhere else."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, tenant: TenantIdentity, lifetime: float, now: float) -> str:
        token = "sim." + secrets.token_urlsafe(48)
        with self._lock:
            if len(self._tokens) > 10000:
                self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > now}
            self._tokens[token] = IssuedToken(tenant.tenant_id, tenant.client_id, now + lifetime, tenant.token_generation)
        return token

    def resolve(self, token: str) -> IssuedToken | None:
        with self._lock:
            return self._tokens.get(token)
