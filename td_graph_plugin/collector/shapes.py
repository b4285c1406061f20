"""Query shapes that heal: a window source whose query Graph rejects falls back and keeps going.

Several filter fields, operators and ``$top`` maxima are undocumented ([U] in the catalogue).
A spec lists its ``shapes`` (``spec.QueryShape``), the first being the default.  When Graph
answers 400 with an error that names a query option the current shape sends (``$filter``,
``$top``; Graph's shape: ``{"error": {"code": "BadRequest" | "Request_UnsupportedQuery" |
"invalidRequest" | "", "message": "... '$top' ..."}}``, https://learn.microsoft.com/graph/errors),
:func:`heal` moves the source to the next shape that sends that option differently, remembers
it in the state (``query_shapes``: a restart starts with it, ``status`` and ``doctor`` show it),
logs one WARNING naming the option, and the window is read again.  A 400 that names no option
the shape sends is not healed: the source fails as before.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import GraphError
from ..spec import DEFAULT_SHAPE, QueryShape, SourceSpec

__all__ = ["current_shape", "heal", "named_option", "shape_named"]

log = logging.getLogger("td_graph_plugin.collector")

# error.code values of a 400 about the query itself (the incidents $top overflow has an empty
# code: graph-facts §0.3 [O2]).
_QUERY_CODES = frozenset({"badrequest", "request_unsupportedquery", "request_badrequest", "invalidrequest", ""})


def shape_named(spec: SourceSpec, name: str | None) -> QueryShape:
    """The spec's shape called ``name``; its first (default) shape for None or an unknown name
    (a shape the catalogue no longer lists is not kept)."""
    for shape in spec.shapes:
        if shape.name == name:
            return shape
    return spec.shapes[0]


def current_shape(run: Any) -> QueryShape:
    """The shape this tenant x source reads with: the one the state remembers, else the default."""
    getter = getattr(run.state, "query_shape", None)
    name = getter(run.tenant.name, run.spec.name) if getter is not None else None
    return shape_named(run.spec, name)


def named_option(exc: BaseException) -> str | None:
    """The query option a 400 about the query names (``$top``, ``$filter``, ...), else None."""
    if not isinstance(exc, GraphError) or exc.status != 400:
        return None
    if (exc.code or "").lower() not in _QUERY_CODES:
        return None
    msg = (getattr(exc, "detail", None) or str(exc)).lower()
    if "$top" in msg or "top query" in msg or "'top'" in msg:
        return "$top"
    if "$filter" in msg or "filter clause" in msg or "'filter'" in msg:
        return "$filter"
    for option in ("$count", "$skip", "$select", "$orderby", "$expand"):
        if option in msg:
            return option
    return None


def _differs(a: QueryShape, b: QueryShape, option: str) -> bool:
    if option == "$top":
        return a.top != b.top
    if option == "$filter":
        return b.client_side_window or (a.time_field, a.filter_ops) != (b.time_field, b.filter_ops)
    return False


def heal(run: Any, shape: QueryShape, exc: BaseException) -> QueryShape | None:
    """The shape to read with after Graph rejected ``shape`` with ``exc``; None: not healable
    (the caller re-raises).  The new shape is stored with the reason and logged once."""
    option = named_option(exc)
    if option is None or not shape.uses(option):
        return None
    shapes = list(run.spec.shapes)
    start = shapes.index(shape) + 1 if shape in shapes else 0
    nxt = next((s for s in shapes[start:] if _differs(shape, s, option)), None)
    if nxt is None:
        return None
    tenant, source = run.tenant.name, run.spec.name
    code = getattr(exc, "code", "") or "no code"
    message = getattr(exc, "detail", None) or str(exc)
    reason = f"Graph rejected {option} of shape {shape.name!r} (HTTP 400, {code}): {message}"
    setter = getattr(run.state, "set_query_shape", None)
    if setter is not None:
        setter(tenant, source, nxt.name, reason)
    log.warning(
        "%s/%s: Graph rejected %s in query shape %r (HTTP 400, %s: %s); reading with shape %r from now on%s",
        tenant, source, option, shape.name, code, message, nxt.name, f" ({nxt.why})" if nxt.why else "",
    )
    run.metrics.error(tenant, source, "query_shape")
    return nxt


def is_default(shape: QueryShape) -> bool:
    return shape.name == DEFAULT_SHAPE
