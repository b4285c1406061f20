"""The Graph HTTP client: auth, pacing, retries, paging (graph-facts §0.3-0.6).

* Every request carries a fresh ``client-request-id`` and, on the Graph host only, the
  Bearer token.
* Retried: 429, 500, 502, 503, 504, connection errors and resets, read timeouts, and 2xx
  bodies that are not JSON (truncated).  The wait is Retry-After (seconds, a float, or an
  HTTP-date), honoured exactly and never less; without it, a 429 or 503 waits at least its
  class's documented window (``ratelimit.retry_floor``: Identity Protection 1 s, identity
  reports 10 s) and holds the class back for the tenant's other workers, with jitter that
  only ever adds; other failures use exponential backoff with full jitter.  A single wait
  above ``http.max_retry_wait`` raises at once with ``retry_after`` set so the scheduler can
  defer the source.
* Admission: the tenant's ``RateLimiter`` and, when given, the app's ``AppBudgets`` (the
  limits shared by every tenant of one client_id) must both admit a request at once.
* 401: the token is invalidated and re-acquired once.
* Paging follows the whole ``@odata.nextLink``; params go on the first request only,
  headers on every page; a repeated nextLink is an error.
* Origins (issue 13): the token goes only to the tenant's Graph endpoint, and a link is only
  followed when ``clouds.link_problem`` finds nothing wrong with it: plain ASCII without
  a backslash, ``@``, ``#``, whitespace or control characters, and the very scheme, host and port
  urllib3 will connect to.  A start URL that fails this (a stored deltaLink/nextLink) raises
  ``GraphResyncRequired`` (the collectors then read from the configured endpoint again); a
  nextLink met while paging raises ``GraphForeignLink`` naming the host.  Redirects are
  followed by the client itself, only within the origin of the URL that was redirected.
* Sizes: every body is read streaming and capped (``MAX_JSON_PAGE_BYTES`` unless the caller
  passes ``max_bytes``); an oversized body fails with ``GraphResponseError``, not retried.
* Logs carry method, path (never the query string), status, duration and request-id.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson
import requests

from ..config.model import HttpConfig, TenantConfig
from ..errors import (
    AuthError,
    GraphError,
    GraphForeignLink,
    GraphResponseError,
    GraphStopped,
    GraphThrottled,
    GraphUnauthorized,
    TdGraphError,
)
from ..metrics import Metrics
from .appbudget import AppBudgets
from .auth import TokenProvider, quiet_third_party_loggers
from .classify import TRANSPORT_ERRORS, classify, classify_transport, header, is_retryable
from .clouds import link_problem, resolve_endpoints
from .http import build_session
from .jsonbody import loads_page
from .oidc_cache import DocCache
from .paging import AnyEvent, Page, follow_links, prefetched
from .ratelimit import RateLimiter, retry_floor
from .serverclock import ServerClock
from .transport import RedirectRefused, TooLarge, send

__all__ = ["GraphClient", "Reply"]

log = logging.getLogger("td_graph_plugin.graph.client")
_REQUEST_IDS = random.Random()  # its own generator: seeding the global one never repeats ids

BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
JITTER_FRACTION = 0.25  # a floored wait gets up to this share of it added, never taken away
FLOORED_STATUSES = (429, 503)  # without Retry-After: wait at least the class's window
# The largest body read for one request unless the caller says otherwise (a JSON page).  Graph
# pages are a few MiB at most ($top is capped at 999 objects and the largest objects are tens
# of KiB); 64 MiB leaves a wide margin and still bounds what a broken or hostile answer can
# make the collector hold in memory.
MAX_JSON_PAGE_BYTES = 64 * 1024 * 1024


class Reply(NamedTuple):
    """A request that succeeded: the response and its decoded JSON object.  ``data`` is
    ``{}`` when the body was not decoded: ``expect_json=False``, an empty 202/204 (or an
    empty answer to a write), a 3xx returned as-is."""

    response: requests.Response
    data: dict

    @property
    def request_id(self) -> str | None:
        return header(self.response.headers, "request-id")


class _Failed(NamedTuple):
    """An attempt that failed, and whether sending the request again may help."""

    error: GraphError
    retryable: bool


def _path(url: str) -> str:
    return urlsplit(url).path or "/"




class GraphClient:
    """One per tenant; thread-safe (workers share it)."""

    def __init__(
        self,
        tenant: TenantConfig,
        http: HttpConfig,
        metrics: Metrics | None = None,
        *,
        session: requests.Session | None = None,
        tokens: TokenProvider | None = None,
        limiter: RateLimiter | None = None,
        stop: threading.Event | None = None,
        sleep: Callable[[float], object] | None = None,
        rng: random.Random | None = None,
        app_budgets: AppBudgets | None = None,
        doc_cache: DocCache | None = None,
    ) -> None:
        self.tenant = tenant
        self.http = http
        self.metrics = metrics
        self.endpoints = resolve_endpoints(tenant)
        self.graph_base: str = self.endpoints.graph_base
        self._own_session = session is None
        self.session = session if session is not None else build_session(tenant)
        self._timeout = (http.connect_timeout, http.read_timeout)
        self.tokens = tokens or TokenProvider(
            tenant, self.session, metrics, endpoints=self.endpoints, timeout=self._timeout, doc_cache=doc_cache
        )
        self.limiter = limiter or RateLimiter()
        self.app_budgets = app_budgets
        self.server_clock = ServerClock()  # Graph's time from Date headers (window ends)
        self.stop = stop or threading.Event()
        self._sleep = sleep
        self._rng = rng or random.Random()
        quiet_third_party_loggers()

    # --- helpers --------------------------------------------------------------------
    def url(self, version: str, path: str) -> str:
        """``{graph_base}/{version}/{path}``; an absolute https URL is returned unchanged."""
        if path.startswith("https://") or path.startswith("http://"):
            return path
        return f"{self.graph_base}/{version.strip('/')}/{path.lstrip('/')}"

    def _is_graph_url(self, url: str) -> bool:
        """May ``url`` carry the token?  A link from a response must pass ``link_problem``;
        a URL built from the configured endpoint (``url()``: ``{graph_base}/...``) may also
        hold '@' in its path (``/users/{upn}``): both urllib.parse and urllib3 end the
        authority at the first '/', so a URL that starts with ``graph_base + "/"`` connects to
        the Graph endpoint whatever follows (whitespace and control characters excepted)."""
        if link_problem(url, self.graph_base) is None:
            return True
        return (
            url.startswith(self.graph_base + "/")
            and url.isascii()
            and not any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url)
        )

    def backoff(self, attempt: int, floor: float = 0.0) -> float:
        """The wait before retry number ``attempt`` (0-based) of an answer without Retry-After.
        No ``floor`` (500/502/504, resets, timeouts): full jitter, ``uniform(0, min(60,
        2**attempt))``.  A ``floor`` (a 429 or 503: the class's window): at least ``max(floor,
        min(60, 2**attempt))``, plus up to a quarter of that as jitter, which only ever adds."""
        step = min(BACKOFF_CAP, BACKOFF_BASE * (2.0**attempt))
        if floor <= 0:
            return self._rng.uniform(0.0, step)
        low = max(floor, step)
        return low + self._rng.uniform(0.0, low * JITTER_FRACTION)

    def _admit(self, throttle_class: str, key: str | None, stop: Any) -> bool:
        if self.app_budgets is None:
            return self.limiter.acquire(throttle_class, key, stop)
        return self.app_budgets.admit(self.tenant.client_id, throttle_class, self.limiter, key, stop, self.metrics)

    @staticmethod
    def _check_stop(stop: Any, path: str) -> None:
        if stop.is_set():
            raise GraphStopped("stopped", path=path)

    def _wait(self, seconds: float, path: str, stop: Any) -> None:
        if seconds > 0:
            if self._sleep is not None:
                self._sleep(seconds)
            else:
                stop.wait(seconds)
        self._check_stop(stop, path)

    def _fail(self, err: TdGraphError, source: str) -> TdGraphError:
        if self.metrics is not None and not isinstance(err, GraphStopped):
            self.metrics.error(self.tenant.name, source, err.kind)
        return err

    def _observe(self, source: str, status: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_request(self.tenant.name, source, status, seconds)

    # --- requests -------------------------------------------------------------------
    def fetch(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        source: str = "-",
        throttle_class: str = "default",
        throttle_key: str | None = None,
        auth: bool = True,
        allow_redirects: bool = True,
        expect_json: bool = True,
        stop: Any = None,
        max_bytes: int | None = None,
    ) -> Reply:
        """Send one logical request with retries.  With ``expect_json`` the decoded body is
        ``Reply.data`` (a dict; ``{}`` for an empty 202/204).  A 3xx is returned as-is when
        ``allow_redirects`` is False; otherwise redirects within the URL's own origin are
        followed and one to another origin raises ``GraphForeignLink``.  The body may be at
        most ``max_bytes`` (default ``MAX_JSON_PAGE_BYTES``).  ``stop`` (an Event, default
        the client's) aborts pacing and retry waits with ``GraphStopped``."""
        method = method.upper()
        path = _path(url)
        cap = max_bytes if max_bytes is not None else MAX_JSON_PAGE_BYTES
        send_auth = auth and self._is_graph_url(url)
        if auth and not send_auth:
            log.debug("%s %s: not the Graph host, sending no token", method, path)
        stop = stop if stop is not None else self.stop
        attempt = 0  # retries used
        reauthed = False
        while True:
            self._check_stop(stop, path)
            if not self._admit(throttle_class, throttle_key, stop):
                raise GraphStopped("stopped", path=path)  # returned early, without a slot
            try:
                self._check_stop(stop, path)
                outcome = self._attempt(
                    method, url, path, params, json, headers, send_auth, allow_redirects, expect_json, source, cap
                )
            finally:
                self.limiter.release(throttle_class, throttle_key)

            if isinstance(outcome, Reply):
                return outcome
            err = outcome.error

            if isinstance(err, GraphUnauthorized) and send_auth and not reauthed:
                reauthed = True
                log.info("%s %s: 401, acquiring a new token and retrying once", method, path)
                self.tokens.invalidate()
                continue

            if not outcome.retryable:
                raise self._fail(err, source)
            floored = isinstance(err, GraphThrottled) or err.status in FLOORED_STATUSES
            if err.retry_after is not None:
                wait = err.retry_after  # exactly what Graph asked for, never less
            else:
                wait = self.backoff(attempt, retry_floor(throttle_class) if floored else 0.0)
            if floored:  # the tenant's other workers of the class hold back too
                self.limiter.penalize(throttle_class, wait, throttle_key)
            if attempt >= self.http.max_retries:
                if err.retry_after is None:
                    err.retry_after = wait
                log.warning(
                    "%s %s: giving up after %d retries: %s", method, path, attempt, err.detail
                )
                raise self._fail(err, source)
            if wait > self.http.max_retry_wait:
                err.retry_after = wait
                log.warning(
                    "%s %s: %s asks to wait %.1f s (> max_retry_wait %.0f s); deferring",
                    method, path, err.status or "error", wait, self.http.max_retry_wait,
                )
                raise self._fail(err, source)
            attempt += 1
            log.info(
                "%s %s: %s; retry %d/%d in %.2f s",
                method, path, f"HTTP {err.status}" if err.status else err.detail,
                attempt, self.http.max_retries, wait,
            )
            self._wait(wait, path, stop)

    def request(self, method: str, url: str, **kw: Any) -> requests.Response:
        """``fetch`` (same keywords), for callers that only need the response."""
        return self.fetch(method, url, **kw).response

    def get_json(self, url: str, **kw: Any) -> dict:
        """The decoded JSON object of a GET (``fetch`` keywords)."""
        return self.fetch("GET", url, **kw).data

    def _attempt(
        self,
        method: str,
        url: str,
        path: str,
        params: Any,
        json_body: Any,
        headers: Mapping[str, str] | None,
        send_auth: bool,
        allow_redirects: bool,
        expect_json: bool,
        source: str,
        cap: int,
    ) -> Reply | _Failed:
        hdrs: dict[str, str] = {}
        if expect_json:
            hdrs["Accept"] = "application/json"
        if headers:
            hdrs.update(headers)
        # Never let a caller's header carry a token elsewhere.
        for k in list(hdrs):
            if k.lower() == "authorization":
                del hdrs[k]
        # A correlation id, not a secret: drawn without uuid4's getrandom syscall (each one
        # released the GIL, a thread switch per request under 32 workers).
        hdrs["client-request-id"] = str(uuid.UUID(int=_REQUEST_IDS.getrandbits(128), version=4))
        if send_auth:
            try:
                hdrs["Authorization"] = "Bearer " + self.tokens.token()
            except AuthError as e:
                raise self._fail(e, source) from None
        host = urlsplit(url).netloc
        t0 = time.monotonic()

        def hop(status: int) -> None:  # a redirect followed: counted like any answer
            nonlocal t0
            self._observe(source, status, time.monotonic() - t0)
            t0 = time.monotonic()

        try:
            resp = send(
                self.session, method, url, params=params, json_body=json_body, headers=hdrs,
                timeout=self._timeout, allow_redirects=allow_redirects, cap=cap, on_hop=hop,
            )
        except TooLarge as e:
            self._observe(source, e.response.status_code, time.monotonic() - t0)
            log.warning("%s %s: the response is larger than %d bytes; not read", method, path, cap)
            err = GraphResponseError(
                str(e), status=e.response.status_code, path=path, request_id=header(e.response.headers, "request-id")
            )
            return _Failed(err, False)  # it would be as large again
        except RedirectRefused as e:
            cls = GraphForeignLink if e.foreign else GraphResponseError
            raise self._fail(
                cls(str(e), status=e.response.status_code, path=path, request_id=header(e.response.headers, "request-id")),
                source,
            ) from None
        except TRANSPORT_ERRORS as e:
            elapsed = time.monotonic() - t0
            self._observe(source, 0, elapsed)
            log.debug("%s %s -> no response (%s) in %.3fs", method, path, type(e).__name__, elapsed)
            return _Failed(*classify_transport(e, host, path))
        except requests.exceptions.RequestException as e:  # InvalidURL, ...
            self._observe(source, 0, time.monotonic() - t0)
            raise self._fail(
                GraphResponseError(f"request to {host} failed ({type(e).__name__})", path=path), source
            ) from None
        elapsed = time.monotonic() - t0
        status = resp.status_code
        request_id = header(resp.headers, "request-id")
        self.server_clock.observe(header(resp.headers, "date"))
        self._observe(source, status, elapsed)
        log.debug(
            "%s %s -> %s in %.3fs request-id=%s", method, path, status, elapsed, request_id or "-"
        )
        if 200 <= status < 300:
            if not expect_json:
                return Reply(resp, {})
            body = resp.content
            if not body.strip():
                if status in (202, 204) or method != "GET":
                    return Reply(resp, {})
                problem = "Graph answered with an empty body"
            else:
                try:
                    data = loads_page(body)
                except orjson.JSONDecodeError:
                    problem = "Graph answered with a body that is not valid JSON (truncated?)"
                else:
                    if isinstance(data, dict):
                        return Reply(resp, data)
                    problem = "Graph answered with JSON that is not an object"
            err: GraphError = GraphResponseError(problem, status=status, path=path, request_id=request_id)
        elif 300 <= status < 400 and not allow_redirects:
            return Reply(resp, {})
        else:
            err = classify(status, resp.content, resp.headers, path)
        return _Failed(err, is_retryable(err))

    # --- paging ---------------------------------------------------------------------
    def _pages_sync(
        self,
        url: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        source: str,
        throttle_class: str,
        throttle_key: str | None,
        stop: Any = None,
    ) -> Iterator[Page]:
        def get(link: str, first: bool) -> Reply:
            return self.fetch(
                "GET", link, params=params if first else None, headers=headers, source=source,
                throttle_class=throttle_class, throttle_key=throttle_key, stop=stop,
            )

        return follow_links(get, lambda e: self._fail(e, source), self.graph_base, url, bool(params), source)

    def pages(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        source: str = "-",
        throttle_class: str = "default",
        throttle_key: str | None = None,
        prefetch: bool = True,
    ) -> Iterator[Page]:
        """Every page of a collection (or delta round), in order.  The last page has
        ``next_link`` None and, for delta queries, ``delta_link`` set.  With ``prefetch``
        the next page is fetched on a worker thread while the caller works on this one."""
        if not prefetch:
            return self._pages_sync(url, params, headers, source, throttle_class, throttle_key)
        halt = threading.Event()
        gen = self._pages_sync(
            url, params, headers, source, throttle_class, throttle_key, AnyEvent(self.stop, halt)
        )
        return prefetched(gen, halt, f"td-graph-prefetch-{self.tenant.name}-{source}")

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
