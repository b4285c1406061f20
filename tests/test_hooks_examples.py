"""The shipped hooks/ examples load through ``hooks_dir`` and act.

* ``drop_service_account_sign_ins.py`` drops successful sign-ins of the listed accounts (unit,
  then a real ``td-graph run --once`` against the simulator);
* ``custom_source_example.py`` registers ``local.domains``, which collects ``/v1.0/domains``
  from the simulator (a simulator row is registered for the test: the simulator has no
  /domains of its own).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter

import pytest

import host_support as hs
from td_graph_plugin.plugins import create_plugin_manager, load_catalogue
from td_graph_plugin.simulator import GraphSimulator

HOOKS = os.path.join(hs.ROOT, "hooks")
FILTER_MODULE = "hooks_dir:drop_service_account_sign_ins"
SOURCE_MODULE = "hooks_dir:custom_source_example"


@pytest.fixture
def pm():
    return create_plugin_manager(hooks_dir=HOOKS, load_entrypoints=False)


def test_both_examples_load_from_hooks_dir(pm):
    assert pm.get_plugin(FILTER_MODULE) is not None and pm.get_plugin(SOURCE_MODULE) is not None
    catalogue = load_catalogue(pm)
    spec = catalogue["local.domains"]
    assert catalogue.owner("local.domains") == SOURCE_MODULE
    assert (spec.mode, spec.version, spec.path) == ("snapshot", "v1.0", "/domains")
    assert spec.permissions == ("Domain.Read.All|Directory.Read.All",)
    impls = [i.plugin_name for i in pm.hook.td_graph_filter_record.get_hookimpls()]
    assert FILTER_MODULE in impls


def _sign_in(upn: str, error_code: int, user_id: str = "u-1") -> dict:
    return {"tenant": "t", "source": "audit_logs.sign_ins", "id": "x",
            "data": {"userPrincipalName": upn, "userId": user_id, "status": {"errorCode": error_code}}}


def test_filter_drops_only_successful_sign_ins_of_listed_accounts(pm, monkeypatch):
    hook = pm.hook.td_graph_filter_record

    def verdict(record: dict, source: str = "audit_logs.sign_ins") -> bool:
        return all(r is not False for r in hook(tenant="t", source=source, record=record))

    monkeypatch.delenv("TD_GRAPH_SERVICE_ACCOUNTS", raising=False)
    assert verdict(_sign_in("svc-backup@contoso.com", 0))  # nothing listed: keep everything
    monkeypatch.setenv("TD_GRAPH_SERVICE_ACCOUNTS", "SVC-Backup@contoso.com, 0f0f0f0f-aaaa")
    assert not verdict(_sign_in("svc-backup@contoso.com", 0))  # case-insensitive UPN
    assert not verdict(_sign_in("renamed@contoso.com", 0, user_id="0f0f0f0f-AAAA"))  # by object id
    assert not verdict(_sign_in("svc-backup@contoso.com", 0), source="audit_logs.sign_ins_non_interactive")
    assert verdict(_sign_in("svc-backup@contoso.com", 50126))  # a failure is kept
    assert verdict(_sign_in("alice@contoso.com", 0))  # another user is kept
    assert verdict(_sign_in("svc-backup@contoso.com", 0), source="security.alerts_v2")  # other sources untouched


def _run_once(td_graph_cmd, config: str, secret: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*td_graph_cmd, "run", "-c", config, "--once"],
                          env=dict(os.environ, TD_GRAPH_DEMO_SECRET=secret, **env),
                          capture_output=True, text=True, timeout=120)


def test_filter_acts_in_a_real_run(tmp_path, td_graph_cmd):
    with GraphSimulator() as sim:
        tenant = sim.add_tenant(profile="e5")
        successes = Counter(s["userPrincipalName"] for s in tenant.sign_ins if s["status"]["errorCode"] == 0)
        account, dropped = successes.most_common(1)[0]
        out = str(tmp_path / "records.ndjson")
        config = hs.write_td_graph_config(sim, tenant, str(tmp_path), output={"type": "file", "path": out},
                                          sources=["audit_logs.sign_ins"], extra={"hooks_dir": HOOKS})
        run = _run_once(td_graph_cmd, config, tenant.client_secret, TD_GRAPH_SERVICE_ACCOUNTS=account)
        assert run.returncode == 0, run.stderr[-3000:]
        assert f"{dropped} dropped by filters" in run.stderr
        got = {r["id"] for r in hs.read_ndjson(out)}
        expected = {s["id"] for s in tenant.sign_ins
                    if not (s["userPrincipalName"] == account and s["status"]["errorCode"] == 0)}
        assert got == expected and len(got) == len(tenant.sign_ins) - dropped


DOMAINS = [
    {"id": "contoso.com", "authenticationType": "Managed", "isDefault": True, "isVerified": True,
     "supportedServices": ["Email", "OfficeCommunicationsOnline"]},
    {"id": "contoso.onmicrosoft.com", "authenticationType": "Managed", "isDefault": False, "isVerified": True,
     "isInitial": True, "supportedServices": ["Email"]},
    {"id": "fabrikam-partner.com", "authenticationType": "Managed", "isDefault": False, "isVerified": False,
     "supportedServices": []},
]


@pytest.fixture
def domains_route():
    """A simulator row for GET /v1.0/domains (registered for this test only)."""
    from td_graph_plugin.simulator import endpoints

    row = endpoints.register(endpoints.Endpoint(
        path="/domains", versions=("v1.0",), collection="domains", mode="list",
        entity="microsoft.graph.domain", context="domains",
        permissions=("Domain.Read.All|Directory.Read.All",), max_top=None, default_top=100,
        options=frozenset({"$select"}), throttle="directory",
    ))
    try:
        yield row
    finally:
        endpoints.unregister(row)


def test_custom_source_collects_domains_and_their_changes(tmp_path, td_graph_cmd, domains_route):
    with GraphSimulator() as sim:
        tenant = sim.add_tenant(profile="e5")
        tenant.add_objects("domains", [dict(d) for d in DOMAINS])
        out = str(tmp_path / "records.ndjson")
        config = hs.write_td_graph_config(sim, tenant, str(tmp_path), output={"type": "file", "path": out},
                                          sources=["local.domains"], extra={"hooks_dir": HOOKS})
        sources = subprocess.run([*td_graph_cmd, "sources", "-c", config, "--format", "json"],
                                 env=dict(os.environ, TD_GRAPH_DEMO_SECRET=tenant.client_secret),
                                 capture_output=True, text=True, timeout=60)
        assert sources.returncode == 0 and "local.domains" in sources.stdout, sources.stderr

        run = _run_once(td_graph_cmd, config, tenant.client_secret)
        assert run.returncode == 0, run.stderr[-3000:]
        first = hs.read_ndjson(out)
        assert sorted(r["id"] for r in first) == sorted(d["id"] for d in DOMAINS)
        assert all(r["source"] == "local.domains" and r["data"]["id"] == r["id"] for r in first)

        # The partner domain gets verified and federated: the next pass emits only that change.
        with tenant.lock:
            tenant.collection("domains").replace(
                [dict(DOMAINS[2], isVerified=True, authenticationType="Federated", visible_at=0.0)])
        run = _run_once(td_graph_cmd, config, tenant.client_secret)
        assert run.returncode == 0, run.stderr[-3000:]
        second = hs.read_ndjson(out)[len(first):]
        assert [(r["id"], r["data"]["authenticationType"]) for r in second] == [("fabrikam-partner.com", "Federated")]
        assert json.loads(json.dumps(second[0]))["data"]["isVerified"] is True
