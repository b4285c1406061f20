"""A local, TLS, loopback-only fake of the Microsoft login service and Microsoft Graph.

``td-graph simulate``, ``td-graph demo``, the integration tests and the benchmarks run
against it.  It serves generated, realistic data and enforces the documented constraints
(graph-facts.md) so that a client a real tenant would reject is rejected here too::

    from td_graph_plugin.simulator import GraphSimulator
    with GraphSimulator() as sim:
        t = sim.add_tenant(profile="e5")            # ids, secret, data
        # login_endpoint = graph_endpoint = sim.base_url, ca_bundle = sim.ca_path

Every source of td-graph's catalogue is served (Defender incidents/alerts/Secure Score,
Identity Protection, sign-ins of every event type, audits, provisioning, directory delta for
users/groups/devices/applications/service principals, consent requests, Intune, the
registration report and the Office 365 usage report with its 302 to a CSV), plus the
discovery calls td-graph makes to learn its granted permissions
(``/servicePrincipals(appId='...')``, ``/servicePrincipals/{id}/appRoleAssignments``).

Profiles (``profiles.PROFILES``): ``all`` (every capability, incl. Workload ID Premium: the
all-licensed tenant), ``e5`` (realistic E5: everything but Workload ID Premium), ``restricted``
(E5 licences, app not granted SecurityIncident.* nor IdentityRiskEvent.*), ``p1``, ``free``.

Modules: ``server`` (the public object, lifecycle, knobs), ``transport`` (TLS + HTTP/1.1,
byte-level faults), ``pipeline`` (routing, Graph's checks in order), ``auth`` (OIDC discovery,
token endpoint), ``endpoints`` (the table of collections: add a source by adding a row),
``routes`` (write/lookup calls that are not a collection: ``register_route``), ``graph_routes``
(built-in routes: discovery, incident sub-resources, usage reports), ``handlers`` (paging,
delta), ``odata`` (query grammar, signed tokens), ``tenant`` (data model), ``generators`` and
``gen_more`` (objects), ``graph_roles`` (Microsoft Graph app roles with their real ids),
``profiles`` (licences), ``faults`` (injected failures, throttling budgets), ``responses``
(error shapes), ``tls``, ``timefmt``.

Note for clients: ``requests`` lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` from the
environment override ``Session.verify``; pass ``verify=ca_path`` per request or set
``session.trust_env = False``, or the simulator's CA is silently not used.

Knobs: ``sim.throttle(prefix, count, retry_after=2.0, status=429)``,
``sim.fault(prefix, kind, count=1)`` (reset / truncated / short_read / not_json / stall /
``slow:<s>``), ``sim.inject_empty_pages(prefix, count)``, ``sim.set_page_size(path, n)``,
``sim.page_delay``, ``sim.token_lifetime``, ``sim.enforce_budgets``, ``sim.clock_offset``;
per tenant: ``t.permissions`` (granted app roles, None = all; settable), ``t.profile``
(settable), ``t.replay_every``, ``t.expire_delta_tokens(mode)``, ``t.revoke_tokens()``,
``t.ext`` (free dict for other modules).  Data: ``t.add_*`` per source, ``t.update_alerts``,
``t.update_incidents``, ``t.change_users``/``t.delete_users``, generic
``t.change_objects(collection, n)``, ``t.delete_objects(collection, n, permanent=False)``,
``t.update_object(collection, id, **fields)``, ``t.find_object(collection, key, key_field="id")``,
``t.change_control_profiles``, ``t.change_consent_requests``, ``t.change_risky_users``.
"""

from __future__ import annotations

from .profiles import CAPABILITIES, PROFILES
from .routes import SimRequest, SimResponse, graph_error, register_route, unregister_route
from .server import GraphSimulator, RequestRecord
from .tenant import DEFAULT_VOLUMES, SimTenant
from . import directory_writes  # noqa: E402,F401  (registers the user-isolation routes)

__all__ = ["GraphSimulator", "SimTenant", "RequestRecord", "PROFILES", "CAPABILITIES", "DEFAULT_VOLUMES",
           "serve", "sim_config_yaml", "SimRequest", "SimResponse", "register_route", "unregister_route",
           "graph_error"]


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
          workdir: str | None = None, stop_event=None, out=None) -> int:
    """Run a simulator with one tenant until SIGINT/SIGTERM (or ``stop_event``).

    Prints the td-graph YAML config for the tenant (and the CA path) to stdout first.
    Returns 0 after a clean stop, 1 if the port cannot be bound.
    """
    import signal
    import sys
    import threading

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
