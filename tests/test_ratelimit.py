"""RateLimiter pacing with a fake clock."""

from __future__ import annotations

import threading
import time
from functools import partial

import pytest

from td_graph_plugin.graph.ratelimit import DEFAULT_BUDGETS, Budget, RateLimiter
from tests.fakes import FakeClock as _FakeClock

FakeClock = partial(_FakeClock, 500.0)


@pytest.fixture
def clock():
    return FakeClock()


def test_budgets_follow_graph_facts():
    b = DEFAULT_BUDGETS
    assert (b["security"].limit, b["security"].window) == (150, 60)
    assert (b["secure_score"].limit, b["secure_score"].window, b["secure_score"].concurrency) == (10000, 600, 4)
    assert (b["identity_protection"].limit, b["identity_protection"].window) == (1, 1)
    assert (b["identity_reports"].limit, b["identity_reports"].window) == (5, 10)
    assert (b["intune"].limit, b["intune"].window) == (1000, 20)
    assert (b["usage_reports"].limit, b["usage_reports"].window, b["usage_reports"].per_key) == (14, 600, True)
    assert b["directory"].limit and b["directory"].window == 10


def test_sixth_identity_reports_request_waits(clock):
    rl = RateLimiter(clock=clock.now, sleep=clock.sleep)
    for _ in range(5):
        rl.acquire("identity_reports")
    assert clock.sleeps == []
    rl.acquire("identity_reports")
    assert len(clock.sleeps) == 1
    # 5 per 10 s, the window stretched by its guard (5%, at most 0.25 s): 10.25 s.
    assert clock.sleeps[0] == pytest.approx(10.25)
    # Other classes are not affected.
    rl.acquire("security")
    assert len(clock.sleeps) == 1


def test_sliding_window_frees_slots_over_time(clock):
    rl = RateLimiter(clock=clock.now, sleep=clock.sleep)
    for _ in range(5):
        rl.acquire("identity_reports")
        clock.t += 1.0
    assert rl.delay("identity_reports") == pytest.approx(10.25 - 5)
    clock.t += 10
    assert rl.delay("identity_reports") == 0
    for _ in range(3):
        rl.acquire("identity_reports")
    assert clock.sleeps == []


def test_identity_protection_one_per_second(clock):
    rl = RateLimiter(clock=clock.now, sleep=clock.sleep)
    start = clock.t
    for _ in range(4):
        rl.acquire("identity_protection")
    assert clock.t - start == pytest.approx(3 * 1.05)  # 1 per 1 s, guard 5%


def test_penalize_holds_the_class(clock):
    rl = RateLimiter(clock=clock.now, sleep=clock.sleep)
    rl.acquire("security")
    rl.penalize("security", 7.5)
    assert rl.delay("security") == pytest.approx(7.5)
    assert rl.delay("intune") == 0
    rl.acquire("security")
    assert clock.sleeps == [pytest.approx(7.5)]
    # A shorter later penalty does not shorten a longer one.
    rl.penalize("security", 10)
    rl.penalize("security", 1)
    assert rl.delay("security") == pytest.approx(10)


def test_usage_reports_keyed_per_report(clock):
    rl = RateLimiter(clock=clock.now, sleep=clock.sleep)
    for _ in range(14):
        rl.acquire("usage_reports", "reports.office365_active_users")
    assert clock.sleeps == []
    rl.acquire("usage_reports", "reports.other")  # another report has its own budget
    assert clock.sleeps == []
    assert rl.delay("usage_reports", "reports.office365_active_users") > 600
    rl.penalize("usage_reports", 30, "reports.other")
    assert rl.delay("usage_reports", "reports.other") == pytest.approx(30)
    assert rl.delay("usage_reports", "reports.third") == 0


def test_key_ignored_for_tenant_wide_classes(clock):
    rl = RateLimiter(clock=clock.now, sleep=clock.sleep)
    for i in range(5):
        rl.acquire("identity_reports", f"source-{i}")
    assert rl.delay("identity_reports", "another") > 0


def test_secure_score_concurrency_cap():
    rl = RateLimiter()
    for _ in range(4):
        rl.acquire("secure_score")
    got = threading.Event()

    def fifth():
        rl.acquire("secure_score")
        got.set()

    t = threading.Thread(target=fifth, daemon=True)
    t.start()
    assert not got.wait(0.3)  # the 5th waits for a slot
    rl.release("secure_score")
    assert got.wait(2)
    t.join(2)
    # Release never goes negative.
    for _ in range(10):
        rl.release("secure_score")
    for _ in range(4):
        rl.acquire("secure_score")
    assert rl.delay("secure_score") == float("inf")


