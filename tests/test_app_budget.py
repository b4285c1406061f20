"""App-wide Graph budgets (issue 15 item 3): tenants of one client_id share Graph's per-app limits.

Unit tests drive ``AppBudgets.admit`` with the tenants' own ``RateLimiter``s on one fake clock
(``sleep`` only advances time): deterministic, no thread races.  The test with real components
(``td-graph run`` processes against the simulator enforcing 122 / 10 s per app) is at the end.
"""

from __future__ import annotations

import threading
from functools import partial

import pytest

from td_graph_plugin.config.model import ThrottleOverride
from td_graph_plugin.graph.appbudget import APP_GUARD, AppBudgets, app_class
from td_graph_plugin.graph.ratelimit import Budget, RateLimiter
from td_graph_plugin.metrics import Metrics
from tests.fakes import FakeClock as _FakeClock

FakeClock = partial(_FakeClock, 100.0)
APP_A = "aaaaaaaa-0000-0000-0000-00000000000a"
APP_B = "bbbbbbbb-0000-0000-0000-00000000000b"


def max_in(times: list[float], window: float) -> int:
    """The most timestamps in any half-open ``window``-second span (Graph's sliding window)."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


class Fleet:
    """Tenants (each with its own default-budget limiter) on apps, one fake clock."""

    def __init__(self, clock: _FakeClock, apps: AppBudgets, tenants: dict[str, str]) -> None:
        self.clock, self.apps = clock, apps
        self.tenants = tenants  # tenant -> client_id
        self.limiters = {t: RateLimiter(clock=clock.now, sleep=clock.sleep) for t in tenants}
        self.sent: dict[str, list[float]] = {cid: [] for cid in set(tenants.values())}
        self.metrics = Metrics()

    def round_robin(self, n: int, throttle_class: str = "identity_reports") -> None:
        names = list(self.tenants)
        for k in range(n):
            t = names[k % len(names)]
            assert self.apps.admit(self.tenants[t], throttle_class, self.limiters[t], metrics=self.metrics)
            self.sent[self.tenants[t]].append(self.clock.t)

    def wait_seconds(self, cls: str) -> float:
        return self.metrics.registry.get_sample_value("td_graph_app_budget_wait_seconds_total", {"class": cls}) or 0.0


def rate(times: list[float], skip: int = 0) -> float:
    """Requests per second from the ``skip``-th request to the last (steady state)."""
    t = sorted(times)[skip:]
    return (len(t) - 1) / (t[-1] - t[0])


def test_forty_tenants_on_one_app_never_exceed_122_per_10_s():
    clock = FakeClock()
    fleet = Fleet(clock, AppBudgets(clock=clock.now, sleep=clock.sleep), {f"t{i:02d}": APP_A for i in range(40)})
    fleet.round_robin(1000)
    sent = fleet.sent[APP_A]
    assert max_in(sent, 10.0) <= 122
    assert max_in(sent, 10.0 + APP_GUARD) <= 122
    # The budget is used: >= 90% of 12.2 requests/s in steady state (the guard costs ~5%).
    assert rate(sent, skip=122) >= 0.9 * 12.2
    # Spent as a stream, not a burst of 122: one request every window / limit.
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert min(gaps) >= (10.0 + APP_GUARD) / 122 - 1e-9
    # The per-tenant budget (5 / 10 s) still holds for each tenant.
    for lim_name, lim in fleet.limiters.items():
        assert lim.budget("identity_reports").limit == 5, lim_name
    per_tenant = {t: sent[i::40] for i, t in enumerate(fleet.tenants)}
    assert all(max_in(ts, 10.0) <= 5 for ts in per_tenant.values())


def test_without_app_budgets_forty_tenants_would_exceed_the_app_limit():
    """The control: the per-tenant limiters alone let 40 tenants send 200 per 10 s."""
    clock = FakeClock()
    limiters = [RateLimiter(clock=clock.now, sleep=clock.sleep) for _ in range(40)]
    sent = []
    for k in range(600):
        limiters[k % 40].acquire("identity_reports")
        sent.append(clock.t)
    assert max_in(sent, 10.0) > 122


def test_two_client_ids_are_independent():
    clock = FakeClock()
    tenants = {f"a{i}": APP_A for i in range(30)} | {f"b{i}": APP_B for i in range(30)}
    fleet = Fleet(clock, AppBudgets(clock=clock.now, sleep=clock.sleep), tenants)
    # Interleave the apps: a0 b0 a1 b1 ...
    fleet.tenants = dict(pair for i in range(30) for pair in ((f"a{i}", APP_A), (f"b{i}", APP_B)))
    fleet.round_robin(1200)
    for cid in (APP_A, APP_B):
        assert max_in(fleet.sent[cid], 10.0) <= 122
        assert len(fleet.sent[cid]) == 600
    # Together they send twice one app's budget: neither waited for the other.
    both = fleet.sent[APP_A] + fleet.sent[APP_B]
    assert rate(both, skip=244) >= 2 * 0.9 * 12.2
    assert max_in(both, 10.0) > 122


def test_share_half_halves_the_budget_and_follows_changes():
    clock = FakeClock()
    share = {"value": 0.5}
    apps = AppBudgets(lambda: share["value"], clock=clock.now, sleep=clock.sleep)
    assert apps.limit("identity_reports") == 61 and apps.limit("global") == 65_000
    fleet = Fleet(clock, apps, {f"t{i:02d}": APP_A for i in range(40)})
    fleet.round_robin(400)
    half = list(fleet.sent[APP_A])
    assert max_in(half, 10.0) <= 61
    assert rate(half, skip=61) >= 0.9 * 6.1
    # A replica leaves: the share becomes 1 and the whole budget is used from the next admission.
    share["value"] = 1.0
    fleet.round_robin(600)
    whole = fleet.sent[APP_A][400:]
    assert max_in(fleet.sent[APP_A], 10.0) <= 122
    assert rate(whole, skip=122) >= 0.9 * 12.2
    # One joins: a third each, floor(122 / 3) = 40, never more in any window from then on.
    share["value"] = 1 / 3
    start = len(fleet.sent[APP_A])
    fleet.round_robin(300)
    later = [t for t in fleet.sent[APP_A][start:] if t >= fleet.sent[APP_A][start] + 10.5]
    assert apps.limit("identity_reports") == 40
    assert max_in(later, 10.0) <= 40


def test_set_share_for_the_cluster_wiring():
    apps = AppBudgets()
    assert apps.share() == 1.0 and apps.limit("identity_reports") == 122
    apps.set_share(lambda: 0.25)
    assert apps.limit("identity_reports") == 30
    apps.set_share(0.5)
    assert apps.limit("identity_reports") == 61
    apps.set_share(lambda: 1 / 0)  # a broken callback does not stop collection: the whole budget
    assert apps.share() == 1.0
    apps.set_share(0)  # never zero: the smallest slice is one request per window
    assert apps.limit("identity_reports") == 1


def test_the_wait_counter_grows_with_the_time_spent_waiting():
    clock = FakeClock()
    fleet = Fleet(clock, AppBudgets(clock=clock.now, sleep=clock.sleep), {f"t{i:02d}": APP_A for i in range(40)})
    fleet.round_robin(40)
    first = fleet.wait_seconds("identity_reports")
    assert first > 0  # even spacing: the 2nd request of the stream already waited
    fleet.round_robin(400)
    later = fleet.wait_seconds("identity_reports")
    assert later > first
    # Every second of fake time passed was spent waiting for the app (no tenant was ever full).
    assert later == pytest.approx(clock.t - 100.0)
    assert fleet.wait_seconds("global") == 0
    text = fleet.metrics.exposition().decode()
    assert 'td_graph_app_budget_wait_seconds_total{class="identity_reports"}' in text


def test_every_request_counts_against_the_global_app_budget():
    clock = FakeClock()
    apps = AppBudgets(clock=clock.now, sleep=clock.sleep, budgets={"global": Budget(10, 10.0)})
    fleet = Fleet(clock, apps, {f"t{i}": APP_A for i in range(4)})
    fleet.round_robin(30, throttle_class="security")
    assert max_in(fleet.sent[APP_A], 10.0) <= 10
    assert fleet.wait_seconds("global") > 0
    assert app_class("security") == "global" and app_class("identity_reports") == "identity_reports"


def test_a_refused_app_slot_leaves_no_tenant_slot_behind():
    """Both budgets admit a request at the same instant: while the app makes a tenant wait, the
    tenant's window holds nothing, and the slot it takes is stamped with the real send time."""
    clock = FakeClock()
    apps = AppBudgets(clock=clock.now, sleep=clock.sleep, budgets={"identity_reports": Budget(2, 10.0)})
    lim = RateLimiter(clock=clock.now, sleep=clock.sleep)
    other = RateLimiter(clock=clock.now, sleep=clock.sleep)
    for _ in range(2):
        assert apps.admit(APP_A, "identity_reports", other)
    t_before = clock.t
    assert apps.admit(APP_A, "identity_reports", lim)  # waits for the app, not for itself
    assert clock.t > t_before
    stamps = list(lim._bucket("identity_reports", None)[1].sent)
    assert stamps == [clock.t]


