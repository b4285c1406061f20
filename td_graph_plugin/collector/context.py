"""What one collection run of one tenant x source needs, and how a page leaves it.

``SourceRun.deliver`` is the only way records leave a collector: it applies the record-filter
hook, encodes the envelope, hands the page to the sink and lets the sink commit the page's
checkpoint after the output accepted it (checkpoint-after-acknowledge).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Sequence

from ..config.model import Config, SourceSettings, TenantConfig
from ..graph.jsonbody import RAW_FIELDS
from ..graph.rawitem import materialise
from ..metrics import Metrics
from ..spec import SourceSpec
from ..state import Commit, StateStore
from ..timeutil import utcnow
from .encoding import encode_record
from .resources import Resources
from .sink import Sink

__all__ = ["SourceRun", "RunStats", "make_record"]

log = logging.getLogger("td_graph_plugin.collector")


@dataclass
class RunStats:
    pages: int = 0
    records: int = 0
    dropped: int = 0
    skipped_bad: int = 0
    newest_event: datetime | None = None
    window: tuple[str | None, str | None] = (None, None)


def make_record(
    tenant: TenantConfig,
    source: str,
    obj_id: str,
    event_time: str | None,
    collected_at: str,
    data: dict[str, Any],
    removed: str | None = None,
) -> dict[str, Any]:
    """The contract's envelope; ``data`` is the Graph object unchanged."""
    record: dict[str, Any] = {
        "tenant": tenant.name,
        "tenant_id": tenant.tenant_id,
        "source": source,
        "id": obj_id,
        "event_time": event_time,
        "collected_at": collected_at,
    }
    if removed is not None:
        record["removed"] = removed
    record["data"] = data
    return record


