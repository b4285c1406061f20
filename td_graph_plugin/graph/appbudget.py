"""App-wide Graph budgets: the limits every tenant of one app registration shares.

Graph documents limits per app ACROSS ALL TENANTS (graph-facts §0.6,
https://learn.microsoft.com/en-us/graph/throttling-limits): identity and access reports
(sign-ins, directory audits, provisioning, registration details / authentication method
reports) 122 requests / 10 s, and any request 130,000 / 10 s.  Tenants that share a
``client_id`` share them, on one machine and across replicas; the per-tenant budgets
(``RateLimiter``, 5 / 10 s for identity reports) stay as they are.

``AppBudgets`` is the process-wide registry: one ``RateLimiter`` per client_id holding the
app-wide classes, the same sliding window as the tenants' with an explicit guard (0.5 s:
122 per 10.5 s) and, for the small identity-reports budget, an even spacing of window/limit
between admissions, so the budget is spent as a steady stream, not a burst of 122 whose
stragglers could land in Graph's next window.  A request must be admitted by both the
tenant's limiter and the app's, at the same instant: ``admit`` asks the app budget (the
limiter's ``gate``) only when the tenant has a free slot, and takes the tenant's slot only
with the app's, so neither window counts a request that was not sent then.

Across replicas (``state.url: postgresql://…``) each replica spends a slice: ``share()`` is
the replica's share of the app (the cluster coordinator's ``1 / live replicas``), read at
every admission and applied at once when it changes: no database round trip per request.
The slice of a limit L is ``floor(L * share)`` (at least 1), so the replicas' slices never
add up to more than L.  Time spent waiting for an app budget is counted in
``td_graph_app_budget_wait_seconds_total{class}`` (class = identity_reports | global).

A ``throttling.identity_reports`` override faster than the documented 5 / 10 s scales the
app-wide identity-reports limit by the same factor (``for_throttling``): it says this Graph
(a simulator, a tenant with a raised limit) allows more than documented.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .ratelimit import DEFAULT_BUDGETS, Budget, RateLimiter

__all__ = ["APP_BUDGETS", "APP_GUARD", "AppBudgets", "app_class"]

# Documented per-app-across-tenants limits (graph-facts §0.6).
APP_BUDGETS: dict[str, Budget] = {
    "identity_reports": Budget(122, 10.0),
    "global": Budget(130_000, 10.0),
}
APP_GUARD = 0.5  # seconds added to each app-wide window (122 per 10.5 s: 95% of the limit)
_PACED = ("identity_reports",)  # classes spent evenly (window / limit apart)


def app_class(throttle_class: str) -> str:
    """The app-wide class a request of ``throttle_class`` is counted in besides ``global``
    (its label in ``td_graph_app_budget_wait_seconds_total``)."""
    return throttle_class if throttle_class in APP_BUDGETS else "global"


class AppBudgets:
    """Process-wide app-wide budgets keyed by client_id; thread-safe.

    ``share``: a callable giving this process's share of each app-wide limit (0 < share <= 1;
    the cluster passes ``coordinator.share``), or a number; ``set_share`` replaces it later.
    ``clock``/``sleep``: as ``RateLimiter`` (``sleep`` is used by ``acquire`` only; ``admit``
    waits with the tenant limiter's).  ``budgets``: overrides of ``APP_BUDGETS``."""

    def __init__(
        self,
        share: Callable[[], float] | float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        *,
        budgets: Mapping[str, Budget] | None = None,
        guard: float = APP_GUARD,
    ) -> None:
        self._budgets = {**APP_BUDGETS, **dict(budgets or {})}
        self._guard = guard
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._apps: dict[str, RateLimiter] = {}
        self._share: Callable[[], float] = lambda: 1.0
        self._applied: float | None = None
        self.set_share(share)

    @classmethod
    def for_throttling(cls, throttling: Mapping[str, Any], **kw: Any) -> AppBudgets:
        """From the config's ``throttling`` overrides (objects with ``requests`` and ``per``):
        a class paced faster than documented scales its app-wide limit alike."""
        budgets = {}
        for name, app in APP_BUDGETS.items():
            o, doc = throttling.get(name), DEFAULT_BUDGETS.get(name)
            if o is None or doc is None or doc.limit is None:
                continue
            factor = (o.requests / o.per) / (doc.limit / doc.window)
            if factor > 1 and app.limit is not None:
                budgets[name] = Budget(int(app.limit * factor), app.window)
        return cls(budgets=budgets, **kw)

    # --- share ------------------------------------------------------------------------
    def set_share(self, share: Callable[[], float] | float) -> None:
        """This process's share of each app-wide limit: a number or a callable read at every
        admission (``coordinator.share``)."""
        if callable(share):
            self._share = share
        else:
            value = float(share)
            self._share = lambda: value

    def share(self) -> float:
        """The current share, clamped to (0, 1]: a ``share()`` that raises counts as 1, one
        that is not > 0 as the smallest slice (one request per window)."""
        try:
            s = float(self._share())
        except Exception:  # noqa: BLE001 - a broken callback must not stop collection
            s = 1.0
        if not s > 0:
            return 1e-9
        return min(s, 1.0)

    def limit(self, name: str) -> int:
        """The slice of app-wide class ``name`` this process may spend per window."""
        b = self._budgets[name]
        assert b.limit is not None
        return max(1, math.floor(b.limit * self.share() + 1e-9))

    def _layout(self) -> dict[str, Budget]:
        out: dict[str, Budget] = {}
        for name, b in self._budgets.items():
            n = self.limit(name)
            window = b.window + self._guard
            out[name] = Budget(n, window)
            if name in _PACED:
                out[name + ".pace"] = Budget(1, window / n)
        return out

    def _refresh(self) -> None:
        s = self.share()
        if s == self._applied:
            return
        with self._lock:
            if s == self._applied:
                return
            layout = self._layout()
            for lim in self._apps.values():
                for name, b in layout.items():
                    lim.set_budget(name, b)
            self._applied = s

    def limiter(self, client_id: str) -> RateLimiter:
        """The app's limiter (created on first use)."""
        self._refresh()
        key = (client_id or "").lower()
        with self._lock:
            lim = self._apps.get(key)
            if lim is None:
                lim = self._apps[key] = RateLimiter(self._layout(), self._clock, self._sleep, guard=0.0)
            return lim

    # --- admission ----------------------------------------------------------------------
    def gate(self, client_id: str, throttle_class: str) -> Callable[[], float]:
        """A ``RateLimiter.acquire`` gate: takes the app-wide slots a request of
        ``throttle_class`` needs (0.0) or takes none and returns the seconds to wait."""
        lim = self.limiter(client_id)
        cls = app_class(throttle_class)
        classes = ("global",) if cls == "global" else ("global", cls) + ((cls + ".pace",) if cls in _PACED else ())

        def take() -> float:
            self._refresh()
            return lim.try_acquire(*classes)

        return take

    def admit(
        self,
        client_id: str,
        throttle_class: str,
        tenant: RateLimiter,
        key: str | None = None,
        stop: threading.Event | None = None,
        metrics: Any = None,
    ) -> bool:
        """Block until the tenant's limiter and this app's budgets both admit one request of
        ``throttle_class`` and take both slots (True); False, without a slot, if ``stop`` is
        set.  The wait for the app is added to ``metrics``' app-budget wait counter."""
        label = app_class(throttle_class)

        def waited(seconds: float) -> None:
            if metrics is not None:
                metrics.app_budget_wait(label, seconds)

        return tenant.acquire(throttle_class, key, stop, gate=self.gate(client_id, throttle_class), on_gate_wait=waited)

    def acquire(self, client_id: str, throttle_class: str, stop: threading.Event | None = None) -> float | None:
        """The app's budgets alone (no tenant limiter): block until admitted and return the
        seconds waited, or None if ``stop`` was set."""
        take, t0 = self.gate(client_id, throttle_class), self._clock()
        while True:
            if stop is not None and stop.is_set():
                return None
            d = take()
            if d == 0.0:
                return self._clock() - t0
            d = 0.25 if d == float("inf") else d
            if self._sleep is not None:
                self._sleep(d)
            elif stop is not None:
                stop.wait(min(d, 0.25))
            else:
                time.sleep(d)