def test_admit_returns_early_on_stop_without_a_slot():
    clock = FakeClock()
    stop = threading.Event()

    def sleep(s: float) -> None:
        clock.sleep(s)
        stop.set()

    apps = AppBudgets(clock=clock.now, sleep=sleep, budgets={"identity_reports": Budget(1, 10.0)})
    lim = RateLimiter(clock=clock.now, sleep=sleep)
    assert apps.admit(APP_A, "identity_reports", lim, stop=stop)
    m = Metrics()
    assert not apps.admit(APP_A, "identity_reports", lim, stop=stop, metrics=m)
    assert len(lim._bucket("identity_reports", None)[1].sent) == 1
    # The time it did wait is still counted.
    assert m.registry.get_sample_value("td_graph_app_budget_wait_seconds_total", {"class": "identity_reports"}) > 0


def test_standalone_acquire_waits_for_the_app_alone():
    clock = FakeClock()
    apps = AppBudgets(clock=clock.now, sleep=clock.sleep, budgets={"identity_reports": Budget(3, 10.0)})
    waits = [apps.acquire(APP_A, "identity_reports") for _ in range(4)]
    assert waits[0] == 0.0 and all(w > 0 for w in waits[1:])
    assert apps.acquire(APP_B, "identity_reports") == 0.0


