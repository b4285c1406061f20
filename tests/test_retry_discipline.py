"""Retry discipline (issue 15 item 4): how long the client waits before sending a request again.

* A 429 or 503 WITHOUT Retry-After waits at least its throttling class's documented window
  (graph-facts §0.6: Identity Protection 1 request / 1 s -> 1 s; identity reports 5 / 10 s ->
  10 s) before the retry, counted from the moment the answer arrived.  Jitter only ever adds.
* With Retry-After the wait is exactly what Graph asked (a float: 2.128), never less.

Deterministic: a fake clock whose ``sleep`` only advances time; every answer "takes" 70 ms of
fake time, so the retry's distance from the answer is what is measured (the limiter's pacing
counts from when the first request was sent and would hide a too-short retry wait).
"""

from __future__ import annotations

import random
from functools import partial

import pytest

from td_graph_plugin.config.model import HttpConfig, Secret, TenantConfig
from td_graph_plugin.graph import GraphClient, RateLimiter
from td_graph_plugin.graph.ratelimit import DEFAULT_BUDGETS
from td_graph_plugin.metrics import Metrics
from tests.fakes import FakeClock as _FakeClock

try:  # tests/ is on sys.path when it is not a package (pytest rootdir insertion)
    from tls_fake import FakeServer, Resp
except ImportError:  # pragma: no cover - tests/ became a package
    from tests.tls_fake import FakeServer, Resp

TID = "00000000-0000-0000-0000-0000000000bb"
LATENCY = 0.07  # fake seconds each answer takes

FakeClock = partial(_FakeClock, 2000.0)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with FakeServer(tmp_dir=str(tmp_path_factory.mktemp("retry"))) as s:
        s.add_oidc(TID)
        yield s


class Timed:
    """A client whose attempts are timed on the fake clock: (sent, answered, status)."""

    def __init__(self, srv: FakeServer, clock: _FakeClock, *, limiter: RateLimiter | None = None, seed: int = 0,
                 max_retries: int = 3) -> None:
        self.clock = clock
        tenant = TenantConfig(name="contoso", tenant_id=TID, client_id="11111111-1111-1111-1111-111111111111",
                              client_secret=Secret("s3cret~value"), login_endpoint=srv.base,
                              graph_endpoint=srv.base, ca_bundle=srv.ca_path)
        self.client = GraphClient(
            tenant, HttpConfig(max_retries=max_retries, max_retry_wait=300), Metrics(), sleep=clock.sleep,
            limiter=limiter or RateLimiter(clock=clock.now, sleep=clock.sleep), rng=random.Random(seed),
        )
        self.attempts: list[tuple[float, float, int]] = []
        inner = self.client._attempt

        def attempt(*a, **kw):
            sent = clock.t
            out = inner(*a, **kw)
            clock.t += LATENCY
            status = out.response.status_code if hasattr(out, "response") else (out.error.status or 0)
            self.attempts.append((sent, clock.t, status))
            return out

        self.client._attempt = attempt

    def get(self, path: str, throttle_class: str) -> dict:
        return self.client.get_json(self.client.url("v1.0", path), source="s", throttle_class=throttle_class)

    def retry_gaps(self) -> list[float]:
        """For each retry: seconds between the previous answer and the retry being sent."""
        return [self.attempts[i][0] - self.attempts[i - 1][1] for i in range(1, len(self.attempts))]

    def close(self) -> None:
        self.client.close()


@pytest.mark.parametrize("seed", range(12))
def test_identity_protection_429_without_retry_after_waits_at_least_one_second(srv, seed):
    path = f"/v1.0/identityProtection/riskyUsers{seed}"
    srv.route("GET", path, [Resp(429), Resp(json={"value": [{"id": "u"}]})])
    t = Timed(srv, FakeClock(), seed=seed)
    try:
        assert t.get(path[len("/v1.0/"):], "identity_protection")["value"] == [{"id": "u"}]
    finally:
        t.close()
    assert [a[2] for a in t.attempts] == [429, 200]
    (gap,) = t.retry_gaps()
    assert gap >= 1.0, f"the retry came {gap:.3f} s after the 429"


