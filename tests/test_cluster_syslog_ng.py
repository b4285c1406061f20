"""The syslog-ng host as cluster replicas: two real syslog-ng processes, each running td-graph
in-process with the same PostgreSQL state (``cluster.replica`` a and b), split the tenants,
and the union of what they deliver is every record of every tenant.

Uses the same real syslog-ng (Debian's syslog-ng-core + syslog-ng-mod-python) and virtualenv
as tests/test_host_syslog_ng.py.
"""

from __future__ import annotations

import collections
import os
import signal

import pytest
import yaml

import host_support as hs
from td_graph_plugin.cli.demo import SIMULATOR_PACE
from td_graph_plugin.simulator import GraphSimulator
from td_graph_plugin.simulator.request_log import attach

pytestmark = pytest.mark.hosts

SCL_BLOCK = os.path.join(hs.ROOT, "conf", "syslog-ng", "td-graph.conf")
TEMPLATE = r'"${MESSAGE}\n"'


@pytest.fixture(scope="module")
def slng_site() -> str:
    binary = hs.syslog_ng_binary()
    return hs.syslog_ng_site_packages(hs.syslog_ng_python_version(binary))


def _records(path: str) -> list[dict]:
    import json

    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.endswith("\n")]


def test_two_syslog_ng_replicas_split_the_tenants_and_deliver_everything(tmp_path, slng_site, pg_server, pg_url):
    with GraphSimulator() as sim:
        log = attach(sim)
        tenants = [sim.add_tenant(profile="e5", seed=i, volumes={"alerts": 15}) for i in range(4)]
        env = {f"TD_CLUSTER_SECRET_{i}": t.client_secret for i, t in enumerate(tenants)}
        procs: dict[str, hs.SyslogNg] = {}
        outs: dict[str, str] = {}
        try:
            for name in ("a", "b"):
                work = tmp_path / name
                work.mkdir()
                cfg = {
                    "tenants": [
                        {"name": f"t{i}", "tenant_id": t.tenant_id, "client_id": t.client_id,
                         "client_secret": f"${{TD_CLUSTER_SECRET_{i}}}", "login_endpoint": sim.base_url,
                         "graph_endpoint": sim.base_url, "ca_bundle": sim.ca_path}
                        for i, t in enumerate(tenants)
                    ],
                    "sources": {"include": ["security.alerts_v2"],
                                "settings": {"security.alerts_v2": {"interval": "1s", "page_size": 5}}},
                    "state": {"url": pg_url},
                    "cluster": {"replica": name, "lease_ttl": "3s"},
                    "throttling": {c: {"requests": 10000, "per": "10s"} for c in SIMULATOR_PACE},
                }
                path = work / "td-graph.yaml"
                path.write_text(yaml.safe_dump(cfg, sort_keys=False))
                outs[name] = str(work / "out.ndjson")
                procs[name] = hs.SyslogNg(str(work), slng_site, env=env)
                procs[name].start(hs.syslog_ng_config(
                    f'td_graph(config("{path}"));', f'file("{outs[name]}" template({TEMPLATE}));',
                    include=f'@include "{SCL_BLOCK}"',
                ))
            want = {(f"t{i}", a["id"]) for i, t in enumerate(tenants) for a in t.alerts}
            db = pg_url.rsplit("/", 1)[1]

            def owners() -> collections.Counter:
                out = pg_server.psql("SELECT owner FROM td_graph.leases WHERE owner IS NOT NULL AND expires_at > now()", db)
                return collections.Counter(out.split())

            def done() -> bool:
                got = {(r["tenant"], r["id"]) for name in outs for r in _records(outs[name])}
                asked = {row.replica for row in log.rows()}  # each replica polls its own tenants
                return (all(p.check_alive() for p in procs.values()) and want <= got
                        and owners() == {"a": 2, "b": 2} and asked == {"a", "b"})

            hs.wait_for(done, 90, "every record delivered, the tenants split 2/2, both replicas polling")
            for p in procs.values():
                assert p.stop(signal.SIGTERM) == 0
            for p in procs.values():
                text = p.log_text()
                assert "Traceback" not in text and "engine stopped" not in text, text[-4000:]
        finally:
            for p in procs.values():
                if p.alive():
                    p.stop(signal.SIGKILL)
        delivered = collections.Counter((r["tenant"], r["id"]) for name in outs for r in _records(outs[name]))
        assert set(delivered) == want
        # a clean stop frees every lease
        assert pg_server.psql("SELECT count(*) FROM td_graph.leases WHERE owner IS NOT NULL", db) == "0"
