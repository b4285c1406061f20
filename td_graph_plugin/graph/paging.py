"""Collection pages: decoding one page, following the links, and reading pages one ahead on
a worker thread.

``GraphClient.pages`` follows ``@odata.nextLink``; this module holds what that needs
besides the request itself: the ``Page`` record, the checks on a decoded page, the loop over
the links (with the origin rule of issue 13), and the prefetch thread that keeps at most one
page ahead of the consumer.

Links: the start URL and every nextLink must pass ``clouds.link_problem`` against the Graph
endpoint.  A start URL that does not (a stored deltaLink/nextLink) raises
``GraphResyncRequired``: the collectors then read from the configured endpoint again.  A
nextLink that does not raises ``GraphForeignLink`` before its page is handed on, so nothing
of a read that would continue elsewhere is emitted or committed.  Messages name the host,
never the link (it may carry tokens).
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import GraphError, GraphForeignLink, GraphResponseError, GraphResyncRequired, GraphTransient
from .clouds import display_host, link_problem

__all__ = ["Page", "AnyEvent", "decode_page", "follow_links", "prefetched"]

log = logging.getLogger("td_graph_plugin.graph.client")


@dataclass
class Page:
    items: list[dict]
    next_link: str | None
    delta_link: str | None
    request_id: str | None
    raw: dict = field(default_factory=dict)  # the whole decoded JSON without "value"


class AnyEvent:
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


def decode_page(data: dict, *, status: int, path: str, request_id: str | None) -> Page:
    """The page in a decoded collection response; ``GraphResponseError`` when it has no
    ``value`` array or a link that is not a string."""
    value = data.get("value")
    if not isinstance(value, list):
        raise GraphResponseError(
            "the response has no 'value' array (not a collection?)",
            status=status, path=path, request_id=request_id,
        )
    raw = {k: v for k, v in data.items() if k != "value"}
    next_link = data.get("@odata.nextLink")
    delta_link = data.get("@odata.deltaLink")
    for name, link in (("nextLink", next_link), ("deltaLink", delta_link)):
        if link is not None and not isinstance(link, str):
            raise GraphResponseError(f"@odata.{name} is not a string", path=path, request_id=request_id)
    return Page(
        items=value, next_link=next_link or None, delta_link=delta_link or None,
        request_id=request_id, raw=raw,
    )


def _path(url: str) -> str | None:
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return None


def follow_links(
    get: Callable[[str, bool], Any],
    fail: Callable[[GraphError], Exception],
    graph_base: str,
    url: str,
    has_params: bool,
    source: str,
) -> Iterator[Page]:
    """Every page from ``url`` on: ``get(link, first)`` fetches one (a ``Reply``), ``fail``
    counts an error and returns it to raise."""
    problem = link_problem(url, graph_base)
    if problem:
        log.warning("%s: not following a stored link to %s (%s); a full resync is needed",
                    source, display_host(url), problem)
        raise fail(GraphResyncRequired(f"the stored link to {display_host(url)} is not followed: {problem}",
                                       path=_path(url)))
    seen: set[str] = set() if has_params else {url}
    current: str | None = url
    first = True
    while current is not None:
        reply = get(current, first)
        first = False
        try:
            page = decode_page(reply.data, status=reply.response.status_code, path=_path(current) or "/",
                               request_id=reply.request_id)
        except GraphResponseError as e:
            raise fail(e) from None
        nxt = page.next_link
        if nxt is not None:
            problem = link_problem(nxt, graph_base)
            if problem:
                raise fail(GraphForeignLink(f"@odata.nextLink to {display_host(nxt)} is not followed: {problem}",
                                            path=_path(current), request_id=page.request_id))
            if nxt in seen:
                raise fail(GraphResponseError("@odata.nextLink repeats a link already followed (paging loop)",
                                              path=_path(nxt), request_id=page.request_id))
            seen.add(nxt)
        yield page
        current = nxt


def prefetched(gen: Iterator[Page], halt: threading.Event, thread_name: str) -> Iterator[Page]:
    """``gen``'s pages, fetched on a worker thread one page ahead of the consumer.

    Page 1 is fetched on the caller's thread: most polls are one page (nothing new since the
    last checkpoint), and a thread per poll only to hand over one page cost 1,000 tenants a
    thread start and two hand-offs each.  From page 2 on, the worker fetches page N+1 only
    once the consumer has received page N.  When the consumer stops, ``halt`` is set; ``gen``
    must watch it (through ``AnyEvent``) so that the worker's retries and pacing waits stop too
    and no further request is made."""
    handed_over = False
    try:
        try:
            first = next(gen)
        except StopIteration:
            return
        if getattr(first, "next_link", "?") is None:
            yield first  # the last page: ``gen`` would end without another request
            return
        handed_over = True
    finally:
        if not handed_over:
            halt.set()
            gen.close()
    yield from _prefetch_rest(first, gen, halt, thread_name)


def _prefetch_rest(first: Page, gen: Iterator[Page], halt: threading.Event, thread_name: str) -> Iterator[Page]:
    """``first``, then the rest of ``gen`` from a worker thread (``prefetched``)."""
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

    # The worker decodes as the consumer asked when it started (jsonbody.RAW_FIELDS).
    thread = threading.Thread(target=contextvars.copy_context().run, args=(worker,), name=thread_name, daemon=True)
    started = False
    try:
        demand.release()  # ask for page 2 while the caller works on page 1
        thread.start()
        started = True
        yield first
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
        else:
            gen.close()
