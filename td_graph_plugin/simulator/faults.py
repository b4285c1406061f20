"""Injected failures and Graph's service-specific throttling budgets.

Two kinds of trouble, kept apart because tests use them differently:

* one-shot knobs (``Knobs``): "the next N requests under this path prefix" answer 429/5xx,
  break the connection, return a broken body, stall, or come slowly; or a page comes back
  empty with a nextLink.  Deterministic, so a test can assert exactly one retry happened.
* request triggers (``Triggers``): "when the Nth request under this path prefix arrives, run
  this action first" (arm a knob, revoke tokens, change the licence).  Evaluated synchronously
  in the request handler, so a fault lands exactly at request N: no test thread polls the
  request log and races the client.
* budgets (``Budgets``): the documented per-service limits (graph-facts §0.6) enforced with a
  sliding window when ``GraphSimulator.enforce_budgets`` is on, for benchmarks that must
  prove the client paces itself.  Identity Protection's 429 carries no Retry-After, as
  documented.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

__all__ = ["FAULT_KINDS", "Knobs", "Triggers", "Budget", "BUDGETS", "Budgets", "parse_fault_kind"]

# reset: close the TCP connection (RST) without a response.  truncated: 200 whose JSON body is
# cut in half (Content-Length matches the cut body).  short_read: 200 whose Content-Length
# promises more than is sent before the connection closes.  not_json: 200 text/html.
# stall: never answer (released by stop()).  slow:<seconds>: answer normally after a delay.
FAULT_KINDS = ("reset", "truncated", "short_read", "not_json", "stall", "slow:<seconds>")


def parse_fault_kind(kind: str) -> tuple[str, float]:
    if kind in ("reset", "truncated", "short_read", "not_json", "stall"):
        return kind, 0.0
    if kind.startswith("slow:"):
        try:
            seconds = float(kind[5:])
        except ValueError:
            seconds = -1.0
        if seconds >= 0:
            return "slow", seconds
    raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")


class _Queue:
    """Prefix-matched, counted entries; the oldest matching entry is used first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[list] = []  # [prefix, remaining, payload]

    def add(self, prefix: str, count: int, payload) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._entries.append([prefix, count, payload])

    def take(self, path: str):
        with self._lock:
            for entry in self._entries:
                if path.startswith(entry[0]):
                    entry[1] -= 1
                    if entry[1] <= 0:
                        self._entries.remove(entry)
                    return entry[2]
        return None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Knobs:
    def __init__(self) -> None:
        self.throttles = _Queue()  # payload: (status, retry_after)
        self.faults = _Queue()  # payload: (kind, seconds)
        self.empty_pages = _Queue()  # payload: True

    def clear(self) -> None:
        self.throttles.clear()
        self.faults.clear()
        self.empty_pages.clear()


class Triggers:
    """Actions armed to run when the Nth request (counted from arming) under a path prefix arrives.

    ``fire(path)`` runs in the request's handler thread before anything else looks at the
    request, holding one lock: the action's effects (a knob it arms, a revocation) apply to
    that very request, and a concurrent request under the prefix waits until the action is
    done.  The lock is re-entrant so an action may arm another trigger.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entries: list[list] = []  # [prefix, requests still to come before it fires, action]

    def add(self, prefix: str, n: int, action: Callable[[], object]) -> None:
        if n < 1:
            raise ValueError("n must be at least 1 (the first request under the prefix is 1)")
        with self._lock:
            self._entries.append([prefix, n, action])

    def fire(self, path: str) -> None:
        """Count this request for every matching trigger and run those that reach their N."""
        with self._lock:
            due = []
            for entry in list(self._entries):
                if path.startswith(entry[0]):
                    entry[1] -= 1
                    if entry[1] <= 0:
                        self._entries.remove(entry)
                        due.append(entry[2])
            for action in due:
                action()

    def pending(self) -> int:
        """How many triggers have not fired yet."""
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass(frozen=True)
class Budget:
    limit: int
    window: float  # seconds
    retry_after: bool  # does the service send Retry-After on its 429?
    per_app: bool  # True: per app per tenant; False: per tenant, shared by all apps


# Keys are spec.THROTTLE_CLASSES names.  "directory" (resource units) and "default" are not
# budgeted: their limits are far above what one collector can reach.
BUDGETS: dict[str, Budget] = {
    "identity_reports": Budget(5, 10.0, True, True),
    "security": Budget(150, 60.0, True, True),
    "secure_score": Budget(10000, 600.0, True, True),
    "identity_protection": Budget(1, 1.0, False, False),
    "intune": Budget(1000, 20.0, True, True),
    "usage_reports": Budget(14, 600.0, True, True),
}


class Budgets:
    """Sliding-window request logs per (tenant, app or None, class)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[tuple, deque] = {}

    def check(self, tenant_id: str, client_id: str, cls: str, now: float, scope: str | None = None) -> tuple[bool, float | None]:
        """(allowed, retry_after seconds or None).  Allowed requests are counted.

        ``scope`` separates budgets inside a class (usage reports: one per report API)."""
        budget = BUDGETS.get(cls)
        if budget is None:
            return True, None
        key = (tenant_id, client_id if budget.per_app else None, cls, scope)
        with self._lock:
            log = self._logs.setdefault(key, deque())
            while log and log[0] <= now - budget.window:
                log.popleft()
            if len(log) < budget.limit:
                log.append(now)
                return True, None
            wait = max(0.0, log[0] + budget.window - now)
        return False, (float(int(wait) + 1) if budget.retry_after else None)

    def reset(self) -> None:
        with self._lock:
            self._logs.clear()
