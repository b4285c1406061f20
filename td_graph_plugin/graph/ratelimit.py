"""Client-side pacing per Graph throttling class (graph-facts §0.6).

Graph's limits are per app per tenant (Identity Protection: per tenant, shared by every
app), so there is one ``RateLimiter`` per tenant.  Each class is a sliding window of
``limit`` requests per ``window`` seconds; a small guard stretches the window (5% of it, at
most 0.25 s: 5 per 10 s becomes 5 per 10.25 s, 1 per 1 s becomes 1 per 1.05 s), so small
budgets keep their burst size and the sustained rate stays just under the documented limit
(measured: ≥ 95% of the allowed rate, no 429).  Some classes also cap concurrency
(secure score: 4 in flight).  After a 429, ``penalize`` holds the whole class (or one
key of a per-key class) back for the Retry-After.

``acquire`` may be given a ``gate``: a second limiter that must admit the same request at the
same instant (the app-wide budgets of ``appbudget.AppBudgets``, shared by every tenant of one
``client_id``).  The gate is asked only when this limiter has a free slot, under this limiter's
lock, and this slot is taken only when the gate took its own: neither window ever holds a
request that was not sent at that moment.

``retry_floor`` is the least wait before a retry after a 429 or 503 without ``Retry-After``:
the class's documented window (graph-facts §0.6), whatever pace the configuration chose.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Budget", "DEFAULT_BUDGETS", "RateLimiter", "retry_floor"]

log = logging.getLogger("td_graph_plugin.graph.ratelimit")

GUARD_FRACTION = 0.05  # the window is stretched by this share of it, at most ``guard`` seconds


@dataclass(frozen=True)
class Budget:
    limit: int | None  # requests per window; None = unlimited
    window: float  # seconds
    concurrency: int | None = None  # max requests in flight; None = no cap
    per_key: bool = False  # a separate window per key (usage reports: per report)


DEFAULT_BUDGETS: dict[str, Budget] = {
    # The global limit is 130,000 req / 10 s per app across tenants: pace loosely.
    "default": Budget(2000, 10.0),
    "security": Budget(150, 60.0),
    "secure_score": Budget(10000, 600.0, concurrency=4),
    "identity_protection": Budget(1, 1.0),  # per tenant, shared by all apps, no Retry-After
    "identity_reports": Budget(5, 10.0),
    # The directory bucket counts ResourceUnits (3,500-8,000 RU / 10 s); a request costs 1-5.
    "directory": Budget(1500, 10.0),
    "intune": Budget(1000, 20.0),
    "usage_reports": Budget(14, 600.0, per_key=True),  # per report API
}


def retry_floor(throttle_class: str) -> float:
    """The least wait before retrying a 429 or 503 that carried no ``Retry-After``: one
    documented window of the class (Identity Protection 1 s, identity reports 10 s, security
    60 s, Intune 20 s, usage reports 600 s; unknown classes: the default class's 10 s).  A
    sliding window has forgotten every request of the throttled burst after one window, so the
    retry cannot be refused for the same reason.  The documented window, not the configured
    pace: a ``throttling`` override loosens pacing, it does not change what a 429 means."""
    return DEFAULT_BUDGETS.get(throttle_class, DEFAULT_BUDGETS["default"]).window


@dataclass
class _Bucket:
    sent: deque = field(default_factory=deque)
    in_flight: int = 0
    penalty_until: float = float("-inf")


class RateLimiter:
    """Thread-safe pacing of requests per throttling class (and key for per-key classes)."""

    def __init__(
        self,
        budgets: dict[str, Budget | tuple] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        *,
        guard: float = 0.25,
    ) -> None:
        if guard < 0:
            raise ValueError("guard must be >= 0")
        self._budgets = dict(DEFAULT_BUDGETS)
        for name, b in (budgets or {}).items():
            # A Budget, or its fields as a tuple: (limit, window[, concurrency[, per_key]]).
            self._budgets[name] = b if isinstance(b, Budget) else Budget(*b)
        self._guard = guard
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._buckets: dict[tuple[str, str | None], _Bucket] = {}
        self._warned: set[str] = set()

    # ------------------------------------------------------------------------------------
    def set_budget(self, throttle_class: str, budget: Budget) -> None:
        """Replace one class's budget (the app-wide budgets follow the replica's share).  A
        lower limit takes effect at once: the requests already in the window count."""
        with self._cond:
            self._budgets[throttle_class] = budget
            self._cond.notify_all()

    def budget(self, throttle_class: str) -> Budget:
        b = self._budgets.get(throttle_class)
        if b is None:
            if throttle_class not in self._warned:
                self._warned.add(throttle_class)
                log.warning("unknown throttling class %r: using the default budget", throttle_class)
            b = self._budgets["default"]
        return b

    def _bucket(self, throttle_class: str, key: str | None) -> tuple[Budget, _Bucket]:
        b = self.budget(throttle_class)
        name = throttle_class if throttle_class in self._budgets else "default"
        bkey = (name, key if b.per_key else None)
        bucket = self._buckets.get(bkey)
        if bucket is None:
            bucket = self._buckets[bkey] = _Bucket()
        return b, bucket

    def _delay(self, b: Budget, bucket: _Bucket, now: float) -> float | None:
        """Seconds until a slot frees up; 0 = go now; None = wait for a release."""
        window = b.window + min(self._guard, b.window * GUARD_FRACTION)
        while bucket.sent and bucket.sent[0] <= now - window:
            bucket.sent.popleft()
        if bucket.penalty_until > now:
            return bucket.penalty_until - now
        if b.limit is not None and len(bucket.sent) >= b.limit:
            return max(bucket.sent[0] + window - now, 1e-3)
        if b.concurrency is not None and bucket.in_flight >= b.concurrency:
            return None
        return 0.0

    def delay(self, throttle_class: str, key: str | None = None) -> float:
        """How long an ``acquire`` would wait right now (0 when a slot is free; inf when only
        a release can free one).  Does not take a slot."""
        with self._cond:
            b, bucket = self._bucket(throttle_class, key)
            d = self._delay(b, bucket, self._clock())
            return float("inf") if d is None else d

    @staticmethod
    def _take(b: Budget, bucket: _Bucket, now: float) -> None:
        if b.limit is not None:
            bucket.sent.append(now)
        if b.concurrency is not None:
            bucket.in_flight += 1

    def try_acquire(self, *throttle_classes: str, key: str | None = None) -> float:
        """Take a slot in every one of ``throttle_classes`` at once if all have one free now
        (0.0); otherwise take nothing and return how long until they might (inf when only a
        release can free one)."""
        with self._cond:
            now = self._clock()
            parts = [self._bucket(c, key) for c in throttle_classes]
            wait = 0.0
            for b, bucket in parts:
                d = self._delay(b, bucket, now)
                wait = max(wait, float("inf") if d is None else d)
            if wait == 0.0:
                for b, bucket in parts:
                    self._take(b, bucket, now)
            return wait

    def acquire(
        self,
        throttle_class: str,
        key: str | None = None,
        stop: threading.Event | None = None,
        *,
        gate: Callable[[], float] | None = None,
        on_gate_wait: Callable[[float], object] | None = None,
    ) -> bool:
        """Block until this class (and key) may send one request and take the slot (True).
        Return False early, without a slot, if ``stop`` is set; do not ``release`` then.

        ``gate`` (optional) is asked once this class has a free slot: it takes its own slot and
        returns 0.0, or takes nothing and returns the seconds to wait; the slot here is taken
        only with the gate's.  ``on_gate_wait(seconds)`` is told the time spent waiting for the
        gate (this limiter's clock), once, when the slot is taken or ``stop`` ends the wait."""
        gate_wait = 0.0
        try:
            while True:
                gated = False
                with self._cond:
                    if stop is not None and stop.is_set():
                        return False
                    b, bucket = self._bucket(throttle_class, key)
                    now = self._clock()
                    d = self._delay(b, bucket, now)
                    if d == 0.0 and gate is not None:
                        d = gate()
                        gated = d > 0.0
                        d = None if d == float("inf") else d
                    if d == 0.0:
                        self._take(b, bucket, now)
                        return True
                    if d is None or self._sleep is None:
                        # Waiting for a release (notify) or for time to pass; poll ``stop``.
                        timeout = 0.25 if d is None else d
                        if stop is not None:
                            timeout = min(timeout, 0.25)
                        self._cond.wait(timeout)
                        if gated:
                            gate_wait += self._clock() - now
                        continue
                log.debug("pacing %s: waiting %.3f s%s", throttle_class, d, " (app budget)" if gated else "")
                self._sleep(d)
                if gated:
                    gate_wait += self._clock() - now
        finally:
            if gate_wait > 0 and on_gate_wait is not None:
                on_gate_wait(gate_wait)

    def release(self, throttle_class: str, key: str | None = None) -> None:
        with self._cond:
            b, bucket = self._bucket(throttle_class, key)
            if b.concurrency is not None and bucket.in_flight > 0:
                bucket.in_flight -= 1
                self._cond.notify_all()

    def penalize(self, throttle_class: str, seconds: float, key: str | None = None) -> None:
        """After a 429: nobody in this class (or key, for per-key classes) sends before
        ``seconds`` from now."""
        with self._cond:
            b, bucket = self._bucket(throttle_class, key)
            until = self._clock() + max(0.0, float(seconds))
            if until > bucket.penalty_until:
                bucket.penalty_until = until
            self._cond.notify_all()
