"""Prometheus metrics, exactly the contract's names and labels.

One ``Metrics`` object per process (or per test) owns its own ``CollectorRegistry``, so two
engines in one test never share counters.  Label values come from small fixed sets only: the
tenant's configured label, the source name, a state name, an HTTP status code, an error kind.
Never a user, an object id or a URL.

Besides the counters, the object remembers since when each source has been ``failing`` so the
``/healthz`` endpoint (``observability.server``) can say "unhealthy" once a source has been
failing longer than ``metrics.unhealthy_after``, and it computes ``td_graph_checkpoint_lag_seconds``
at scrape time: a source whose data silently stops shows a lag that keeps growing instead of a
frozen, reassuring value.
"""

from __future__ import annotations

import copy
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import generate_latest

from . import __version__
from .status import FAILING, SOURCE_STATES

__all__ = ["Metrics", "SOURCE_STATES", "EXPORTED_METRICS", "TOKEN_RESULTS"]

TOKEN_RESULTS = ("cache", "issued", "failed")
_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

# The contract's table: exposed name -> (type, labels).  Tests and the dashboard check use it.
EXPORTED_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "td_graph_records_total": ("counter", ("tenant", "source")),
    "td_graph_requests_total": ("counter", ("tenant", "source", "code")),
    "td_graph_throttled_total": ("counter", ("tenant", "source")),
    "td_graph_request_duration_seconds": ("histogram", ("tenant", "source")),
    "td_graph_errors_total": ("counter", ("tenant", "source", "kind")),
    "td_graph_source_state": ("gauge", ("tenant", "source", "state")),
    "td_graph_last_success_timestamp_seconds": ("gauge", ("tenant", "source")),
    "td_graph_checkpoint_lag_seconds": ("gauge", ("tenant", "source")),
    "td_graph_token_requests_total": ("counter", ("tenant", "result")),
    "td_graph_isolation_actions_total": ("counter", ("tenant", "action", "result")),
    "td_graph_build_info": ("gauge", ("version",)),
    "td_graph_source_interval_seconds": ("gauge", ("tenant", "source")),
    "td_graph_cluster_replicas": ("gauge", ()),
    "td_graph_tenants_owned": ("gauge", ("replica",)),
    "td_graph_lease_takeovers_total": ("counter", ("replica",)),
    "td_graph_app_budget_wait_seconds_total": ("counter", ("class",)),
}
# Besides the table: prometheus_client's standard process collector (process_cpu_seconds_total,
# process_resident_memory_bytes, process_open_fds, process_start_time_seconds, ...), unlabelled.


