"""The shipped example config is valid as documented."""

from __future__ import annotations

import os

from td_graph_plugin.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_example_config_is_valid(catalogue):
    cfg = load_config(os.path.join(ROOT, "conf", "td-graph.yaml"), env={"CONTOSO_SECRET": "x" * 30}, source_names=catalogue.names())
    assert cfg.tenants[0].name == "contoso"
    assert cfg.metrics_listen == "127.0.0.1:9464"
    assert cfg.sources.settings["audit_logs.sign_ins"].interval.total_seconds() == 60