def test_a_faster_configured_pace_scales_the_app_budget():
    """``throttling.identity_reports`` faster than documented (the simulator configs): the app
    budget scales by the same factor; the documented or a slower pace keeps 122."""
    assert AppBudgets.for_throttling({}).limit("identity_reports") == 122
    slow = {"identity_reports": ThrottleOverride(requests=3, per=10.0)}
    assert AppBudgets.for_throttling(slow).limit("identity_reports") == 122
    fast = {"identity_reports": ThrottleOverride(requests=10000, per=10.0)}
    assert AppBudgets.for_throttling(fast).limit("identity_reports") == 122 * 2000
    assert AppBudgets.for_throttling(fast).limit("global") == 130_000


# --- with real components -------------------------------------------------------------------
# 40 simulated tenants on ONE app registration backfill their sign-ins with td-graph's default
# pacing (5 / 10 s per tenant: 40 tenants could send 195 per 10 s) against the simulator, which
# enforces Graph's 122 identity-report requests / 10 s per app across tenants (and the per-tenant
# budgets).  From the simulator's log of admitted requests: no 429 at all, and >= 90% of the app
# budget used over the steady state (after the first window, up to the last request).

N_TENANTS = 40
SIGN_INS_PER_TENANT = 600  # 30 pages of 20: ~1,200 requests, ~100 s of budget: never runs dry
PAGE_SIZE = 20
RUN_SECONDS = 45
STEADY_AFTER = 11.0  # seconds skipped at the start (tokens, plans, the first window)
APP_SECRET = "app-budget-secret~" + "x" * 18


@pytest.fixture
def shared_app(tmp_path):
    import time as _time

    from td_graph_plugin.simulator import GraphSimulator, app_limits

    client_id = "cccccccc-0000-4000-8000-0000000000c1"
    with GraphSimulator(workdir=str(tmp_path / "sim")) as sim:
        now = _time.time()
        small = {"users": 20, "sign_ins": 0, "directory_audits": 0, "alerts": 0, "groups": 2, "devices": 2}
        tenants = []
        for i in range(N_TENANTS):
            t = sim.add_tenant(profile="e5", client_id=client_id, client_secret=APP_SECRET, seed=i, volumes=small)
            t.add_sign_ins(SIGN_INS_PER_TENANT, start=now - 23 * 3600, end=now - 600)
            tenants.append(t)
        sim.enforce_budgets = True  # the per-tenant budgets too (5 / 10 s identity reports)
        limits = app_limits.enable(sim)
        yield sim, tenants, client_id, limits


