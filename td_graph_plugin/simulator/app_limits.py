"""Graph's per-app-across-tenants limits in the simulator (opt-in).

Graph documents limits an app registration shares across ALL its tenants (graph-facts §0.6):
identity and access reports (sign-ins, directory audits, provisioning, registration details)
122 requests / 10 s per app.  The simulator knows the app of every Graph request from its
token (the login service records the tenant and the ``client_id`` it issued the token to,
``tokens.IssuedToken``), so tenants added with the same ``client_id``
(``sim.add_tenant(client_id=...)``) share this budget.

Off by default (other tests and benchmarks are unaffected); ``enable(sim)`` turns it on and
returns the ``AppLimits``, which records every admitted request (time, client_id, class) and
every refusal separately from the per-tenant budgets (``faults.Budgets``), so a test can
assert that no request was refused by THIS limit and measure how much of it was used.
A refusal is a 429 with a Retry-After (whole seconds, rounded up), counted in ``rejected``;
refused requests do not count against the window.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

from .responses import RequestIds, Response, throttled

if TYPE_CHECKING:  # pragma: no cover
    from .core import SimCore

__all__ = ["APP_LIMITS", "AppLimits", "Seen", "check", "disable", "enable"]

# throttle class -> (requests, window seconds) per app (client_id) across all tenants
APP_LIMITS: dict[str, tuple[int, float]] = {"identity_reports": (122, 10.0)}


class Seen(NamedTuple):
    time: float  # the simulator's clock (sim.now()) when the request was checked
    client_id: str
    throttle_class: str


class AppLimits:
    """Sliding windows per (client_id, class); thread-safe."""

    def __init__(self, limits: dict[str, tuple[int, float]] | None = None) -> None:
        self.limits = dict(APP_LIMITS if limits is None else limits)
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], deque] = {}
        self._admitted: list[Seen] = []
        self._rejected: list[Seen] = []

    def check(self, client_id: str, throttle_class: str, now: float) -> float | None:
        """None = admitted (and counted); else the Retry-After seconds of the 429."""
        limit = self.limits.get(throttle_class)
        if limit is None:
            return None
        n, window = limit
        key = ((client_id or "").lower(), throttle_class)
        with self._lock:
            log = self._windows.setdefault(key, deque())
            while log and log[0] <= now - window:
                log.popleft()
            if len(log) < n:
                log.append(now)
                self._admitted.append(Seen(now, key[0], throttle_class))
                return None
            self._rejected.append(Seen(now, key[0], throttle_class))
            wait = max(0.0, log[0] + window - now)
        return float(int(wait) + 1)

    @property
    def admitted(self) -> list[Seen]:
        with self._lock:
            return list(self._admitted)

    @property
    def rejected(self) -> list[Seen]:
        with self._lock:
            return list(self._rejected)

    def max_in_window(self, client_id: str, throttle_class: str, window: float | None = None) -> int:
        """The most admitted requests of the app and class in any ``window`` seconds (the
        class's own window by default): at most the limit, by construction."""
        w = window if window is not None else self.limits[throttle_class][1]
        times = sorted(s.time for s in self.admitted if s.client_id == client_id.lower() and s.throttle_class == throttle_class)
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] <= t - w:
                j += 1
            best = max(best, i - j + 1)
        return best

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._admitted.clear()
            self._rejected.clear()


def enable(sim: "SimCore", limits: dict[str, tuple[int, float]] | None = None) -> AppLimits:
    """Enforce the per-app limits on ``sim`` from now on; returns the recorder."""
    app = AppLimits(limits)
    sim.app_limits = app  # type: ignore[attr-defined]
    return app


def disable(sim: "SimCore") -> None:
    sim.app_limits = None  # type: ignore[attr-defined]


def check(sim: "SimCore", client_id: str, throttle_class: str, ids: RequestIds) -> Response | None:
    """The pipeline's hook: None, or the 429 that refuses the request."""
    app: AppLimits | None = getattr(sim, "app_limits", None)
    if app is None:
        return None
    retry_after = app.check(client_id, throttle_class, sim.now())
    return None if retry_after is None else throttled(429, retry_after, ids)
