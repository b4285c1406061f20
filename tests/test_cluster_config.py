"""The shipped cluster example config is valid as documented, and the cluster's metric families
are in the contract table (README checks its own table against it)."""

from __future__ import annotations

import os

from td_graph_plugin.config import load_config
from td_graph_plugin.metrics import EXPORTED_METRICS, Metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cluster_example_config_is_valid(catalogue):
    env = {"CONTOSO_SECRET": "x" * 30, "TD_GRAPH_DB_PASSWORD": "pw", "TD_GRAPH_REPLICA": "collector-a"}
    cfg = load_config(os.path.join(ROOT, "conf", "td-graph-cluster.yaml"), env=env, source_names=catalogue.names())
    assert cfg.state_url is not None and str(cfg.state_url).startswith("postgresql://")
    assert cfg.cluster is not None
    assert cfg.cluster.replica == "collector-a"
    assert cfg.cluster.lease_ttl == 30
    assert cfg.output_type == "file"


def test_cluster_metrics_are_exposed_with_the_contract_labels():
    m = Metrics()
    m.cluster_replicas.set(3)
    m.tenants_owned.labels("collector-a").set(20)
    m.lease_takeovers.labels("collector-a").inc()
    text = m.exposition().decode()
    assert "td_graph_cluster_replicas 3.0" in text
    assert 'td_graph_tenants_owned{replica="collector-a"} 20.0' in text
    assert 'td_graph_lease_takeovers_total{replica="collector-a"} 1.0' in text
    assert EXPORTED_METRICS["td_graph_cluster_replicas"] == ("gauge", ())
    assert EXPORTED_METRICS["td_graph_tenants_owned"] == ("gauge", ("replica",))
    assert EXPORTED_METRICS["td_graph_lease_takeovers_total"] == ("counter", ("replica",))