@dataclass
class SourceRun:
    tenant: TenantConfig
    spec: SourceSpec
    settings: SourceSettings
    client: Any  # graph.client.GraphClient (duck-typed so tests can pass fakes)
    state: StateStore
    sink: Sink
    metrics: Metrics
    stop: threading.Event
    record_filter: Callable[[str, str, dict[str, Any]], bool] | None = None
    # output.format: turns the contract's envelope into the shape written (ECS, OCSF); None: raw.
    formatter: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    now: Callable[[], datetime] = utcnow
    stats: RunStats = field(default_factory=RunStats)
    # What a collector of a non-Graph source needs beyond the run: the config (paths) and the
    # engine's shared, closed-with-the-engine connections (e.g. the isolation audit store).
    config: Config | None = None
    resources: Resources = field(default_factory=Resources)

    # --- settings with the spec's defaults -------------------------------------------------
    def duration(self, name: str) -> timedelta:
        return self.spec.duration(name, getattr(self.settings, name, None))

    @property
    def page_size(self) -> int | None:
        return self.settings.page_size if self.settings.page_size is not None else self.spec.page_size

    @property
    def emit_unchanged(self) -> bool:
        if self.settings.emit_unchanged is not None:
            return self.settings.emit_unchanged
        return self.spec.emit_unchanged

    def url(self) -> str:
        return self.client.url(self.spec.version, self.spec.path)

    def pages(self, url: str, params: dict[str, str] | None = None) -> Iterator[Any]:
        """The source's pages from ``url``: its own pager (CSV reports) or Graph's JSON paging,
        always with the spec's headers and throttle class (and key, for per-report budgets)."""
        if self.spec.pager is not None:
            return self.spec.pager(self.client, self.spec, url, params)
        pages = self.client.pages(
            url,
            params=params,
            headers=dict(self.spec.headers) or None,
            source=self.spec.name,
            throttle_class=self.spec.throttle_class,
            throttle_key=self.spec.name if self.spec.throttle_class == "usage_reports" else None,
        )
        fields = self.raw_fields()
        return pages if fields is None else _raw_pages(pages, fields)

    def raw_fields(self) -> tuple[str, ...] | None:
        """Window sources read pages as RawItems (graph/rawitem.py): the fields the collector
        reads per item are decoded, every object passes through as Graph's bytes.  Delta and
        snapshot sources hash every object's canonical form, and a record-filter hook or an
        ``ecs``/``ocsf`` format needs every object as a dict: those read plain dicts."""
        spec = self.spec
        if spec.mode != "window" or spec.collector is not None:
            return None
        if self.record_filter is not None or self.formatter is not None:
            return None  # every object becomes a dict anyway: decode it once, as a dict
        names = {spec.id_field, spec.time_field, spec.version_field, spec.event_time_field, "@removed"}
        return tuple(sorted(n for n in names if n))

    def base_params(self) -> dict[str, str]:
        """The first request's query: the spec's params, ``$top``, and ``$select`` (the source's
        ``select`` setting replaces the spec's list)."""
        params = dict(self.spec.params)
        if self.page_size is not None:
            params["$top"] = str(self.page_size)
        select = getattr(self.settings, "select", None) or self.spec.select
        if select:
            params["$select"] = ",".join(select)
        return params

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    # --- delivery ------------------------------------------------------------------------
    def deliver(
        self, records: Sequence[dict[str, Any]], commit: Commit, *, checkpoint: datetime | None = None,
        lines: list[bytes] | None = None,
    ) -> None:
        """The only way out of a collector: format, encode, hand to the sink; the sink commits
        ``commit`` once the output accepted the lines.  ``records`` were admitted (``admit``).

        An empty successful commit closes a read (a finished window, a full sweep) and is not
        counted as a page; ``checkpoint`` is the position the source is then complete up to
        (lag metrics), when it has one.  ``lines``: the page's record lines already encoded
        (the window collector's per-page path, no hook and no format), ``records`` then empty.
        """
        encoded = lines is not None
        if lines is None:
            lines = []
        fmt = self.formatter
        for record in records:
            if fmt is not None:
                record = fmt(materialise(record))
            try:
                lines.append(encode_record(record) + b"\n")  # a RawItem: Graph's bytes (encoding.py)
            except RecursionError:  # nested beyond any encoder: a bad item, not a failing source
                self.skip_bad(f"{record.get('id')!r} is nested too deeply to encode")
        newest = commit.newest_event
        count = len(lines)
        tenant, source, metrics = self.tenant.name, self.spec.name, self.metrics

        def committed() -> None:
            metrics.committed(tenant, source, count, newest)
            if checkpoint is not None:
                metrics.checkpoint(tenant, source, checkpoint)

        self.sink.deliver(lines, commit, committed)
        if records or (encoded and lines) or not commit.success:
            self.stats.pages += 1
        self.stats.records += count

    def graph_now(self) -> datetime | None:
        """Graph's clock (its last ``Date`` header, extrapolated), None before any answer."""
        return self.client.server_clock.now() if self.client is not None else None

    def admit(self, record: dict[str, Any]) -> bool:
        """Apply the ``td_graph_filter_record`` hooks (which may edit the record); False: drop it.

        Collectors call this before they derive what they store from a record (content hashes),
        so the state describes the data as written — what crash recovery reads back."""
        keep = self.record_filter
        if keep is None:
            return True
        if keep(self.tenant.name, self.spec.name, materialise(record)):  # hooks see plain dicts
            return True
        self.stats.dropped += 1
        return False

    def note_event_time(self, dt: datetime | None) -> None:
        if dt is not None and (self.stats.newest_event is None or dt > self.stats.newest_event):
            self.stats.newest_event = dt

    def collected_at(self) -> str:
        """Milliseconds, as the contract's example (``2026-11-26T10:02:03.123Z``)."""
        now = self.now().astimezone(timezone.utc)
        if now.microsecond // 1000 == 0:
            return now.strftime("%Y-%m-%dT%H:%M:%SZ")
        return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"

    def skip_bad(self, reason: str) -> None:
        """A single malformed item: counted and logged, the rest of the page goes on."""
        self.stats.skipped_bad += 1
        self.metrics.error(self.tenant.name, self.spec.name, "bad_item")
        log.warning("%s/%s: skipped one item: %s", self.tenant.name, self.spec.name, reason)


def _raw_pages(pages: Iterator[Any], fields: tuple[str, ...]) -> Iterator[Any]:
    """``pages``, each read (and decoded, on this thread or the prefetch thread it starts)
    with ``RAW_FIELDS`` set: its items come as RawItems where the page allows."""
    try:
        while True:
            token = RAW_FIELDS.set(fields)
            try:
                page = next(pages)
            except StopIteration:
                return
            finally:
                RAW_FIELDS.reset(token)
            yield page
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()