def budget_config(sim, tenants, tmp_path, name: str, *, state: dict, extra: dict | None = None) -> str:
    import yaml

    cfg = {
        "tenants": [
            {"name": f"t{i:02d}", "tenant_id": t.tenant_id, "client_id": t.client_id,
             "client_secret": "${TD_GRAPH_APP_SECRET}", "login_endpoint": sim.base_url,
             "graph_endpoint": sim.base_url, "ca_bundle": sim.ca_path}
            for i, t in enumerate(tenants)
        ],
        "sources": {"include": ["audit_logs.sign_ins"],
                    "settings": {"audit_logs.sign_ins": {"page_size": PAGE_SIZE}}},
        "state": state,
        "output": {"type": "file", "path": str(tmp_path / f"{name}.ndjson")},
        "engine": {"workers": N_TENANTS + 8},  # every tenant collects at once: the app limit binds
        # No ``throttling``: td-graph's default pacing, the documented budgets.
        **(extra or {}),
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def start_run(cfg: str, log_path, env_extra: dict | None = None):
    import os
    import subprocess
    import sys

    env = dict(os.environ, TD_GRAPH_APP_SECRET=APP_SECRET, **(env_extra or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "td_graph_plugin.cli.main", "run", "-c", cfg],
        stdout=subprocess.DEVNULL, stderr=open(log_path, "wb"), stdin=subprocess.DEVNULL, env=env,
    )


def stop_runs(procs) -> None:
    import signal
    import subprocess

    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hang is a failure below
            p.kill()
            p.wait()


def assert_budget_used_and_never_exceeded(sim, limits, client_id: str) -> dict:
    from td_graph_plugin.simulator.app_limits import APP_LIMITS

    limit, window = APP_LIMITS["identity_reports"]
    statuses = [r.status for r in sim.requests if r.path.startswith("/v1.0/auditLogs/signIns")]
    assert limits.rejected == [], f"{len(limits.rejected)} requests refused by the per-app limit"
    per_tenant_429 = statuses.count(429)  # refused by a tenant's own 5 / 10 s budget, not the app's
    times = sorted(s.time for s in limits.admitted if s.client_id == client_id)
    assert max_in(times, window) <= limit
    t0, t1 = times[0] + STEADY_AFTER, times[-1]
    assert t1 - t0 >= 20, f"steady state too short to measure ({t1 - t0:.1f} s)"
    n = sum(1 for t in times if t0 <= t <= t1)
    used = n / (limit / window * (t1 - t0))
    summary = {"per_tenant_429": per_tenant_429, "requests": len(times), "steady_s": round(t1 - t0, 1), "steady_requests": n, "used": round(used, 4),
               "max_in_window": max_in(times, window)}
    assert used >= 0.90, summary
    return summary


@pytest.mark.slow
def test_forty_tenants_one_app_one_process_against_the_enforced_app_limit(shared_app, tmp_path):
    import time as _time
    import urllib.request

    sim, tenants, client_id, limits = shared_app
    port = _free_port()
    cfg = budget_config(sim, tenants, tmp_path, "one", state={"path": str(tmp_path / "state.db")},
                        extra={"metrics": {"listen": f"127.0.0.1:{port}"}})
    proc = start_run(cfg, tmp_path / "one.log")
    try:
        _time.sleep(RUN_SECONDS)
        assert proc.poll() is None, (tmp_path / "one.log").read_text()[-3000:]
        scrape = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        stop_runs([proc])
    summary = assert_budget_used_and_never_exceeded(sim, limits, client_id)
    print("one process:", summary)
    assert summary["per_tenant_429"] == 0
    waited = [line for line in scrape.splitlines()
              if line.startswith('td_graph_app_budget_wait_seconds_total{class="identity_reports"}')]
    assert waited and float(waited[0].split()[-1]) > 0, "the wait for the app budget is shown"


@pytest.mark.slow
def test_forty_tenants_one_app_two_replicas_share_the_app_limit(shared_app, tmp_path, pg_url):
    """Issue 15's app budget test: 2 ``td-graph run`` replicas on one PostgreSQL state; each
    spends its share (1 / live replicas) of the app budget, together never more than it."""
    import time as _time

    sim, tenants, client_id, limits = shared_app
    procs = []
    try:
        for name in ("r1", "r2"):
            cfg = budget_config(sim, tenants, tmp_path, name, state={"url": pg_url},
                                extra={"cluster": {"replica": name, "lease_ttl": "6s"}})
            procs.append(start_run(cfg, tmp_path / f"{name}.log"))
        _time.sleep(RUN_SECONDS + 5)
        for p, name in zip(procs, ("r1", "r2")):
            assert p.poll() is None, (tmp_path / f"{name}.log").read_text()[-3000:]
    finally:
        stop_runs(procs)
    summary = assert_budget_used_and_never_exceeded(sim, limits, client_id)
    print("two replicas:", summary)
    # A tenant handed over when r2 joins (r1 claimed all 40 first) may meet one 429 from its own
    # 5 / 10 s budget: the new owner's limiter has not seen the old owner's last requests.  At
    # most one per handed-over tenant, each retried after its Retry-After; never the app's.
    assert summary["per_tenant_429"] <= N_TENANTS // 2
    for n in ("r1", "r2"):  # both replicas collected
        out = tmp_path / f"{n}.ndjson"
        assert out.exists() and out.stat().st_size > 0, f"{n} wrote nothing"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