def _epoch(value: float | datetime | str | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, str):
        from .timeutil import parse_time

        parsed = parse_time(value)
        return parsed.timestamp() if parsed is not None else None
    return float(value)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _WithoutCreated:
    """A view of a registry without prometheus_client's ``*_created`` series.

    They are not in the contract's table (``td_graph_records_created`` would be an extra,
    undocumented family), so the exposition leaves them out.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Any]:
        for family in self._registry.collect():
            if family.name.endswith("_created") and family.type == "gauge":
                continue
            samples = [s for s in family.samples if not s.name.endswith("_created")]
            if len(samples) != len(family.samples):
                family = copy.copy(family)
                family.samples = samples
            yield family


class Metrics:
    """The contract's metric families plus small helpers the engine and client call."""

    def __init__(self, registry: CollectorRegistry | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry or CollectorRegistry()
        self.clock = clock
        r = self.registry
        self.records = Counter(
            "td_graph_records", "Records handed to the output", ["tenant", "source"], registry=r
        )
        self.requests = Counter(
            "td_graph_requests",
            "Graph requests by HTTP status code (0 = no response)",
            ["tenant", "source", "code"],
            registry=r,
        )
        self.throttled = Counter(
            "td_graph_throttled", "Requests answered 429", ["tenant", "source"], registry=r
        )
        self.request_duration = Histogram(
            "td_graph_request_duration_seconds",
            "Graph request latency",
            ["tenant", "source"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "td_graph_errors", "Errors by kind", ["tenant", "source", "kind"], registry=r
        )
        self.source_state = Gauge(
            "td_graph_source_state",
            "1 for the source's current state (ok, unlicensed, forbidden, failing, disabled)",
            ["tenant", "source", "state"],
            registry=r,
        )
        self.last_success = Gauge(
            "td_graph_last_success_timestamp_seconds",
            "Unix time of the source's last successful collection",
            ["tenant", "source"],
            registry=r,
        )
        self.checkpoint_lag = Gauge(
            "td_graph_checkpoint_lag_seconds",
            "Seconds between now and the point up to which the source's records are committed",
            ["tenant", "source"],
            registry=r,
        )
        self.token_requests = Counter(
            "td_graph_token_requests",
            "Token acquisitions by result (cache, issued, failed)",
            ["tenant", "result"],
            registry=r,
        )
        self.isolation_actions = Counter(
            "td_graph_isolation_actions",
            "Isolation actions by result",
            ["tenant", "action", "result"],
            registry=r,
        )
        self.build_info = Gauge("td_graph_build_info", "1, labelled with td-graph's version", ["version"], registry=r)
        self.build_info.labels(__version__).set(1)
        self.interval_seconds = Gauge(
            "td_graph_source_interval_seconds",
            "The source's effective polling interval (settings included): alert rules derive staleness from it",
            ["tenant", "source"],
            registry=r,
        )
        # The cluster (state.url): set by cluster.Coordinator (replicas reads 0 on SQLite).
        self.cluster_replicas = Gauge(
            "td_graph_cluster_replicas", "Live replicas (heartbeat within cluster.lease_ttl)", registry=r
        )
        self.tenants_owned = Gauge(
            "td_graph_tenants_owned", "Tenants whose lease this replica holds", ["replica"], registry=r
        )
        self.lease_takeovers = Counter(
            "td_graph_lease_takeovers",
            "Tenants this replica took over from another replica whose lease expired",
            ["replica"],
            registry=r,
        )
        self.app_budget_waits = Counter(
            "td_graph_app_budget_wait_seconds",
            "Seconds requests waited for an app-wide Graph budget shared by the tenants of one client_id",
            ["class"],
            registry=r,
        )
        ProcessCollector(registry=r)  # CPU, memory, open files of this process (Linux /proc)
        self._newest_event: dict[tuple[str, str], float] = {}
        self._states: dict[tuple[str, str], str] = {}
        self._failing_since: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    # --- exposition -----------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (0.0.4), contract names only."""
        return generate_latest(_WithoutCreated(self.registry))  # type: ignore[arg-type]

    # --- helpers -------------------------------------------------------------------------
    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, kept: prometheus_client validates and locks on every
        ``labels()`` call (~5% of a 500-tenant pass).  Series are never removed here."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(self, tenant: str, source: str, code: int, seconds: float) -> None:
        self._child(self.requests, tenant, source, str(int(code))).inc()
        self._child(self.request_duration, tenant, source).observe(seconds)
        if code == 429:
            self._child(self.throttled, tenant, source).inc()

    def error(self, tenant: str, source: str, kind: str) -> None:
        self.errors.labels(tenant, source, kind).inc()

    def set_state(self, tenant: str, source: str, state: str) -> None:
        """Make ``state`` the source's one current state (the gauge is one-hot).

        Entering ``failing`` remembers when (a source that keeps failing keeps its first
        time); any other state forgets it.
        """
        if state not in SOURCE_STATES:
            raise ValueError(f"unknown source state {state!r}")
        key = (tenant, source)
        with self._lock:
            self._states[key] = state
            if state == FAILING:
                self._failing_since.setdefault(key, self.clock())
            else:
                self._failing_since.pop(key, None)
            for name in SOURCE_STATES:
                self._child(self.source_state, tenant, source, name).set(1 if name == state else 0)

    def success(self, tenant: str, source: str, when: float | None = None) -> None:
        self._child(self.last_success, tenant, source).set(when if when is not None else self.clock())
        self.refresh_lag(tenant, source)

    def committed(self, tenant: str, source: str, records: int, newest_event: float | None) -> None:
        """Called after a page's records were accepted by the output and checkpointed."""
        if records:
            self._child(self.records, tenant, source).inc(records)
        if newest_event is not None:
            self.checkpoint(tenant, source, newest_event)
        self.refresh_lag(tenant, source)

    def checkpoint(self, tenant: str, source: str, position: float | datetime | str | None) -> None:
        """The source's records are complete and committed up to ``position``.

        ``committed`` calls this with each page's newest event time; a window source can also
        report the upper bound of a finished window, so that a quiet tenant (no events in the
        window) does not look like a lagging one.  The position never moves back.
        """
        epoch = _epoch(position)
        if epoch is None:
            return
        key = (tenant, source)
        with self._lock:
            if epoch > self._newest_event.get(key, float("-inf")):
                self._newest_event[key] = epoch
        self.refresh_lag(tenant, source)

    def refresh_lag(self, tenant: str, source: str) -> None:
        """Make sure the lag series exists once a position is known; its value is computed
        at every scrape (now minus the position), so it grows while nothing is committed."""
        key = (tenant, source)
        if key not in self._newest_event:
            return
        clock, positions = self.clock, self._newest_event

        def lag() -> float:
            newest = positions.get(key)
            return max(0.0, clock() - newest) if newest is not None else 0.0

        self.checkpoint_lag.labels(tenant, source).set_function(lag)

    def lag(self, tenant: str, source: str) -> float | None:
        newest = self._newest_event.get((tenant, source))
        return None if newest is None else max(0.0, self.clock() - newest)

    def source_interval(self, tenant: str, source: str, seconds: float) -> None:
        """The interval a job runs at (the engine sets it when it plans the job)."""
        self.interval_seconds.labels(tenant, source).set(seconds)

    def app_budget_wait(self, cls: str, seconds: float) -> None:
        """Time a request waited for an app-wide budget (class: identity_reports | global)."""
        if seconds > 0:
            self.app_budget_waits.labels(cls).inc(seconds)

    def token(self, tenant: str, result: str) -> None:
        self.token_requests.labels(tenant, result).inc()

    def isolation(self, tenant: str, action: str, result: str) -> None:
        self.isolation_actions.labels(tenant, action, result).inc()

    # --- health ---------------------------------------------------------------------------
    def state(self, tenant: str, source: str) -> str | None:
        return self._states.get((tenant, source))

    def failing_since(self, tenant: str, source: str) -> float | None:
        return self._failing_since.get((tenant, source))

    def health(self, unhealthy_after: float) -> tuple[bool, dict[str, Any]]:
        """``(ok, detail)``: not ok once any source has been failing for ``unhealthy_after`` s.

        ``detail`` is what ``/healthz`` returns as JSON: ``status`` (ok | unhealthy),
        ``failing`` (the sources past the bound: tenant, source, since, seconds), ``pending``
        (failing, still within the bound), ``states`` (how many sources are in each state)
        and ``unhealthy_after``.
        """
        now = self.clock()
        with self._lock:
            since = dict(self._failing_since)
            states = dict(self._states)
        over: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []
        for (tenant, source), start in sorted(since.items()):
            entry = {
                "tenant": tenant,
                "source": source,
                "since": _iso(start),
                "seconds": round(max(0.0, now - start), 3),
            }
            (over if now - start >= unhealthy_after else pending).append(entry)
        counts = {name: 0 for name in SOURCE_STATES}
        for state in states.values():
            counts[state] += 1
        ok = not over
        detail: dict[str, Any] = {
            "status": "ok" if ok else "unhealthy",
            "failing": over,
            "pending": pending,
            "states": counts,
            "unhealthy_after": unhealthy_after,
        }
        return ok, detail
