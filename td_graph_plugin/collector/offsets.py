"""Bounded offset paging: a window is never read through a deep ``$skip``.

``alerts_v2`` and ``incidents`` page with offsets: their nextLink carries ``$skip`` and every
page is a new evaluation of the query.  Two things go wrong with deep offsets:

* Graph stops serving pages past some offset: Elastic's m365_defender integration found that
  "past a certain $skip offset the Graph security API stopped returning further pages"
  (https://github.com/elastic/integrations/issues/20234, fixed in
  https://github.com/elastic/integrations/pull/20348; graph-facts O3), and the one documented
  constraint of the security API is ``$skip`` <= 500
  (https://learn.microsoft.com/graph/api/resources/security-error-codes#constraints, [S6]).
* The set changes under the offsets: an alert updated mid-read gets a new ``lastUpdateDateTime``
  and leaves the window, so every later item moves up one offset and one is never served.

Elastic's fix advances a ``lastUpdateDateTime gt`` boundary over pages ordered by it; td-graph
cannot order: ``$orderby`` is not among the options either list page documents ("$count,
$filter, $skip, $top" for alerts_v2; plus ``$expand`` for incidents), and an unordered page's
newest timestamp is no boundary.  So the window itself is narrowed instead.

:func:`read_bounded` reads a window as a queue of contiguous slices, oldest first:

* a query follows nextLinks only while the offset it reached (items served so far) is at most
  ``spec.max_offset``; a query that stops with a nextLink left is *over full*;
* the first page's ``@odata.count`` (``$count=true``, documented for both endpoints:
  https://learn.microsoft.com/graph/api/security-list-alerts_v2,
  https://learn.microsoft.com/graph/api/security-list-incidents) says how many items the slice
  holds: more than one bounded query can read is *over full* at once;
* a query that paged (followed a nextLink) and ended with fewer distinct items than its count
  is *short*: Graph stopped early, or the set changed under the offsets;
* an over-full or short slice is split into narrower slices that are read again; what was
  already emitted is absorbed by the window's dedup keys (id + ``lastUpdateDateTime``);
* a single-page query is atomic (no offset involved): when its count still disagrees it is read
  once more, then accepted with a warning; a slice too narrow to split is read unbounded.

Why an update mid-read loses nothing: the window ends at ``now - delay`` as of the run's start,
and an update stamps ``lastUpdateDateTime`` with the time it is made, so the updated version lies
beyond the window's upper bound: this run's next window or the next run (which starts at
``done - overlap``) reads it.  Its leaving this window is what the count check sees, so the
item that moved up an offset is re-read.  (An update stamped back inside the window — a server
clock behind ours — is inside the next run's overlap.)
"""

from __future__ import annotations

import logging
import math
from collections import deque
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

__all__ = ["read_bounded", "MIN_SLICE", "BOUNDED"]

log = logging.getLogger("td_graph_plugin.collector")

# A slice narrower than this is not split (filter literals are whole seconds).
MIN_SLICE = timedelta(seconds=2)
# At most this many parts per split (a count far above the bound splits again).
MAX_PARTS = 16
# Set False only by tests, to show what the unbounded reading loses.
BOUNDED = True

_COMPLETE, _OVERFULL, _SHORT, _STOPPED = "complete", "overfull", "short", "stopped"

# handle(items) -> False when the run is stopping; params_for(lower, upper) -> the query.
Handler = Callable[[Iterable[Any]], bool]
ParamsFor = Callable[[datetime, datetime], dict[str, str]]


def read_bounded(run: Any, lower: datetime, upper: datetime, params_for: ParamsFor, handle: Handler) -> bool:
    """Read ``[lower, upper]`` through bounded queries; False when the run stopped first."""
    spec = run.spec
    top = int(params_for(lower, upper).get("$top") or 0)
    limit = (spec.max_offset or 0) + max(top, 1)  # the most one bounded query returns
    queue: deque[tuple[datetime, datetime, int]] = deque([(lower, upper, 0)])
    while queue:
        if run.stopping:
            return False
        lo, hi, tries = queue.popleft()
        splittable = hi - lo > MIN_SLICE
        outcome, count, paged = _read_slice(run, lo, hi, params_for, handle, limit if splittable else None)
        if outcome == _STOPPED:
            return False
        if outcome == _COMPLETE:
            continue
        if outcome == _SHORT and not paged:
            # One page answered with a count it did not hold: no offset was involved.
            if tries < 1:
                queue.appendleft((lo, hi, tries + 1))
            else:
                log.warning("%s/%s: %s..%s answered @odata.count %s but held fewer items; accepted",
                            run.tenant.name, spec.name, lo, hi, count)
            continue
        if not splittable:
            if tries < 1:
                queue.appendleft((lo, hi, tries + 1))
            continue
        parts = _parts(count, limit) if outcome == _OVERFULL else 2
        log.info("%s/%s: %s slice %s..%s (count %s, at most %s per query): %d narrower reads",
                 run.tenant.name, spec.name, outcome, lo, hi, count, limit, parts)
        queue.extendleft(reversed(_split(lo, hi, parts)))
    return True


def _read_slice(
    run: Any, lo: datetime, hi: datetime, params_for: ParamsFor, handle: Handler, limit: int | None
) -> tuple[str, int | None, bool]:
    """(outcome, @odata.count, followed a nextLink?) of one bounded query over ``[lo, hi]``."""
    params = params_for(lo, hi)
    params["$count"] = "true"
    id_field = run.spec.id_field
    max_offset = run.spec.max_offset or 0
    count: int | None = None
    seen: set[Any] = set()
    served = 0  # the offset the next page would start at
    pages = 0
    it = run.pages(run.url(), params)
    try:
        for page in it:
            items = page.items
            if pages == 0:
                raw = getattr(page, "raw", None) or {}
                value = raw.get("@odata.count")
                count = value if isinstance(value, int) and not isinstance(value, bool) else None
            pages += 1
            served += len(items)
            for item in items:
                try:
                    seen.add(item[id_field])
                except (KeyError, TypeError, IndexError):
                    seen.add(("no-id", served, len(seen)))
            if not handle(items):
                return _STOPPED, count, pages > 1
            if page.next_link and run.stopping:
                return _STOPPED, count, pages > 1
            if not BOUNDED or limit is None:
                continue
            if pages == 1 and count is not None and count > limit:
                return _OVERFULL, count, False
            if page.next_link and served > max_offset:
                return _OVERFULL, count, True
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
    if BOUNDED and count is not None and len(seen) < count:
        return _SHORT, count, pages > 1
    return _COMPLETE, count, pages > 1


def _parts(count: int | None, limit: int) -> int:
    if count is None:
        return 2
    return max(2, min(MAX_PARTS, math.ceil(count * 1.25 / limit)))


def _split(lo: datetime, hi: datetime, parts: int) -> list[tuple[datetime, datetime, int]]:
    step = (hi - lo) / parts
    if step < MIN_SLICE / 2:
        parts = max(2, int((hi - lo) / (MIN_SLICE / 2)))
        step = (hi - lo) / parts
    edges = [lo + step * i for i in range(parts)] + [hi]
    return [(edges[i], edges[i + 1], 0) for i in range(parts)]
