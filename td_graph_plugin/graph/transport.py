"""One HTTP exchange of the Graph client: redirects followed by hand, bodies read capped.

requests would follow a redirect to any host (keeping or dropping ``Authorization`` by
urllib.parse's reading of the URL, which urllib3 does not share) and read every body whole.
``send`` instead asks requests for one response at a time, follows a redirect only within the
origin of the URL that was redirected (``clouds.link_problem``), and reads the final body as a
stream into a buffer of at most ``cap`` bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin

import requests

from .clouds import display_host, link_problem

__all__ = ["send", "read_capped", "TooLarge", "RedirectRefused", "MAX_REDIRECTS"]

MAX_REDIRECTS = 5  # same-origin hops followed for one request
_READ_CHUNK = 64 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)


class TooLarge(Exception):
    """The body is larger than allowed; ``response`` is closed (its connection dropped)."""

    def __init__(self, response: requests.Response, url: str, cap: int) -> None:
        self.response = response
        self.host = display_host(url)
        self.cap = cap
        super().__init__(f"the response from {self.host} is larger than {cap} bytes (the limit)")


class RedirectRefused(Exception):
    """A redirect that is not followed: to another origin, or one hop too many."""

    def __init__(self, response: requests.Response, message: str, *, foreign: bool) -> None:
        self.response = response
        self.foreign = foreign
        super().__init__(message)


def read_capped(resp: requests.Response, cap: int) -> bytes:
    """The whole body of a streamed response, read chunk by chunk; ``TooLarge`` as soon as it
    (decoded) exceeds ``cap`` bytes, or at once when Content-Length announces more."""
    length = (resp.headers.get("Content-Length") or "").strip()
    if length.isdigit() and int(length) > cap:
        resp.close()
        raise TooLarge(resp, resp.url, cap)
    buf = bytearray()
    for chunk in resp.iter_content(chunk_size=_READ_CHUNK):
        buf += chunk
        if len(buf) > cap:
            resp.close()
            raise TooLarge(resp, resp.url, cap)
    body = bytes(buf)
    # What requests itself does when it reads a body: ``resp.content`` now returns it.
    resp._content = body  # type: ignore[attr-defined]
    resp._content_consumed = True  # type: ignore[attr-defined]
    return body


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    params: Any,
    json_body: Any,
    headers: Mapping[str, str],
    timeout: Any,
    allow_redirects: bool,
    cap: int,
    on_hop: Callable[[int], None] | None = None,
) -> requests.Response:
    """The final response of ``method url`` with its body read (at most ``cap`` bytes).

    With ``allow_redirects`` a 3xx with a Location is followed when the target has the same
    origin as the URL redirected (``on_hop(status)`` is called for each hop); otherwise the
    3xx is the response.  Raises what requests raises, ``TooLarge`` and ``RedirectRefused``."""
    current, hops = url, 0
    while True:
        resp = session.request(
            method, current, params=params, json=json_body, headers=dict(headers),
            timeout=timeout, allow_redirects=False, stream=True,
        )
        if not (allow_redirects and resp.status_code in _REDIRECTS and "location" in resp.headers):
            read_capped(resp, cap)
            return resp
        resp.close()
        if on_hop is not None:
            on_hop(resp.status_code)
        target = urljoin(current, resp.headers["location"])
        problem = link_problem(target, current, "the origin it was redirected from")
        if problem:
            raise RedirectRefused(
                resp,
                f"a redirect from {display_host(current)} to {display_host(target)} was not followed: {problem}",
                foreign=True,
            )
        hops += 1
        if hops > MAX_REDIRECTS:
            raise RedirectRefused(resp, f"more than {MAX_REDIRECTS} redirects", foreign=False)
        if resp.status_code in (301, 302, 303) and method != "HEAD":
            method, json_body = "GET", None  # what browsers and requests do
        current, params = target, None
