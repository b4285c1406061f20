"""``td-graph demo``: the whole pipeline offline, on the embedded defaults.

It starts the Graph simulator (TLS on loopback, a throwaway CA), writes a config for it
(SQLite state), runs one collection pass, lets the simulated tenant produce new, late and
updated events, and runs again: the second pass emits exactly those.  It ends with the
``td-graph status`` table of its state.

Where things go: piped (``td-graph demo | jq``), the records are NDJSON on stdout and nothing
else is (the table and the progress lines go to stderr); on a terminal the records go to a
file whose path is printed at the end, and the table to stdout.

The simulator is not part of the runtime's dependencies: it needs ``trustme`` (its throwaway
CA), installed by the ``demo`` extra.  ``run_demo`` and ``run_simulate`` check for it first and
say what to install instead of failing with a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from datetime import timedelta
from typing import TextIO

import yaml

from ..timeutil import utcnow

__all__ = ["run_demo", "run_simulate", "demo_config", "simulator_missing", "DEMO_EXTRA", "MISSING_EXIT"]

DEMO_EXTRA = "td-graph-plugin[demo]"
MISSING_EXIT = 2  # the command cannot run in this environment (an optional dependency is missing)
SIMULATOR_PACE = ("identity_reports", "identity_protection", "security", "directory", "intune", "default")

log = logging.getLogger("td_graph_plugin.demo")


def demo_config(sim, tenant, state_path: str, *, output: dict | None = None, sources: dict | None = None) -> dict:  # type: ignore[no-untyped-def]
    """A td-graph config dict for one simulated tenant (also used by the tests)."""
    return {
        "tenants": [
            {
                "name": "demo",
                "tenant_id": tenant.tenant_id,
                "client_id": tenant.client_id,
                "client_secret": "${TD_GRAPH_DEMO_SECRET}",
                "login_endpoint": sim.base_url,
                "graph_endpoint": sim.base_url,
                "ca_bundle": sim.ca_path,
            }
        ],
        "sources": sources or {"include": ["all"]},
        "state": {"path": state_path},
        "output": output or {"type": "stdout"},
        # The simulator is not Microsoft: no need to pace to Graph's documented budgets.
        "throttling": {name: {"requests": 10000, "per": "10s"} for name in SIMULATOR_PACE},
    }


def simulator_missing(command: str) -> str | None:
    """The message to print when ``td-graph <command>`` cannot start the simulator here, else None.

    Checked before importing the simulator, so a runtime-only install gets one clear line
    naming the extra to install, not an ImportError traceback.
    """
    try:
        import trustme  # noqa: F401  (the simulator's test CA)
    except ImportError:
        return (f"td-graph {command} needs the simulator's test CA (the trustme package), which the runtime "
                f"does not install: pip install '{DEMO_EXTRA}'")
    return None


def _refuse(command: str) -> int | None:
    """Print why ``command`` cannot run and return its exit code, or None when it can."""
    problem = simulator_missing(command)
    if problem is None:
        return None
    print(f"td-graph {command}: {problem}", file=sys.stderr)
    return MISSING_EXIT


def run_simulate(port: int = 8443, profile: str = "e5", host: str = "127.0.0.1") -> int:
    """``td-graph simulate``: serve one simulated tenant until interrupted."""
    refused = _refuse("simulate")
    if refused is not None:
        return refused
    from ..simulator import serve

    return int(serve(port=port, profile=profile, host=host) or 0)


def run_demo(profile: str = "e5", rounds: int = 2, state_path: str | None = None) -> int:
    """Run the demo; records go to stdout when it is piped, to a file named at the end on a
    terminal.  It ends with ``td-graph status``'s table: on stderr when the records are on
    stdout (a pipe stays pure NDJSON), on stdout otherwise."""
    refused = _refuse("demo")
    if refused is not None:
        return refused
    from ..simulator import GraphSimulator
    from .exits import guarded
    from .run_cmd import cmd_run

    records = _records_file() if sys.stdout.isatty() else None
    output = {"type": "file", "path": records} if records else {"type": "stdout"}
    with tempfile.TemporaryDirectory(prefix="td-graph-demo-") as workdir, GraphSimulator(workdir=workdir) as sim:
        tenant = sim.add_tenant(profile=profile)
        config_path = os.path.join(workdir, "td-graph.yaml")
        state = state_path or os.path.join(workdir, "state.db")
        with open(config_path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(demo_config(sim, tenant, state, output=output), fh, sort_keys=False)
        os.environ["TD_GRAPH_DEMO_SECRET"] = tenant.client_secret
        print(f"td-graph demo: simulated tenant ({profile}) at {sim.base_url}", file=sys.stderr)
        code = 0
        for n in range(1, max(1, rounds) + 1):
            if n > 1:
                _tenant_activity(tenant)
                print(f"td-graph demo: pass {n}: only new, late and updated events follow", file=sys.stderr)
            else:
                print("td-graph demo: pass 1: backfill of the last 24 hours", file=sys.stderr)
            sys.stdout.flush()
            once = argparse.Namespace(config=config_path, once=True, sources=None, tenants=None, log_level=None)
            code = guarded(cmd_run, once)
            if code != 0:
                break
        _print_status(config_path, table_to=sys.stdout if records else sys.stderr)
        if records:
            print(f"td-graph demo: the records are in {records} (pipe `td-graph demo` to get them on stdout)", file=sys.stderr)
        return code


def _records_file() -> str:
    """A file for the records that outlives the demo (its folder is the caller's to remove)."""
    return os.path.join(tempfile.mkdtemp(prefix="td-graph-demo-records-"), "records.ndjson")


def _print_status(config_path: str, *, table_to: TextIO) -> None:
    """``td-graph status -c CONFIG``'s table for the demo's state."""
    from ..runtime import load_validated
    from ..state import read_state
    from .status_cmd import render_status, status_rows

    config, _pm, catalogue = load_validated(config_path)
    snapshot = read_state(config.state_path)
    print("td-graph demo: where each source stands now (`td-graph status -c FILE`):", file=sys.stderr)
    table_to.flush()
    print(render_status(status_rows(config, catalogue, snapshot), snapshot, config.state_path), end="", file=table_to)
    table_to.flush()


def _tenant_activity(tenant) -> None:  # type: ignore[no-untyped-def]
    """New sign-ins, one arriving late (inside the overlap), updated alerts, changed users."""
    now = utcnow()
    tenant.add_sign_ins(3, start=now - timedelta(minutes=4), end=now - timedelta(minutes=3))
    tenant.add_sign_ins(1, start=now - timedelta(minutes=12), end=now - timedelta(minutes=11))
    tenant.add_directory_audits(2, start=now - timedelta(minutes=4), end=now - timedelta(minutes=3))
    tenant.update_alerts(2)
    tenant.change_users(2)
    tenant.delete_users(1)