def test_acquire_returns_early_on_stop():
    rl = RateLimiter()
    rl.penalize("security", 60)
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    t0 = time.monotonic()
    assert rl.acquire("security", stop=stop) is False
    assert time.monotonic() - t0 < 2
    assert RateLimiter().acquire("security", stop=threading.Event()) is True


def test_release_without_cap_is_noop(clock):
    rl = RateLimiter(clock=clock.now, sleep=clock.sleep)
    rl.release("security")  # no concurrency cap: harmless
    assert rl.delay("security") == 0


def test_custom_budgets_and_unknown_class(clock):
    rl = RateLimiter({"security": Budget(2, 10.0), "mine": (1, 5.0)}, clock=clock.now, sleep=clock.sleep, guard=0.0)
    rl.acquire("security")
    rl.acquire("security")
    rl.acquire("security")
    assert clock.sleeps == [pytest.approx(10.0)]
    rl.acquire("mine")
    rl.acquire("mine")
    assert clock.sleeps[-1] == pytest.approx(5.0)
    rl.acquire("no-such-class")  # falls back to the default budget
    assert rl.budget("no-such-class") == DEFAULT_BUDGETS["default"]


def test_thread_safety_never_exceeds_budget():
    # Real threads, a real (tiny) window: at most `limit` grants per window.
    rl = RateLimiter({"t": Budget(3, 0.2)}, guard=0.0)
    grants: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(3):
            rl.acquire("t")
            with lock:
                grants.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    grants.sort()
    assert len(grants) == 9
    for i in range(len(grants) - 3):
        assert grants[i + 3] - grants[i] >= 0.19


# --- issue 15: gates (app-wide budgets), try_acquire, set_budget, retry_floor ---------------------
def test_try_acquire_takes_every_class_or_none(clock):
    rl = RateLimiter({"a": (2, 10.0), "b": (1, 10.0)}, clock=clock.now, sleep=clock.sleep, guard=0.0)
    assert rl.try_acquire("a", "b") == 0.0
    assert rl.try_acquire("a", "b") == pytest.approx(10.0)  # b is full: nothing taken
    assert rl.delay("a") == 0.0  # a still has its second slot
    assert rl.try_acquire("a") == 0.0
    assert rl.try_acquire("a") == pytest.approx(10.0)


def test_the_gate_is_asked_only_when_the_class_has_a_slot(clock):
    rl = RateLimiter(clock=clock.now, sleep=clock.sleep)
    asked: list[float] = []
    waited: list[float] = []

    def gate() -> float:
        asked.append(clock.t)
        return 0.0 if len(asked) != 2 else 3.0  # the 2nd ask: the gate wants 3 s

    for _ in range(2):
        assert rl.acquire("identity_reports", gate=gate, on_gate_wait=waited.append)
    assert asked == [500.0, 500.0, 503.0] and waited == [3.0]
    # The slot taken after the gate's wait is stamped with the time it was taken.
    assert list(rl._bucket("identity_reports", None)[1].sent) == [500.0, 503.0]
    for _ in range(3):
        rl.acquire("identity_reports", gate=gate)
    n = len(asked)
    rl.acquire("identity_reports", gate=gate)  # the 6th: the class is full, the gate waits its turn
    assert asked[n:] == [clock.t] and clock.t == pytest.approx(500.0 + 10.25)


def test_set_budget_takes_effect_at_once(clock):
    rl = RateLimiter({"x": (4, 10.0)}, clock=clock.now, sleep=clock.sleep, guard=0.0)
    for _ in range(2):
        rl.acquire("x")
    rl.set_budget("x", Budget(2, 10.0))
    assert rl.delay("x") == pytest.approx(10.0)


def test_retry_floor_is_the_documented_window():
    from td_graph_plugin.graph.ratelimit import retry_floor

    assert retry_floor("identity_protection") == 1.0
    assert retry_floor("identity_reports") == 10.0
    assert retry_floor("security") == 60.0
    assert retry_floor("no-such-class") == DEFAULT_BUDGETS["default"].window
