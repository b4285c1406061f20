"""Issue 16, pass 2: the per-request and per-job checks made cheaper keep their exact meaning.

* ``clouds._text_problem`` finds the first forbidden character with a regular expression; the
  oracle below is the rule as ``link_problem``'s docstring states it, written out by hand.
* The base origin a link is checked against is parsed once and cached: two tenants with
  different Graph endpoints must never be confused by the cache.
* A job reads its status row once (the skip verdict's read serves the end of the job too),
  and a source coming back from ``failing`` is still written back to ``ok``.
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_graph_plugin.collector import SyncSink
from td_graph_plugin.graph.clouds import _text_problem, link_problem
from td_graph_plugin.plan import TenantPlanner
from td_graph_plugin.runtime import build_runtime, load_validated
from td_graph_plugin.simulator import GraphSimulator
from tests.fakes import ListOutput
from tests.integration_support import write_config


def _rule(url: str) -> str | None:
    """The documented rule, character by character (link_problem's docstring)."""
    if any(ord(c) > 0x7F for c in url):
        return "characters that are not plain ASCII"
    for c in url:
        if c == "\\":
            return "a backslash"
        if c == "@":
            return "'@' (user information)"
        if c == "#":
            return "a fragment"
        if ord(c) <= 0x20 or ord(c) == 0x7F:
            return "whitespace or a control character"
    return None


_URLISH = st.text(
    alphabet=st.sampled_from(list("https:/graph.microsoft.com?$filter=a%20b&x") + ["\\", "@", "#", " ", "\t",
                             "\x00", "\x1f", "\x7f", "\x80", "é", "\u2028", "\n", "~", "!"]),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(_URLISH)
def test_text_problem_matches_the_rule_written_by_hand(url):
    assert _text_problem(url) == _rule(url)


def test_text_problem_names_the_first_offender():
    assert _text_problem("https://a@b\\c") == "'@' (user information)"
    assert _text_problem("https://a\\b@c") == "a backslash"
    assert _text_problem("https://a b#c") == "whitespace or a control character"
    assert _text_problem("https://graph.microsoft.com/v1.0/users?$top=5") is None


def test_cached_base_origins_are_never_confused():
    a, b = "https://graph.microsoft.com", "https://graph.microsoft.us"
    for _ in range(3):  # alternate: the cache holds both bases
        assert link_problem(f"{a}/v1.0/users?$skiptoken=x", a) is None
        assert link_problem(f"{b}/v1.0/users", b) is None
        assert link_problem(f"{a}/v1.0/users", b) is not None
        assert link_problem(f"{b}/v1.0/users", a) is not None
        assert link_problem("https://graph.microsoft.com:8443/v1.0/users", a) is not None


@pytest.fixture
def sim(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as s:
        yield s


def _runtime(sim, tenant, tmp_path, sources):
    cfg = write_config(sim, tenant, tmp_path, sources=sources)
    os.environ["TD_GRAPH_DEMO_SECRET"] = tenant.client_secret
    config, pm, catalogue = load_validated(cfg, load_entrypoints=False)
    out = ListOutput()
    rt = build_runtime(config, pm, catalogue, make_sink=lambda st: SyncSink(out, st))
    rt.engine.planner = TenantPlanner(ttl=3600.0)
    return rt, out


def _count_status_reads(state):
    reads = []
    real = state.source_status

    def counted(tenant, source):
        reads.append((tenant, source))
        return real(tenant, source)

    state.source_status = counted
    return reads


def test_a_job_reads_its_status_row_once(sim, tmp_path):
    tenant = sim.add_tenant(profile="e5")
    rt, out = _runtime(sim, tenant, tmp_path, ["audit_logs.directory_audits"])
    try:
        reads = _count_status_reads(rt.state)
        [result] = rt.engine.run_once(rt.engine.jobs(sources=["audit_logs.directory_audits"]))
        assert result.status == "ok"
        assert out.lines, "the source collected"
        assert reads == [("demo", "audit_logs.directory_audits")]
    finally:
        rt.close()


def test_a_failing_source_that_succeeds_is_written_back_to_ok(sim, tmp_path):
    tenant = sim.add_tenant(profile="e5")
    rt, _ = _runtime(sim, tenant, tmp_path, ["audit_logs.directory_audits"])
    try:
        # failing, re-check time already past: the job runs (failing is not a held state).
        rt.state.set_source_status("demo", "audit_logs.directory_audits", "failing", "HTTP 503", time.time() - 1)
        reads = _count_status_reads(rt.state)
        [result] = rt.engine.run_once(rt.engine.jobs(sources=["audit_logs.directory_audits"]))
        assert result.status == "ok"
        assert rt.state.source_status("demo", "audit_logs.directory_audits")["state"] == "ok"
        assert len(reads) == 2  # the job's one read, and the assertion's
    finally:
        rt.close()


def test_absent_msal_extensions_is_recorded_once_and_a_present_one_left_alone(monkeypatch):
    import sys
    import types

    from td_graph_plugin.graph import auth

    lookups = []
    monkeypatch.setattr(auth.importlib.util, "find_spec", lambda name: lookups.append(name))
    monkeypatch.delitem(sys.modules, "msal_extensions", raising=False)
    auth._note_absent_msal_extensions.cache_clear()
    auth._note_absent_msal_extensions()
    auth._note_absent_msal_extensions()
    assert lookups == ["msal_extensions"]  # once per process
    assert "msal_extensions" in sys.modules and sys.modules["msal_extensions"] is None
    with pytest.raises(ImportError):  # what msal's optional check catches
        __import__("msal_extensions")

    present = types.ModuleType("msal_extensions")
    monkeypatch.setitem(sys.modules, "msal_extensions", present)
    auth._note_absent_msal_extensions.cache_clear()
    auth._note_absent_msal_extensions()
    assert sys.modules["msal_extensions"] is present
    auth._note_absent_msal_extensions.cache_clear()


def test_request_ids_do_not_follow_a_seeded_global_random():
    """A plugin or test that seeds ``random`` must not make two processes' request ids equal."""
    import random

    from td_graph_plugin.graph import client

    random.seed(7)
    first = client._REQUEST_IDS.getrandbits(128)
    random.seed(7)
    assert client._REQUEST_IDS.getrandbits(128) != first


def test_one_freshness_rule_for_stored_copies():
    """timeutil.fresh, by hand: younger than the TTL, at most 300 s in the future."""
    from td_graph_plugin.timeutil import fresh

    assert fresh(1000.0, 1000.0, 10.0)
    assert fresh(1000.0, 1009.9, 10.0)
    assert not fresh(1000.0, 1010.0, 10.0)  # exactly the TTL old: stale
    assert fresh(1000.0, 700.0, 10.0)  # stored 300 s "ahead": still trusted
    assert not fresh(1000.0, 699.9, 10.0)  # further ahead: the clock moved back
