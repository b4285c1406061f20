"""``state.url`` and ``cluster``: PostgreSQL shared state for a cluster of replicas (issue 15)."""

from __future__ import annotations

import os
import socket

import pytest

from td_graph_plugin.config import load_config
from td_graph_plugin.errors import ConfigError
from tests.test_config import TENANT, error_for, write

ENV = {"CONTOSO_SECRET": "s3cr3t-value", "PG_PASSWORD": "pg-pass-word"}


def test_state_url_with_defaults_for_the_cluster(tmp_path):
    cfg = load_config(write(tmp_path, TENANT + "state: {url: 'postgresql://td:${PG_PASSWORD}@db.internal/tdgraph'}\n"),
                      env=ENV)
    assert cfg.state_url == "postgresql://td:pg-pass-word@db.internal/tdgraph", "${NAME} works in state.url"
    assert cfg.cluster is not None
    assert cfg.cluster.replica == f"{socket.gethostname()}-{os.getpid()}" and cfg.cluster.lease_ttl == 30.0
    assert "pg-pass-word" not in repr(cfg), "the URL's password never shows in the config's repr"
    assert "pg-pass-word" in cfg.secret_values(), "and it is redacted from every log line"


def test_cluster_settings(tmp_path):
    cfg = load_config(write(tmp_path, TENANT + "state: {url: 'postgresql://td@db/tdgraph'}\n"
                                                "cluster: {replica: collector-a, lease_ttl: 45s}\n"), env=ENV)
    assert cfg.cluster.replica == "collector-a" and cfg.cluster.lease_ttl == 45.0


def test_sqlite_has_no_cluster(tmp_path):
    cfg = load_config(write(tmp_path, TENANT), env=ENV)
    assert cfg.state_url is None and cfg.cluster is None


def test_url_and_path_together_name_both_keys_and_the_file(tmp_path):
    msg = error_for(tmp_path, TENANT + "state: {path: ./s.db, url: 'postgresql://td@db/tdgraph'}\n", env=ENV)
    assert "state.url" in msg and "state.path" in msg


def test_cluster_without_state_url(tmp_path):
    msg = error_for(tmp_path, TENANT + "cluster: {replica: a}\n", env=ENV)
    assert "cluster" in msg and "state.url" in msg


@pytest.mark.parametrize("ttl, why", [("2s", "at least 3s"), ("soon", "duration"), ("0s", "at least 3s")])
def test_bad_lease_ttl(tmp_path, ttl, why):
    msg = error_for(tmp_path, TENANT + f"state: {{url: 'postgresql://td@db/x'}}\ncluster: {{lease_ttl: {ttl}}}\n", env=ENV)
    assert "cluster.lease_ttl" in msg and why in msg


def test_unknown_cluster_key(tmp_path):
    msg = error_for(tmp_path, TENANT + "state: {url: 'postgresql://td@db/x'}\ncluster: {replicas: 3}\n", env=ENV)
    assert "cluster.replicas" in msg


def test_a_non_postgres_url_is_refused_without_echoing_it(tmp_path):
    msg = error_for(tmp_path, TENANT + "state: {url: 'mysql://td:${PG_PASSWORD}@db/x'}\n", env=ENV)
    assert "state.url" in msg and "postgresql://" in msg and "pg-pass-word" not in msg


def test_an_unset_variable_in_state_url_is_named(tmp_path):
    msg = error_for(tmp_path, TENANT + "state: {url: 'postgresql://td:${NOPE}@db/x'}\n",
                    env={"CONTOSO_SECRET": "x"})
    assert "NOPE" in msg and "state.url" in msg


def test_a_bad_replica_name(tmp_path):
    msg = error_for(tmp_path, TENANT + "state: {url: 'postgresql://td@db/x'}\ncluster: {replica: 'a b'}\n", env=ENV)
    assert "cluster.replica" in msg
