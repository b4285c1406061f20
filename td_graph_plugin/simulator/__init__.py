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

Modules: ``server`` (the public object: lifecycle, ``add_tenant``), ``core`` (its state and
knobs, what every handler reads), ``serving`` (``serve``, ``sim_config_yaml``), ``transport``
(TLS + HTTP/1.1, byte-level faults), ``records`` (the request log's entries), ``pipeline``
(routing, Graph's checks in order), ``auth`` (OIDC discovery, token endpoint) and ``tokens``,
``endpoints`` (the table of collections: add a source by adding a row), ``routes``
(write/lookup calls that are not a collection: ``register_route``), ``graph_routes`` (built-in
routes: discovery, incident sub-resources, usage reports) with ``downloads``,
``directory_writes`` (user isolation writes), ``handlers`` (paging, delta), ``odata`` (query
grammar, signed tokens); the data model: ``tenant`` (``SimTenant``) composed of
``tenant_base`` (collections, change logs, generic object API; ``collection``,
``credentials``) and one part per Graph area: ``tenant_audit``, ``tenant_security``,
``tenant_identity``, ``tenant_directory``, ``tenant_intune``; objects: ``generators`` (users,
sign-ins, audits, alerts) and ``gen_security``, ``gen_identity``, ``gen_audit``,
``gen_directory``, ``gen_intune``, ``gen_reports`` (on ``gen_common``); ``graph_roles``
(Microsoft Graph app roles with their real ids) and ``role_catalogue`` (every permission
exposed); ``profiles`` (licences), ``faults`` (injected failures, request triggers, throttling
budgets), ``responses`` (error shapes), ``tls``, ``timefmt``.

Imports only go down this list's dependency order (checked by a test): nothing inside the
package imports the package itself, handlers are typed against ``core.SimCore`` and the tenant
against ``tenant_base.TenantHost``, so there is no import cycle.

Note for clients: ``requests`` lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` from the
environment override ``Session.verify``; pass ``verify=ca_path`` per request or set
``session.trust_env = False``, or the simulator's CA is silently not used.

Knobs: ``sim.throttle(prefix, count, retry_after=2.0, status=429)``,
``sim.fault(prefix, kind, count=1)`` (reset / truncated / short_read / not_json / stall /
``slow:<s>``), ``sim.fail_at(prefix, n, fault_or_status, count=1)`` and
``sim.at_request(prefix, n, action)`` (armed synchronously at the n-th request under the
prefix: deterministic mid-paging faults), ``sim.inject_empty_pages(prefix, count)``, ``sim.set_page_size(path, n)``,
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

# Re-exports only: no module of the package imports this one.
from .profiles import CAPABILITIES, PROFILES
from .routes import SimRequest, SimResponse, graph_error, register_route, unregister_route
from .server import GraphSimulator, RequestRecord
from .serving import serve, sim_config_yaml
from .tenant import DEFAULT_VOLUMES, SimTenant

__all__ = ["GraphSimulator", "SimTenant", "RequestRecord", "PROFILES", "CAPABILITIES", "DEFAULT_VOLUMES",
           "serve", "sim_config_yaml", "SimRequest", "SimResponse", "register_route", "unregister_route",
           "graph_error"]
