"""Start-up cost: a collector on SQLite never imports psycopg (~0.1 s of every ``run --once``;
issue 16's fixed cost).  Checked in a fresh interpreter, through the modules ``run`` loads."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import td_graph_plugin.cli.main as main
main.build_parser()
import td_graph_plugin.cli.run_cmd, td_graph_plugin.cli.run_cluster, td_graph_plugin.runtime
print(sorted(m for m in sys.modules if m == "psycopg" or m.startswith("psycopg.")))
"""


def test_the_run_path_on_sqlite_does_not_import_psycopg():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    assert out == "[]", f"psycopg imported on the SQLite run path: {out}"


def test_the_url_helpers_still_read_a_postgresql_url():
    from td_graph_plugin.state.pgschema import describe_url, mask

    url = "postgresql://collector:s3cret-pw@db.example.test:5433/tdgraph"
    assert describe_url(url) == "PostgreSQL database tdgraph on db.example.test:5433 as collector"
    assert mask(f"could not connect to {url}", url) == \
        "could not connect to postgresql://collector:***@db.example.test:5433/tdgraph"
