"""Access tokens the fake login service issued, mapped to (tenant, app, expiry, generation).

Shaped like Entra's app-only tokens for Graph (three dot-separated parts, the middle one a
base64url JSON payload with the app's granted ``roles``;
https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference#payload-claims),
so a client that notices grant changes from a new token's roles can be tested.  The first part
is the literal ``sim`` (not a JWT header: nothing verifies these), which leak checks look for.

Apart from auth.py so the simulator's state (core.py) can hold the store without importing the
login service's handlers.  Tokens are never logged or recorded anywhere else.
"""

from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import dataclass
from typing import Iterable, Protocol

import orjson

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

    def issue(self, tenant: TenantIdentity, lifetime: float, now: float, roles: Iterable[str] = ()) -> str:
        claims = {"aud": "https://graph.microsoft.com", "tid": tenant.tenant_id, "appid": tenant.client_id,
                  "iat": int(now), "exp": int(now + lifetime), "roles": sorted(roles)}
        payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
        token = f"sim.{payload}.{secrets.token_urlsafe(48)}"
        with self._lock:
            if len(self._tokens) > 10000:
                self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > now}
            self._tokens[token] = IssuedToken(tenant.tenant_id, tenant.client_id, now + lifetime, tenant.token_generation)
        return token

    def resolve(self, token: str) -> IssuedToken | None:
        with self._lock:
            return self._tokens.get(token)
