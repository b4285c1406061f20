"""A tenant's OpenID configuration, kept across processes.

MSAL reads ``{login}/{tenant}/v2.0/.well-known/openid-configuration`` when it builds a client
application ("tenant discovery") and keeps successful discovery GETs for 24 hours, in memory
only (msal 1.39 ``throttled_http_client.py``: ``self.get = IndividualCache(...,
expires_in=... 3600*24 if 200 <= result.status_code < 300 else 0)``).  A fresh
``td-graph run --once`` per poll re-read it for every tenant: one request of the six a tenant
costs.  Here the document is stored in the state (``tenant_cache`` kind ``openid``) and served
to MSAL for the same 24 hours.  The token endpoint it names is still checked against the login
endpoint's origin after MSAL reads it (``TokenProvider._check_token_endpoint``), cached or not.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Protocol

from ..timeutil import fresh
from .clouds import link_problem

__all__ = ["DocCache", "TenantDocCache", "CachedOpenId", "openid_url", "OPENID_KIND", "OPENID_TTL"]

log = logging.getLogger(__name__)

OPENID_KIND = "openid"
OPENID_TTL = 24 * 3600.0  # MSAL's own lifetime for a discovery GET
_SUFFIX = "/v2.0/.well-known/openid-configuration"


def openid_url(authority: str) -> str:
    """The URL MSAL's tenant discovery GETs for ``authority`` (msal 1.39 ``authority.py``
    ``_initialize_entra_authority``: the authority's path + "/v2.0/.well-known/openid-configuration")."""
    return authority + _SUFFIX


class DocCache(Protocol):
    """One tenant's stored documents: (stored_at, payload) per kind."""

    def get(self, kind: str) -> tuple[float, str] | None: ...
    def put(self, kind: str, at: float, payload: str) -> None: ...


class TenantDocCache:
    """``DocCache`` over a state store's ``cached``/``set_cached`` for one tenant."""

    def __init__(self, store: Any, tenant: str) -> None:
        self.store = store
        self.tenant = tenant

    def get(self, kind: str) -> tuple[float, str] | None:
        return self.store.cached(self.tenant, kind)

    def put(self, kind: str, at: float, payload: str) -> None:
        self.store.set_cached(self.tenant, kind, at, payload)


class _Stored:
    """What MSAL reads of a response (``msal.throttled_http_client.NormalizedResponse``)."""

    status_code = 200

    def __init__(self, text: str, content_type: str) -> None:
        self.text = text
        self.headers = {"Content-Type": content_type}

    def raise_for_status(self) -> None:
        return None

    def json(self) -> Any:
        return json.loads(self.text)

    def close(self) -> None:
        return None


class CachedOpenId:
    """Serves MSAL's OpenID configuration GET from ``cache`` when it is fresh, else fetches
    it with ``fetch`` and stores a 200 whose body is a JSON object.  Only ``url`` (this
    tenant's ``openid_url``), without parameters and on the login endpoint's origin, is ever
    served or stored; a stored row of the wrong shape reads as absent, and a cache that fails
    is skipped: whatever the cache holds or raises, a token never fails on it."""

    def __init__(self, cache: DocCache, login_base: str, url: str, clock: Callable[[], float] = time.time) -> None:
        self.cache = cache
        self.login_base = login_base
        self.url = url
        self.clock = clock

    def applies(self, url: str, params: Any) -> bool:
        return not params and url == self.url and link_problem(url, self.login_base) is None

    def get(self, url: str, fetch: Callable[[], Any]) -> Any:
        stored = self._load(url)
        if stored is not None:
            return stored
        resp = fetch()
        self._store(url, resp)
        return resp

    def _load(self, url: str) -> _Stored | None:
        try:
            row = self.cache.get(OPENID_KIND)
        except Exception as exc:  # noqa: BLE001 - a cache never fails a token
            log.debug("stored OpenID configuration unreadable (%s)", type(exc).__name__)
            return None
        try:
            at, payload = row  # type: ignore[misc]
            at = float(at)
        except (TypeError, ValueError, OverflowError):  # None, or not a (time, text) row
            return None
        if not isinstance(payload, str) or not fresh(at, self.clock(), OPENID_TTL):
            return None
        try:
            doc = json.loads(payload)
            if doc.get("v") != 1 or doc.get("url") != url or not isinstance(doc.get("text"), str):
                return None
            if not isinstance(json.loads(doc["text"]), dict):
                return None
            return _Stored(doc["text"], str(doc.get("content_type") or "application/json"))
        except (ValueError, TypeError, AttributeError):
            return None

    def _store(self, url: str, resp: Any) -> None:
        if getattr(resp, "status_code", None) != 200:
            return
        try:
            text = resp.text
            if not isinstance(json.loads(text), dict):
                return
            content_type = resp.headers.get("Content-Type", "application/json")
            payload = json.dumps({"v": 1, "url": url, "text": text, "content_type": content_type})
            self.cache.put(OPENID_KIND, self.clock(), payload)
        except Exception as exc:  # noqa: BLE001 - a cache never fails a token
            log.debug("OpenID configuration not stored (%s)", type(exc).__name__)
