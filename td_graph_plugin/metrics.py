"""Prometheus metrics, exactly the contract's names and labels.

One ``Metrics`` object per process (or per test) owns its own ``CollectorRegistry``, so two
engines in one test never share counters.  Label values come from small fixed sets only: the
tenant's configured label, the source name, a state name, an HTTP status code, an error kind.
Never a user, an object id or a URL.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics", "SOURCE_STATES"]

SOURCE_STATES = ("ok", "unlicensed", "forbidden", "failing", "disabled")
_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """The contract's metric families plus small helpers the engine and client call."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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
            "1 for the source's current state",
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
            "Now minus the newest event time committed",
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
        self._newest_event: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    # --- helpers -------------------------------------------------------------------------
    def observe_request(self, tenant: str, source: str, code: int, seconds: float) -> None:
        self.requests.labels(tenant, source, str(code)).inc()
        self.request_duration.labels(tenant, source).observe(seconds)
        if code == 429:
            self.throttled.labels(tenant, source).inc()

    def error(self, tenant: str, source: str, kind: str) -> None:
        self.errors.labels(tenant, source, kind).inc()

    def set_state(self, tenant: str, source: str, state: str) -> None:
        if state not in SOURCE_STATES:
            raise ValueError(f"unknown source state {state!r}")
        for name in SOURCE_STATES:
            self.source_state.labels(tenant, source, name).set(1 if name == state else 0)

    def success(self, tenant: str, source: str, when: float | None = None) -> None:
        self.last_success.labels(tenant, source).set(when if when is not None else time.time())
        self.refresh_lag(tenant, source)

    def committed(self, tenant: str, source: str, records: int, newest_event: float | None) -> None:
        """Called after a page's records were accepted by the output and checkpointed."""
        if records:
            self.records.labels(tenant, source).inc(records)
        if newest_event is not None:
            with self._lock:
                key = (tenant, source)
                if newest_event > self._newest_event.get(key, float("-inf")):
                    self._newest_event[key] = newest_event
        self.refresh_lag(tenant, source)

    def refresh_lag(self, tenant: str, source: str) -> None:
        newest = self._newest_event.get((tenant, source))
        if newest is not None:
            self.checkpoint_lag.labels(tenant, source).set(max(0.0, time.time() - newest))

    def token(self, tenant: str, result: str) -> None:
        self.token_requests.labels(tenant, result).inc()