def test_the_floor_is_the_documented_window_even_with_a_loose_pace_override(srv):
    """``throttling.identity_protection: {requests: 10000, per: 10s}`` (the simulator configs) loosens
    the pace, not what a 429 means: the retry still waits Graph's 1 s window."""
    clock = FakeClock()
    srv.route("GET", "/v1.0/identityProtection/riskDetections", [Resp(429), Resp(429), Resp(json={"value": []})])
    loose = RateLimiter({"identity_protection": (10000, 10.0)}, clock=clock.now, sleep=clock.sleep)
    t = Timed(srv, clock, limiter=loose, seed=3)
    try:
        t.get("identityProtection/riskDetections", "identity_protection")
    finally:
        t.close()
    gaps = t.retry_gaps()
    assert len(gaps) == 2 and all(g >= 1.0 for g in gaps), gaps
    assert gaps[1] >= 2.0, "the exponential step still grows past the floor"


@pytest.mark.parametrize("throttle_class, path", [
    ("identity_reports", "auditLogs/signIns"),
    ("identity_protection", "identityProtection/riskyUsers"),
    ("security", "security/alerts_v2"),
])
def test_503_without_retry_after_waits_at_least_the_class_window(srv, throttle_class, path):
    clock = FakeClock()
    route = f"/v1.0/{path}/{throttle_class}-503"
    srv.route("GET", route, [Resp(503), Resp(json={"value": []})])
    t = Timed(srv, clock, seed=5)
    try:
        t.get(route[len("/v1.0/"):], throttle_class)
    finally:
        t.close()
    window = DEFAULT_BUDGETS[throttle_class].window
    (gap,) = t.retry_gaps()
    assert gap >= window, f"{throttle_class}: retry {gap:.3f} s after the 503, window {window} s"


def test_429_without_retry_after_holds_the_whole_class(srv):
    clock = FakeClock()
    srv.route("GET", "/v1.0/auditLogs/directoryAudits", Resp(429))
    t = Timed(srv, clock, seed=1, max_retries=0)
    try:
        with pytest.raises(Exception):
            t.get("auditLogs/directoryAudits", "identity_reports")
        assert t.client.limiter.delay("identity_reports") >= 10.0 - LATENCY
    finally:
        t.close()


def test_jitter_only_adds():
    client = GraphClient.__new__(GraphClient)  # only backoff() is exercised: no server needed
    client._rng = random.Random(11)
    for attempt in range(8):
        step = min(60.0, 2.0 ** attempt)
        for floor in (1.0, 10.0, 20.0):
            waits = [client.backoff(attempt, floor) for _ in range(200)]
            low = max(floor, step)
            assert min(waits) >= low, (attempt, floor)
            assert max(waits) > low, "there is jitter"
            assert max(waits) <= low * 1.25 + 1e-9, "jitter is bounded"


def test_retry_after_fraction_is_honoured_never_less(srv):
    clock = FakeClock()
    srv.route("GET", "/v1.0/auditLogs/signIns/ra", [
        Resp(429, json={"error": {"code": "TooManyRequests", "message": "Please retry again later."}},
             headers={"Retry-After": "2.128"}),
        Resp(json={"value": []}),
    ])
    t = Timed(srv, clock, seed=2)
    try:
        t.get("auditLogs/signIns/ra", "identity_reports")
    finally:
        t.close()
    (gap,) = t.retry_gaps()
    # Exactly what Graph asked for: not the class's 10 s floor, not a jittered fraction of it.
    assert gap == pytest.approx(2.128)
    assert gap >= 2.128 - 1e-9  # float rounding of the fake clock only


def test_503_with_retry_after_is_honoured(srv):
    clock = FakeClock()
    srv.route("GET", "/v1.0/security/alerts_v2/ra", [Resp(503, headers={"Retry-After": "3"}), Resp(json={"value": []})])
    t = Timed(srv, clock, seed=2)
    try:
        t.get("security/alerts_v2/ra", "security")
    finally:
        t.close()
    (gap,) = t.retry_gaps()
    assert gap == pytest.approx(3.0)
