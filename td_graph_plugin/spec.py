"""``SourceSpec``: everything td-graph must know to read one Graph collection correctly.

A spec is data, not code: the collector engine reads it to build the request (version, path,
``$top``, ``$select``, the timestamp filter with only the operators the endpoint accepts),
to pace itself (throttling class), to decide what a tenant may run (permissions, licence),
and to checkpoint (mode, timestamp field, version field).  The smallest valid spec is::

    SourceSpec(name="acme.widgets", path="/acme/widgets", mode="snapshot",
               permissions=["Acme.Read.All"])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, Callable, Mapping, Sequence

from .clouds import CLOUD_NAMES
from .durations import parse_duration
from .errors import PluginError

__all__ = ["SourceSpec", "QueryShape", "DEFAULT_SHAPE", "MODES", "FILTER_OPERATORS", "THROTTLE_CLASSES"]

MODES = ("window", "delta", "snapshot")
# Lower-bound and upper-bound comparison operators an endpoint may accept on its time field.
FILTER_OPERATORS = {"lower": ("ge", "gt"), "upper": ("le", "lt")}
# Graph's service-specific throttling classes (graph-facts §0.6); see graph/ratelimit.py.
THROTTLE_CLASSES = (
    "default",
    "security",
    "secure_score",
    "identity_protection",
    "identity_reports",
    "directory",
    "intune",
    "usage_reports",
)
DEFAULT_SHAPE = "default"
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_VERSIONS = ("v1.0", "beta")


@dataclass(frozen=True)
class QueryShape:
    """One way to ask a window endpoint for a time window (issue 12, "query shapes that heal").

    A spec's ``shapes`` are tried in order: when Graph answers 400 naming a query option the
    current shape sends (``$filter``, ``$top``), the source moves to the next shape that sends
    that option differently, remembers it in the state and keeps collecting.

    :param name: shown in ``status``/``doctor`` and stored in the state.
    :param time_field: filter on this field instead of the spec's ``time_field`` (None: the spec's).
    :param filter_ops: (lower, upper) operators instead of the spec's (None: the spec's).
    :param top: ``$top`` to send instead of the source's page size; 0: send none (None: unchanged).
    :param client_side_window: send no time ``$filter``: read the whole collection and keep
        the items whose ``time_field`` lies in the window (the safe last resort when a filter
        is undocumented), one read per run.
    :param why: why the shape is safe (the documentation it rests on), for readers and ``doctor``.
    """

    name: str
    time_field: str | None = None
    filter_ops: tuple[str, str] | None = None
    top: int | None = None
    client_side_window: bool = False
    why: str = ""

    def uses(self, option: str) -> bool:
        """Does this shape send ``option`` (``$filter`` on the time field, ``$top``)?"""
        if option == "$filter":
            return not self.client_side_window
        if option == "$top":
            return self.top != 0
        return True


_DEFAULT_SHAPES = (QueryShape(DEFAULT_SHAPE),)


@dataclass(frozen=True)
class SourceSpec:
    """One Graph collection and how to collect it. Only name, path, mode, permissions are required.

    :param name: dotted source name, ``area.collection`` (it labels records, metrics and state).
    :param path: Graph path after the version, e.g. ``/auditLogs/signIns``.
    :param mode: ``window`` (time filter + overlap + dedup), ``delta`` (deltaLink) or
        ``snapshot`` (the whole collection each interval, emitted when changed).
    :param permissions: application permissions the endpoint needs, all of them.
    :param licence: capability the tenant must have (see ``licensing.CAPABILITIES``), or None.
    :param time_field: window mode: the timestamp the ``$filter`` and the checkpoint use.
    :param event_time_field: when the thing happened: the field the record's ``event_time``
        comes from (risk detections: ``activityDateTime``, while ``lastUpdatedDateTime`` stays
        the cursor).  Default (``""``): the ``time_field``; None: the object carries no
        timestamp and the collector stamps the time it observed the change.
    :param filter_ops: window mode: (lower, upper) operators the endpoint accepts, e.g.
        ``("ge", "le")`` for sign-ins, ``("gt", "lt")`` for provisioning.
    :param version_field: a field that changes when the object changes; part of the dedup key so
        an update (alerts' ``lastUpdateDateTime``) is emitted again and a replay is not.
    :param page_size: ``$top`` to send, or None to send none (user/group delta reject ``$top``).
    :param max_page_size: the endpoint's documented maximum; a setting above it is refused.
    :param doc: the Graph documentation page of the endpoint; ``doctor`` cites it when the
        source is not offered in a tenant's cloud.
    :param pager: a custom page iterator ``pager(client, spec, url, params) -> Iterator[list]``
        for endpoints that do not answer JSON pages (CSV reports).
    :param collector: the object that reads this source when no mode reads it the right way
        (``collect(run)``, ``adopt(...)``, ``uses_graph``; see ``collector.base.SourceCollector``);
        td-graph's isolation audit feed names one that reads a local store. None: the mode's.
    :param max_offset: window mode, offset-paged endpoints (``$skip`` in the nextLink): the
        deepest offset one query follows a nextLink to.  A window holding more is split into
        narrower windows (see ``collector/offsets.py``); the endpoint must support ``$count``.
        None: follow every nextLink.
    :param shapes: window mode: the query shapes to try, first = the default (see ``QueryShape``).
    :param related: ``{field: path with {id}}`` collections fetched per object and attached under
        ``field`` when the source's ``fetch_alerts`` setting is on — for incidents, whose
        ``$expand=alerts`` with a ``$filter`` fails on large tenants.
    """

    name: str
    path: str
    mode: str
    permissions: Sequence[str]
    version: str = "v1.0"
    licence: str | None = None
    time_field: str | None = None
    event_time_field: str | None = ""
    filter_ops: tuple[str, str] = ("ge", "le")
    version_field: str | None = None
    page_size: int | None = None
    max_page_size: int | None = None
    interval: str = "5m"
    throttle_class: str = "default"
    lookback: str = "24h"
    overlap: str = "15m"
    delay: str = "2m"
    window_chunk: str = "1d"
    full_resync: str = "24h"
    select: Sequence[str] = ()
    extra_filter: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    emit_unchanged: bool = False
    id_field: str = "id"
    clouds: Sequence[str] = CLOUD_NAMES
    description: str = ""
    doc: str = ""
    pager: Callable[..., Any] | None = None
    collector: Any = None
    related: Mapping[str, str] = field(default_factory=dict)
    max_offset: int | None = None
    shapes: Sequence[QueryShape] = _DEFAULT_SHAPES

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            problems.append("name must be dotted lower-case words such as 'acme.widgets'")
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            problems.append("path must start with '/' (the part after the API version)")
        if self.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if isinstance(self.permissions, str):
            object.__setattr__(self, "permissions", (self.permissions,))
        object.__setattr__(self, "permissions", tuple(self.permissions or ()))
        if not self.permissions:
            problems.append("permissions must name at least one application permission")
        if self.version not in _VERSIONS:
            problems.append(f"version must be one of {', '.join(_VERSIONS)}")
        if self.mode == "window":
            if not self.time_field:
                problems.append("a window source must name its time_field")
            ops = tuple(self.filter_ops)
            if (
                len(ops) != 2
                or ops[0] not in FILTER_OPERATORS["lower"]
                or ops[1] not in FILTER_OPERATORS["upper"]
            ):
                problems.append("filter_ops must be (ge|gt, le|lt)")
            object.__setattr__(self, "filter_ops", ops)
        if self.throttle_class not in THROTTLE_CLASSES:
            problems.append(
                f"throttle_class must be one of {', '.join(THROTTLE_CLASSES)}, "
                f"not {self.throttle_class!r}"
            )
        for name in ("interval", "lookback", "overlap", "delay", "window_chunk", "full_resync"):
            try:
                parse_duration(getattr(self, name))
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        if self.page_size is not None and (not isinstance(self.page_size, int) or self.page_size < 1):
            problems.append("page_size must be a positive integer or None")
        if (
            self.page_size is not None
            and self.max_page_size is not None
            and self.page_size > self.max_page_size
        ):
            problems.append(f"page_size {self.page_size} exceeds the endpoint maximum {self.max_page_size}")
        if self.event_time_field == "":
            object.__setattr__(self, "event_time_field", self.time_field)
        elif self.event_time_field is not None and not isinstance(self.event_time_field, str):
            problems.append("event_time_field must be a field name or None")
        object.__setattr__(self, "select", tuple(self.select or ()))
        object.__setattr__(self, "clouds", tuple(self.clouds))
        object.__setattr__(self, "params", dict(self.params or {}))
        object.__setattr__(self, "headers", dict(self.headers or {}))
        object.__setattr__(self, "related", dict(self.related or {}))
        bad_related = [p for p in self.related.values() if "{id}" not in p or not p.startswith("/")]
        if bad_related:
            problems.append(f"related paths must start with '/' and contain {{id}}: {bad_related}")
        if self.max_offset is not None and (not isinstance(self.max_offset, int) or self.max_offset < 0):
            problems.append("max_offset must be a non-negative integer or None")
        object.__setattr__(self, "shapes", tuple(self.shapes or _DEFAULT_SHAPES))
        names = [getattr(sh, "name", None) for sh in self.shapes]
        if not all(isinstance(sh, QueryShape) for sh in self.shapes) or len(set(names)) != len(names):
            problems.append("shapes must be QueryShape objects with distinct names")
        else:
            for sh in self.shapes:
                ops = sh.filter_ops
                if ops is not None and (len(ops) != 2 or ops[0] not in FILTER_OPERATORS["lower"]
                                        or ops[1] not in FILTER_OPERATORS["upper"]):
                    problems.append(f"shape {sh.name}: filter_ops must be (ge|gt, le|lt)")
        bad_clouds = [c for c in self.clouds if c not in CLOUD_NAMES]
        if bad_clouds:
            problems.append(f"clouds has unknown names {bad_clouds}")
        if problems:
            label = self.name if isinstance(self.name, str) else repr(self.name)
            raise PluginError(f"invalid source spec {label}: " + "; ".join(problems))

    # Parsed durations, so the engine never re-parses strings on its hot path.
    def duration(self, name: str, override: object = None) -> timedelta:
        return parse_duration(override if override is not None else getattr(self, name))

    @property
    def endpoint(self) -> str:
        """``GET /v1.0/auditLogs/signIns``; a source that reads no Graph API says where it reads."""
        return f"GET /{self.version}{self.path}" if self.reads_graph else f"local store {self.path}"

    @property
    def reads_graph(self) -> bool:
        """False for sources whose collector reads no Graph API (no client, no plan)."""
        return self.collector is None or bool(getattr(self.collector, "uses_graph", True))

    @property
    def area(self) -> str:
        return self.name.split(".", 1)[0]

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly view for ``td-graph sources --format json`` and the README table."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("pager", "collector"):
                continue
            value = getattr(self, f.name)
            if f.name == "shapes":
                value = [{k: getattr(sh, k) for k in ("name", "time_field", "filter_ops", "top",
                                                       "client_side_window", "why")} for sh in value]
            if isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        out["endpoint"] = self.endpoint
        return out
