"""Client-side pacing per Graph throttling class (graph-facts §0.6).

Graph's limits are per app per tenant (Identity Protection: per tenant, shared by every
app), so there is one ``RateLimiter`` per tenant.  Each class is a sliding window of
``limit`` requests per ``window`` seconds; a small guard stretches the window (5% of it, at
most 0.25 s: 5 per 10 s becomes 5 per 10.25 s, 1 per 1 s becomes 1 per 1.05 s), so small
budgets keep their burst size and the sustained rate stays just under the documented limit
(measured: ≥ 95% of the allowed rate, no 429).  Some classes also cap concurrency
(secure score: 4 in flight).  After a 429, ``penalize`` holds the whole class (or one
key of a per-key class) back for the Retry-After.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Budget", "DEFAULT_BUDGETS", "RateLimiter"]

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

    def acquire(
        self,
        throttle_class: str,
        key: str | None = None,
        stop: threading.Event | None = None,
    ) -> bool:
        """Block until this class (and key) may send one request and take the slot (True).
        Return False early, without a slot, if ``stop`` is set; do not ``release`` then."""
        while True:
            with self._cond:
                if stop is not None and stop.is_set():
                    return False
                b, bucket = self._bucket(throttle_class, key)
                now = self._clock()
                d = self._delay(b, bucket, now)
                if d == 0.0:
                    if b.limit is not None:
                        bucket.sent.append(now)
                    if b.concurrency is not None:
                        bucket.in_flight += 1
                    return True
                if d is None or self._sleep is None:
                    # Waiting for a release (notify) or for time to pass; poll ``stop``.
                    timeout = 0.25 if d is None else d
                    if stop is not None:
                        timeout = min(timeout, 0.25)
                    self._cond.wait(timeout)
                    continue
            log.debug("pacing %s: waiting %.3f s", throttle_class, d)
            self._sleep(d)

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
