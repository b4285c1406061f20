"""Microsoft Graph access: clouds, sessions, tokens, pacing, error classification, paging."""

from __future__ import annotations

from .auth import TokenProvider
from .classify import classify, parse_retry_after
from .client import GraphClient, Reply
from .clouds import CLOUDS, Cloud, Endpoints, resolve_endpoints
from .http import build_session
from .paging import Page
from .ratelimit import DEFAULT_BUDGETS, Budget, RateLimiter

__all__ = [
    "Cloud",
    "CLOUDS",
    "Endpoints",
    "resolve_endpoints",
    "build_session",
    "TokenProvider",
    "RateLimiter",
    "Budget",
    "DEFAULT_BUDGETS",
    "classify",
    "parse_retry_after",
    "GraphClient",
    "Reply",
    "Page",
]
