"""Helpers for tests that run the real ``td-graph`` process against the Graph simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import orjson
import yaml

from td_graph_plugin.cli.demo import demo_config

FOUNDATION = ["audit_logs.sign_ins", "audit_logs.directory_audits", "security.alerts_v2", "directory.users"]


def write_config(sim, tenant, tmp_path, *, output: str | None = None, sources=FOUNDATION, settings: dict | None = None, extra: dict | None = None) -> str:
    """A config file for ``tenant``; ``output`` = path of a file output (stdout when None)."""
    out = {"type": "file", "path": output} if output else {"type": "stdout"}
    src: dict[str, Any] = {"include": list(sources)}
    if settings:
        src["settings"] = settings
    cfg = demo_config(sim, tenant, str(tmp_path / "state.db"), output=out, sources=src)
    cfg.update(extra or {})
    path = tmp_path / "td-graph.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def env_for(tenant) -> dict[str, str]:
    env = dict(os.environ)
    env["TD_GRAPH_DEMO_SECRET"] = tenant.client_secret
    return env


def td_graph(*args: str, env=None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "td_graph_plugin.cli.main", *args],
        capture_output=True, env=env, timeout=timeout, **kw,
    )


def read_records(path) -> list[dict]:
    with open(path, "rb") as fh:
        return [orjson.loads(line) for line in fh if line.strip()]


def parse_stdout(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]
