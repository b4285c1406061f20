"""The Graph HTTP client: auth, pacing, retries, paging (graph-facts §0.3-0.6).

* Every request carries a fresh ``client-request-id`` and, on the Graph host only, the
  Bearer token.
* Retried: 429, 500, 502, 503, 504, connection errors and resets, read timeouts, and 2xx
  bodies that are not JSON (truncated).  The wait is Retry-After (seconds or HTTP-date) or
  exponential backoff with full jitter; a single wait above ``http.max_retry_wait`` raises
  at once with ``retry_after`` set so the scheduler can defer the source.
* 401: the token is invalidated and re-acquired once.
* Paging follows the whole ``@odata.nextLink``; params go on the first request only,
  headers on every page; a repeated nextLink is an error.
* Logs carry method, path (never the query string), status, duration and request-id.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from ..config.model import HttpConfig, TenantConfig
from ..errors import (
    AuthError,
    GraphError,
    GraphResponseError,
    GraphThrottled,
    GraphTransient,
    GraphUnauthorized,
    TdGraphError,
)
from ..metrics import Metrics
from .auth import TokenProvider, quiet_third_party_loggers
from .classify import classify, header
from .clouds import resolve_endpoints, same_origin
from .http import build_session
from .ratelimit import RateLimiter

__all__ = ["GraphClient", "Page", "GraphStopped", "RETRY_STATUSES"]

log = logging.getLogger("td_graph_plugin.graph.client")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
_TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError,  # includes ConnectTimeout, SSLError, ProxyError
    requests.exceptions.Timeout,  # ReadTimeout
    requests.exceptions.ChunkedEncodingError,  # truncated chunked body / IncompleteRead
    requests.exceptions.ContentDecodingError,
)


class GraphStopped(GraphTransient):
    """The stop event was set (SIGTERM) while a request was waiting or about to be sent."""

    kind = "stopped"


class _Either:
    """Duck-types ``threading.Event`` (is_set/wait) over two events: set when either is."""

    def __init__(self, a: threading.Event, b: threading.Event) -> None:
        self._a, self._b = a, b

    def is_set(self) -> bool:
        return self._a.is_set() or self._b.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                break
            self._a.wait(left)
        return self.is_set()


@dataclass
class Page:
    items: list[dict]
    next_link: str | None
    delta_link: str | None
    request_id: str | None
    raw: dict = field(default_factory=dict)  # the whole decoded JSON without "value"


def _path(url: str) -> str:
    return urlsplit(url).path or "/"


def _transport_message(host: str, e: BaseException) -> str:
    if isinstance(e, requests.exceptions.SSLError):
        return f"cannot reach {host}: TLS verification failed (add the CA with ca_bundle if a proxy inspects TLS)"
    if isinstance(e, requests.exceptions.ProxyError):
        return f"cannot reach {host}: the proxy failed the connection"
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return f"cannot reach {host}: connection timed out"
    if isinstance(e, requests.exceptions.ReadTimeout):
        return f"{host} did not answer in time (read timeout)"
    if isinstance(e, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return f"{host} closed the connection mid-response (truncated body)"
    text = str(e)
    if "Connection refused" in text:
        return f"cannot reach {host}: connection refused"
    if "resolution" in text or "not known" in text or "getaddrinfo" in text:
        return f"cannot reach {host}: the host name does not resolve"
    return f"connection to {host} failed ({type(e).__name__})"


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
        pool_size: int = 16,
    ) -> None:
        self.tenant = tenant
        self.http = http
        self.metrics = metrics
        self.endpoints = resolve_endpoints(tenant)
        self.graph_base: str = self.endpoints.graph_base
        self._own_session = session is None
        self.session = session if session is not None else build_session(tenant, http, pool_size=pool_size)
        self.tokens = tokens or TokenProvider(
            tenant,
            self.session,
            metrics,
            endpoints=self.endpoints,
            timeout=(http.connect_timeout, http.read_timeout),
        )
        self.limiter = limiter or RateLimiter()
        self.stop = stop or threading.Event()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._timeout = (http.connect_timeout, http.read_timeout)
        self._host = urlsplit(self.graph_base).netloc
        quiet_third_party_loggers()

    # --- helpers --------------------------------------------------------------------
    def url(self, version: str, path: str) -> str:
        """``{graph_base}/{version}/{path}``; an absolute https URL is returned unchanged."""
        if path.startswith("https://") or path.startswith("http://"):
            return path
        return f"{self.graph_base}/{version.strip('/')}/{path.lstrip('/')}"

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for retry number ``attempt`` (0-based)."""
        return self._rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * (2.0**attempt)))

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
    def request(
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
        _stop: Any = None,
    ) -> requests.Response:
        """Send one logical request with retries.  With ``expect_json`` the decoded body is
        on ``response.td_json`` (a dict; ``{}`` for an empty 202/204).  A 3xx is returned
        as-is when ``allow_redirects`` is False."""
        method = method.upper()
        path = _path(url)
        send_auth = auth and same_origin(url, self.graph_base)
        if auth and not send_auth:
            log.debug("%s %s: not the Graph host, sending no token", method, path)
        stop = _stop if _stop is not None else self.stop
        attempt = 0  # retries used
        reauthed = False
        while True:
            self._check_stop(stop, path)
            got = self.limiter.acquire(throttle_class, throttle_key, stop)
            if got is False or (got is None and stop.is_set()):
                raise GraphStopped("stopped", path=path)  # returned early, without a slot
            try:
                self._check_stop(stop, path)
                resp, err, elapsed = self._attempt(
                    method, url, path, params, json, headers, send_auth, allow_redirects, expect_json, source
                )
            finally:
                self.limiter.release(throttle_class, throttle_key)

            if err is None:
                return resp

            if isinstance(err, GraphUnauthorized) and send_auth and not reauthed:
                reauthed = True
                log.info("%s %s: 401, acquiring a new token and retrying once", method, path)
                self.tokens.invalidate()
                continue

            retryable = not getattr(err, "no_retry", False) and (
                isinstance(err, (GraphThrottled, GraphResponseError))
                or (
                    isinstance(err, GraphTransient)
                    and (err.status is None or err.status in RETRY_STATUSES)
                )
            )
            if not retryable:
                raise self._fail(err, source)
            wait = err.retry_after if err.retry_after is not None else self.backoff(attempt)
            if isinstance(err, GraphThrottled):
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
    ) -> tuple[requests.Response | None, GraphError | None, float]:
        hdrs: dict[str, str] = {}
        if expect_json:
            hdrs["Accept"] = "application/json"
        if headers:
            hdrs.update(headers)
        # Never let a caller's header carry a token elsewhere.
        for k in list(hdrs):
            if k.lower() == "authorization":
                del hdrs[k]
        hdrs["client-request-id"] = str(uuid.uuid4())
        if send_auth:
            try:
                hdrs["Authorization"] = "Bearer " + self.tokens.token()
            except AuthError as e:
                raise self._fail(e, source) from None
        host = urlsplit(url).netloc
        t0 = time.monotonic()
        try:
            resp = self.session.request(
                method,
                url,
                params=params,
                json=json_body,
                headers=hdrs,
                timeout=self._timeout,
                allow_redirects=allow_redirects,
            )
        except _TRANSPORT_ERRORS as e:
            elapsed = time.monotonic() - t0
            self._observe(source, 0, elapsed)
            log.debug("%s %s -> no response (%s) in %.3fs", method, path, type(e).__name__, elapsed)
            err = GraphTransient(_transport_message(host, e), path=path)
            # A certificate that does not verify will not verify on the next attempt either.
            err.no_retry = isinstance(e, requests.exceptions.SSLError)  # type: ignore[attr-defined]
            return None, err, elapsed
        except requests.exceptions.RequestException as e:  # InvalidURL, TooManyRedirects...
            elapsed = time.monotonic() - t0
            self._observe(source, 0, elapsed)
            raise self._fail(
                GraphResponseError(f"request to {host} failed ({type(e).__name__})", path=path), source
            ) from None
        elapsed = time.monotonic() - t0
        status = resp.status_code
        request_id = header(resp.headers, "request-id")
        self._observe(source, status, elapsed)
        log.debug(
            "%s %s -> %s in %.3fs request-id=%s", method, path, status, elapsed, request_id or "-"
        )
        if 200 <= status < 300:
            if not expect_json:
                return resp, None, elapsed
            body = resp.content
            if not body.strip():
                if status in (202, 204) or method not in ("GET",):
                    resp.td_json = {}  # type: ignore[attr-defined]
                    return resp, None, elapsed
                return None, GraphResponseError(
                    "Graph answered with an empty body", status=status, path=path, request_id=request_id
                ), elapsed
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                return None, GraphResponseError(
                    "Graph answered with a body that is not valid JSON (truncated?)",
                    status=status, path=path, request_id=request_id,
                ), elapsed
            if not isinstance(data, dict):
                return None, GraphResponseError(
                    "Graph answered with JSON that is not an object",
                    status=status, path=path, request_id=request_id,
                ), elapsed
            resp.td_json = data  # type: ignore[attr-defined]
            return resp, None, elapsed
        if 300 <= status < 400 and not allow_redirects:
            return resp, None, elapsed
        return None, classify(status, resp.content, resp.headers, path), elapsed

    def get_json(self, url: str, **kw: Any) -> dict:
        kw.setdefault("expect_json", True)
        resp = self.request(kw.pop("method", "GET"), url, **kw)
        return getattr(resp, "td_json", {})

    # --- paging ---------------------------------------------------------------------
    def _page(self, resp: requests.Response, url: str, source: str) -> Page:
        data: dict = resp.td_json  # type: ignore[attr-defined]
        request_id = header(resp.headers, "request-id")
        value = data.get("value")
        if not isinstance(value, list):
            raise self._fail(
                GraphResponseError(
                    "the response has no 'value' array (not a collection?)",
                    status=resp.status_code, path=_path(url), request_id=request_id,
                ),
                source,
            )
        raw = {k: v for k, v in data.items() if k != "value"}
        next_link = data.get("@odata.nextLink")
        delta_link = data.get("@odata.deltaLink")
        for name, link in (("nextLink", next_link), ("deltaLink", delta_link)):
            if link is not None and not isinstance(link, str):
                raise self._fail(
                    GraphResponseError(f"@odata.{name} is not a string", path=_path(url), request_id=request_id),
                    source,
                )
        return Page(
            items=value, next_link=next_link or None, delta_link=delta_link or None,
            request_id=request_id, raw=raw,
        )

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
        seen: set[str] = set() if params else {url}
        current: str | None = url
        first = True
        while current is not None:
            resp = self.request(
                "GET",
                current,
                params=params if first else None,
                headers=headers,
                source=source,
                throttle_class=throttle_class,
                throttle_key=throttle_key,
                _stop=stop,
            )
            first = False
            page = self._page(resp, current, source)
            nxt = page.next_link
            if nxt is not None:
                if nxt in seen:
                    raise self._fail(
                        GraphResponseError(
                            "@odata.nextLink repeats a link already followed (paging loop)",
                            path=_path(nxt), request_id=page.request_id,
                        ),
                        source,
                    )
                seen.add(nxt)
            yield page
            current = nxt

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
        ``next_link`` None and, for delta queries, ``delta_link`` set."""
        if not prefetch:
            return self._pages_sync(url, params, headers, source, throttle_class, throttle_key)
        halt = threading.Event()
        gen = self._pages_sync(
            url, params, headers, source, throttle_class, throttle_key, _Either(self.stop, halt)
        )
        return self._prefetched(gen, source, halt)

    def _prefetched(self, gen: Iterator[Page], source: str, halt: threading.Event) -> Iterator[Page]:
        # The worker fetches page N+1 only once the consumer has received page N: at most
        # one page ahead.  When the consumer stops, ``halt`` also stops the worker's
        # retries and pacing waits, so no further request is made.
        results: queue.Queue = queue.Queue(maxsize=1)
        demand = threading.Semaphore(0)

        def worker() -> None:
            try:
                while not halt.is_set():
                    if not demand.acquire(timeout=0.1):
                        continue
                    if halt.is_set():
                        return
                    try:
                        item: tuple[str, Any] = ("page", next(gen))
                    except StopIteration:
                        item = ("end", None)
                    except BaseException as e:  # noqa: BLE001 - surfaced to the consumer
                        item = ("error", e)
                    if halt.is_set():
                        return  # nobody is listening any more
                    results.put(item)
                    if item[0] != "page":
                        return
            finally:
                gen.close()

        thread = threading.Thread(
            target=worker, name=f"td-graph-prefetch-{self.tenant.name}-{source}", daemon=True
        )
        started = False
        try:
            demand.release()  # ask for page 1
            thread.start()
            started = True
            while True:
                while True:
                    try:
                        kind, value = results.get(timeout=0.25)
                        break
                    except queue.Empty:
                        if not thread.is_alive() and results.empty():
                            raise GraphTransient("the prefetch thread ended unexpectedly")
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                demand.release()  # prefetch the next page while the caller works on this one
                yield value
        finally:
            halt.set()
            if started:
                # An in-flight request finishes on its own; its page is discarded and no
                # further request is made.  Do not hold the caller for long.
                thread.join(timeout=5.0)

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
