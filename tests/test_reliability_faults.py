"""Issue 8 fault suite: each Graph failure either heals within the run or fails that source
cleanly; nothing collected is lost, nothing is emitted twice, the process never hangs."""

from __future__ import annotations

import collections
import time

import pytest

from td_graph_plugin.simulator import GraphSimulator
from tests.integration_support import env_for, read_records, td_graph, write_config

pytestmark = pytest.mark.slow

SIGN_INS = "/v1.0/auditLogs/signIns"
SOURCES = ["audit_logs.sign_ins", "audit_logs.directory_audits", "security.alerts_v2", "directory.users"]


@pytest.fixture
def sim(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as s:
        yield s


def setup(sim, tmp_path, **http):
    tenant = sim.add_tenant(profile="e5", volumes={"sign_ins": 3000, "directory_audits": 300, "alerts": 60, "users": 250})
    out = tmp_path / "records.ndjson"
    cfg = write_config(
        sim, tenant, tmp_path, output=str(out), sources=SOURCES,
        # The simulator spreads events over the 24 h before the tenant is made; a 24 h lookback
        # measured when td-graph starts (seconds later on a loaded machine) would leave the
        # oldest ones out of reach (the CI run that found it lost one sign-in): 30 h, as the
        # crash suite does.
        settings={
            "audit_logs.sign_ins": {"page_size": 200, "lookback": "30h"},
            "audit_logs.directory_audits": {"lookback": "30h"},
        },
        extra={"http": {"read_timeout": "2s", "connect_timeout": "2s", "max_retries": 3, "max_retry_wait": "20s", **http}},
    )
    return tenant, out, cfg


# The fault is armed inside the simulator when the 4th sign-ins request arrives, after three
# pages were answered: deterministic, no thread polling sim.requests and racing the collector.
FAULT_AT = 4


def after_requests(sim, prefix: str, n: int, action) -> None:
    """Run ``action`` in the simulator itself as request ``n + 1`` under ``prefix`` arrives, so it
    applies to that very request (mid-paging faults land exactly there)."""
    sim.at_request(prefix, n + 1, action)


def assert_injected_mid_paging(sim, name: str) -> None:
    """Three clean pages, then the fault hit a later page of the same query (request 4).

    The log is in answer order: a slow answer is logged after the retry that overtook it, so
    the faulted request is looked up by its mark, not by position.  A slow answer is logged when
    it is sent, after its 3 s delay, possibly after td-graph (which gave up at 2 s) has exited:
    wait for it."""
    deadline = time.monotonic() + 10
    while name == "read timeout" and time.monotonic() < deadline and not any(r.fault == "slow" for r in sim.requests):
        time.sleep(0.05)
    hits = [r for r in sim.requests if r.path.startswith(SIGN_INS)]
    assert all(r.status == 200 and r.fault is None for r in hits[: FAULT_AT - 1]), "three clean pages first"
    faulted = [r for r in hits[FAULT_AT - 1:] if r.fault is not None or r.status != 200]
    assert faulted, "the fault was really injected mid-paging"
    assert "$skiptoken" in faulted[0].query, "the fault was really injected mid-paging"
    if name == "read timeout":
        assert faulted[0].fault == "slow", "the fault was really injected mid-paging"


def assert_complete_exactly_once(tenant, out):
    records = read_records(out)
    counts = collections.Counter((r["source"], r["id"]) for r in records)
    assert not [k for k, n in counts.items() if n > 1], "a record was emitted twice"
    got = collections.defaultdict(set)
    for r in records:
        got[r["source"]].add(r["id"])
    assert got["audit_logs.sign_ins"] == {s["id"] for s in tenant.sign_ins}
    assert got["audit_logs.directory_audits"] == {a["id"] for a in tenant.directory_audits}
    assert got["security.alerts_v2"] == {a["id"] for a in tenant.alerts}
    assert got["directory.users"] == {u["id"] for u in tenant.users}


def run(cfg, tenant, timeout=90):
    started = time.monotonic()
    proc = td_graph("run", "-c", cfg, "--once", env=env_for(tenant), timeout=timeout)
    return proc, time.monotonic() - started


HEALING = [
    ("429 with Retry-After", lambda s: s.throttle(SIGN_INS, 2, retry_after=0.5)),
    ("429 without Retry-After", lambda s: s.throttle(SIGN_INS, 2, retry_after=None)),
    ("500 burst", lambda s: s.throttle(SIGN_INS, 2, retry_after=None, status=500)),
    ("503 burst", lambda s: s.throttle(SIGN_INS, 2, retry_after=0.2, status=503)),
    ("504 burst", lambda s: s.throttle(SIGN_INS, 2, retry_after=None, status=504)),
    ("connection reset", lambda s: s.fault(SIGN_INS, "reset", 2)),
    ("read timeout", lambda s: s.fault(SIGN_INS, "slow:3", 1)),
    ("truncated JSON", lambda s: s.fault(SIGN_INS, "truncated", 2)),
    ("short read", lambda s: s.fault(SIGN_INS, "short_read", 1)),
    ("non-JSON body", lambda s: s.fault(SIGN_INS, "not_json", 2)),
    ("expired token mid-paging", lambda s: [t.revoke_tokens() for t in s.tenants]),
]


@pytest.mark.parametrize("name, inject", HEALING, ids=[h[0] for h in HEALING])
def test_fault_mid_paging_heals_within_the_run(sim, tmp_path, name, inject):
    tenant, out, cfg = setup(sim, tmp_path)
    after_requests(sim, SIGN_INS, FAULT_AT - 1, lambda: inject(sim))
    proc, seconds = run(cfg, tenant)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    assert seconds < 60
    assert sim._triggers.pending() == 0, "the fault was armed"
    assert_injected_mid_paging(sim, name)
    if name == "read timeout":
        assert b"read timeout" in proc.stderr, "the slow page timed out and was requested again"
    assert_complete_exactly_once(tenant, out)


PERSISTENT = [
    ("429 storm", lambda s: s.throttle(SIGN_INS, 50, retry_after=0.1)),
    ("503 storm", lambda s: s.throttle(SIGN_INS, 50, retry_after=None, status=503)),
    ("resets", lambda s: s.fault(SIGN_INS, "reset", 50)),
    ("truncated bodies", lambda s: s.fault(SIGN_INS, "truncated", 50)),
    ("server stalls forever", lambda s: s.fault(SIGN_INS, "stall", 50)),
]


@pytest.mark.parametrize("name, inject", PERSISTENT, ids=[p[0] for p in PERSISTENT])
def test_persistent_fault_fails_only_that_source_and_the_next_run_completes(sim, tmp_path, name, inject):
    tenant, out, cfg = setup(sim, tmp_path)
    after_requests(sim, SIGN_INS, FAULT_AT - 1, lambda: inject(sim))
    proc, seconds = run(cfg, tenant)
    assert proc.returncode == 1, "a failed source makes run --once exit 1"
    assert_injected_mid_paging(sim, name)
    assert seconds < 75, "bounded by timeouts and the retry budget, never a hang"
    err = proc.stderr.decode()
    assert "audit_logs.sign_ins: failed" in err
    for other in SOURCES[1:]:
        assert f"{other}: failed" not in err, f"{other} must be untouched"
    partial = read_records(out)
    assert any(r["source"] == "audit_logs.sign_ins" for r in partial), "pages before the fault were kept"
    sim.clear_knobs()
    proc2, _ = run(cfg, tenant)
    assert proc2.returncode == 0, proc2.stderr.decode()[-3000:]
    assert_complete_exactly_once(tenant, out)


def test_delta_link_answered_410_resyncs(sim, tmp_path):
    tenant, out, cfg = setup(sim, tmp_path)
    assert run(cfg, tenant)[0].returncode == 0
    tenant.change_users(5)
    tenant.expire_delta_tokens(mode="410")
    proc, _ = run(cfg, tenant)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert b"full resync" in proc.stderr
    records = read_records(out)
    users = [r for r in records if r["source"] == "directory.users"]
    # The initial sync, plus exactly the 5 changed users (unchanged ones are not re-emitted).
    assert len(users) == len(tenant.users) + 5


def test_delta_sync_state_not_found_resyncs(sim, tmp_path):
    tenant, out, cfg = setup(sim, tmp_path)
    assert run(cfg, tenant)[0].returncode == 0
    tenant.expire_delta_tokens(mode="syncStateNotFound")
    proc, _ = run(cfg, tenant)
    assert proc.returncode == 0 and b"full resync" in proc.stderr


def test_next_link_looping_back_fails_the_source_cleanly(sim, tmp_path):
    """A nextLink that points at the page itself must not spin forever."""
    from td_graph_plugin.simulator import SimResponse, register_route, unregister_route

    tenant, out, cfg = setup(sim, tmp_path)
    pattern = r"/auditLogs/directoryAudits"

    def looping(req):
        self_link = f"{sim.base_url}/v1.0/auditLogs/directoryAudits?$skiptoken=same"
        return SimResponse(200, {"@odata.context": "x", "value": [], "@odata.nextLink": self_link})

    register_route("GET", pattern, looping, versions=("v1.0",))
    try:
        proc, seconds = run(cfg, tenant)
    finally:
        unregister_route("GET", pattern)
    assert proc.returncode == 1 and seconds < 60
    err = proc.stderr.decode()
    assert "audit_logs.directory_audits: failed" in err and "paging loop" in err
    hits = [r for r in sim.requests if r.path == "/v1.0/auditLogs/directoryAudits"]
    assert len(hits) <= 3, "the loop is detected at once, not retried into the ground"
    proc2, _ = run(cfg, tenant)
    assert proc2.returncode == 0
    assert_complete_exactly_once(tenant, out)
