"""Recording at the transport: every request td-graph's real client sends, with its response.

``RecordingAdapter`` wraps the tenant session's own adapter (TLS trust, proxy and pooling are
unchanged) and hands each exchange to a ``Recorder``, which files it under the cassette being
captured and stops a source after its first N pages: the next request of that source raises
``PageLimitReached`` (a ``GraphStopped``, so the engine ends the run quietly) before anything
is sent.  Nothing is scrubbed here; exchanges stay in memory until ``cassette`` writes them.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import BaseAdapter

from ..errors import GraphStopped, TdGraphError

__all__ = ["Exchange", "Recorder", "RecordingAdapter", "PageLimitReached", "install"]

_CHUNK = 64 * 1024


class PageLimitReached(GraphStopped):
    """The source has its N pages: the capture of it ends here (the request is not sent)."""


@dataclass
class Exchange:
    """One request and its response, exactly as sent and received (in memory only)."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes | None
    status: int
    reason: str
    response_headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Recorder:
    """Files exchanges under the current cassette; counts each source's pages."""

    pages: int
    max_body: int = 512 * 1024 * 1024
    exchanges: dict[str, list[Exchange]] = field(default_factory=lambda: defaultdict(list))
    counted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    truncated: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._current = "discovery"
        self._limited = False
        self._inflight = 0

    def use(self, cassette: str, *, limited: bool) -> None:
        """Record into ``cassette`` from now on, once the requests still in flight are filed."""
        with self._cond:
            self._cond.wait_for(lambda: self._inflight == 0)
            self._current, self._limited = cassette, limited

    def begin(self, request: requests.PreparedRequest) -> str:
        with self._cond:
            name = self._current
            if self._limited and self._is_page(request) and self.counted[name] >= self.pages:
                self.truncated.add(name)
                raise PageLimitReached(f"{name}: captured its first {self.pages} page(s)", path="")
            self._inflight += 1
            return name

    def _is_page(self, request: requests.PreparedRequest) -> bool:
        """Every request of a source but the login service's (token, OpenID configuration)."""
        url = (request.url or "").lower()
        return not any(p in url for p in ("/oauth2/", "/.well-known/", "/common/discovery/"))

    def end(self, name: str, exchange: Exchange | None, request: requests.PreparedRequest) -> None:
        with self._cond:
            self._inflight -= 1
            if exchange is not None:
                self.exchanges[name].append(exchange)
                if 200 <= exchange.status < 300 and self._is_page(request):
                    self.counted[name] += 1
            self._cond.notify_all()


class RecordingAdapter(BaseAdapter):
    """Sends through ``inner`` and records the request and the whole response body."""

    def __init__(self, inner: BaseAdapter, recorder: Recorder) -> None:
        super().__init__()
        self.inner = inner
        self.recorder = recorder

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        name = self.recorder.begin(request)
        exchange = None
        try:
            response = self.inner.send(request, **kwargs)
            body = self._read(response)
            exchange = Exchange(
                method=request.method or "GET",
                url=request.url or "",
                request_headers=dict(request.headers),
                request_body=_body_bytes(request.body),
                status=response.status_code,
                reason=response.reason or "",
                response_headers=list(response.headers.items()),
                body=body,
            )
            return response
        finally:
            self.recorder.end(name, exchange, request)

    def _read(self, response: requests.Response) -> bytes:
        """The decoded body, read once; the caller reads it again from memory."""
        buf = bytearray()
        for chunk in response.iter_content(chunk_size=_CHUNK):
            buf += chunk
            if len(buf) > self.recorder.max_body:
                response.close()
                raise TdGraphError(f"a response is larger than {self.recorder.max_body} bytes; not captured")
        response._content = bytes(buf)  # type: ignore[attr-defined]
        response._content_consumed = True  # type: ignore[attr-defined]
        return bytes(buf)

    def close(self) -> None:
        self.inner.close()


def _body_bytes(body: Any) -> bytes | None:
    if isinstance(body, bytes):
        return body
    return body.encode("utf-8") if isinstance(body, str) and body else None


def install(session: requests.Session, recorder: Recorder) -> None:
    """Record every request ``session`` sends (its own adapters keep doing the sending)."""
    for prefix in ("https://", "http://"):
        session.mount(prefix, RecordingAdapter(session.get_adapter(prefix), recorder))
