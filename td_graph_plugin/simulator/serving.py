"""``td-graph simulate``: one simulated tenant served until interrupted, and its td-graph config."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TextIO

from .server import GraphSimulator
from .tenant import SimTenant

__all__ = ["serve", "sim_config_yaml"]


def sim_config_yaml(sim: GraphSimulator, tenant: SimTenant, state_path: str = "./td-graph-sim-state.db") -> str:
    """A ready-to-use td-graph config for one simulated tenant (valid YAML, CA path as a comment)."""

    def q(value: str) -> str:  # double-quoted YAML scalar
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "\n".join(
        [
            "# td-graph configuration for the local Graph simulator",
            f"# CA certificate of the simulator: {sim.ca_path}",
            "tenants:",
            "  - name: sim",
            f"    tenant_id: {q(tenant.tenant_id)}",
            f"    client_id: {q(tenant.client_id)}",
            f"    client_secret: {q(tenant.client_secret)}",
            f"    login_endpoint: {q(sim.base_url)}",
            f"    graph_endpoint: {q(sim.base_url)}",
            f"    ca_bundle: {q(sim.ca_path or '')}",
            "output:",
            "  type: stdout",
            "state:",
            f"  path: {q(state_path)}",
            "",
        ]
    )


def serve(port: int = 8443, profile: str = "e5", host: str = "127.0.0.1", volumes: dict | None = None, *,
          workdir: str | None = None, stop_event: threading.Event | None = None, out: TextIO | None = None) -> int:
    """Run a simulator with one tenant until SIGINT/SIGTERM (or ``stop_event``).

    Prints the td-graph YAML config for the tenant (and the CA path) to stdout first.
    Returns 0 after a clean stop, 1 if the port cannot be bound.
    """
    out = out or sys.stdout
    done = stop_event or threading.Event()
    sim = GraphSimulator(host=host, port=port, workdir=workdir)
    try:
        sim.start()
    except OSError as exc:
        sys.stderr.write(f"td-graph simulate: cannot listen on {host}:{port}: {exc.strerror or exc}\n")
        return 1
    previous = {}
    try:
        tenant = sim.add_tenant(profile=profile, volumes=volumes)
        out.write(sim_config_yaml(sim, tenant))
        out.flush()
        sys.stderr.write(f"td-graph simulator ({profile}) listening on {sim.base_url}; CA: {sim.ca_path}. "
                         "Ctrl-C to stop.\n")
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: done.set())
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sim.stop()
    return 0
