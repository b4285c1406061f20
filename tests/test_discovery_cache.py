"""Issue 16: a new process reuses the licences and permissions an earlier one discovered.

Pass 2 of ``benchmarks/many_tenants.py`` (a fresh ``run --once`` per poll) spent four of its ten
requests per tenant re-reading ``/subscribedSkus`` and the service principals.  The stored copy
is reused only within the TTL a long-running collector keeps it in memory, and only while the
new token carries the same ``roles`` claim, so a grant or a revoke is seen at the next start.
The tokens below are written by hand (base64url of a JSON payload, as Entra's access tokens
are: https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference).
"""

from __future__ import annotations

import base64
import json

import pytest

from td_graph_plugin.discovery import Discovery
from td_graph_plugin.errors import AuthError, StateError
from td_graph_plugin.plan import DISCOVERY_TTL, TenantPlanner
from td_graph_plugin.simulator import GraphSimulator
from tests.integration_support import env_for, read_records, td_graph, write_config


def jwt(roles) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"roles": list(roles)}).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{payload}.c2ln"


class Tokens:
    def __init__(self, token: str | Exception) -> None:
        self.value = token

    def token(self) -> str:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


class Client:
    def __init__(self, token: str | Exception) -> None:
        self.tokens = Tokens(token)


class Store:
    """The state's tenant_cache as a dict (the contract suite checks the real backends)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[float, str]] = {}
        self.fail = False

    def cached(self, tenant, kind):
        if self.fail:
            raise StateError("state database x: disk I/O error")
        return self.rows.get((tenant, kind))

    def set_cached(self, tenant, kind, at, payload):
        if self.fail:
            raise StateError("state database x: disk I/O error")
        self.rows[(tenant, kind)] = (at, payload)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def counting(found: Discovery | None = None):
    calls = []

    def discover(client):
        calls.append(client)
        d = found or Discovery(capabilities={"entra_id_p1"}, skus=["AAD_PREMIUM"],
                               permissions={"AuditLog.Read.All", "Directory.Read.All"}, permissions_from="graph")
        return Discovery(capabilities=set(d.capabilities or ()) if d.capabilities is not None else None,
                         skus=list(d.skus), permissions=set(d.permissions) if d.permissions is not None else None,
                         permissions_from=d.permissions_from, errors=dict(d.errors), at=wall())

    wall = Clock(1_000_000.0)
    discover.calls = calls  # type: ignore[attr-defined]
    discover.wall = wall  # type: ignore[attr-defined]
    return discover


def planner(discover, store, **kw) -> TenantPlanner:
    """A new process: an empty memory, the same state."""
    return TenantPlanner(discover, store=store, wall=discover.wall, **kw)


ROLES = ["AuditLog.Read.All", "Directory.Read.All"]


def test_a_new_process_reuses_the_stored_discovery_with_the_same_roles():
    store, discover = Store(), counting()
    first = planner(discover, store).discovery("t1", Client(jwt(ROLES)))
    assert len(discover.calls) == 1 and ("t1", "discovery") in store.rows
    discover.wall.t += 600  # ten minutes later, the next cron run
    again = planner(discover, store).discovery("t1", Client(jwt(reversed(ROLES))))  # order is not a change
    assert len(discover.calls) == 1, "the second process must not discover again"
    assert again.capabilities == {"entra_id_p1"} and again.skus == ["AAD_PREMIUM"]
    assert again.permissions == {"AuditLog.Read.All", "Directory.Read.All"} and again.permissions_from == "graph"
    assert again.at == first.at == 1_000_000.0, "the time it was read from Graph, not the time it was loaded"


@pytest.mark.parametrize("roles", [ROLES + ["SecurityAlert.Read.All"], ROLES[:1], []])
def test_a_grant_or_a_revoke_in_the_new_token_discovers_again(roles):
    store, discover = Store(), counting()
    planner(discover, store).discovery("t1", Client(jwt(ROLES)))
    planner(discover, store).discovery("t1", Client(jwt(roles)))
    assert len(discover.calls) == 2


def test_opaque_tokens_reuse_within_the_ttl_only():
    store, discover = Store(), counting()
    planner(discover, store).discovery("t1", Client("opaque-token"))
    discover.wall.t += DISCOVERY_TTL - 1
    planner(discover, store).discovery("t1", Client("opaque-token"))
    assert len(discover.calls) == 1
    discover.wall.t += 2  # now older than the TTL
    planner(discover, store).discovery("t1", Client("opaque-token"))
    assert len(discover.calls) == 2
    # An opaque token after a readable one (or the reverse) is not "the same roles".
    planner(discover, store).discovery("t1", Client(jwt(ROLES)))
    assert len(discover.calls) == 3


def test_a_stored_copy_from_the_future_is_not_trusted():
    store, discover = Store(), counting()
    planner(discover, store).discovery("t1", Client(jwt(ROLES)))
    discover.wall.t -= 3600  # the clock was set back an hour
    planner(discover, store).discovery("t1", Client(jwt(ROLES)))
    assert len(discover.calls) == 2


def test_a_discovery_with_errors_is_not_stored():
    store = Store()
    discover = counting(Discovery(capabilities=None, permissions={"AuditLog.Read.All"}, permissions_from="graph",
                                  errors={"licences": "HTTP 503"}))
    planner(discover, store).discovery("t1", Client(jwt(ROLES)))
    assert store.rows == {}
    planner(discover, store).discovery("t1", Client(jwt(ROLES)))
    assert len(discover.calls) == 2


def test_invalidate_bypasses_the_stored_copy_and_replaces_it():
    store, discover = Store(), counting()
    p = planner(discover, store)
    p.discovery("t1", Client(jwt(ROLES)))
    p.invalidate("t1")  # a source answered with a licence error after all
    discover.wall.t += 5
    d = p.discovery("t1", Client(jwt(ROLES)))
    assert len(discover.calls) == 2 and d.at == 1_000_005.0
    assert json.loads(store.rows[("t1", "discovery")][1])["at"] == 1_000_005.0
    p.discovery("t1", Client(jwt(ROLES)))
    assert len(discover.calls) == 2, "memory serves until the TTL again"


def test_no_token_means_no_reuse():
    store, discover = Store(), counting()
    planner(discover, store).discovery("t1", Client(jwt(ROLES)))
    planner(discover, store).discovery("t1", Client(AuthError("AADSTS7000215: invalid client secret")))
    assert len(discover.calls) == 2


@pytest.mark.parametrize("payload", ["not json", "[]", '{"v": 2}', '{"v": 1, "at": 1}',
                                     '{"v": 1, "at": "x", "roles": null, "capabilities": [], "skus": [], '
                                     '"permissions": [], "permissions_from": "graph"}',
                                     '{"v": 1, "at": 1000000, "roles": null, "capabilities": [1], "skus": [], '
                                     '"permissions": [], "permissions_from": "graph"}'])
def test_a_corrupt_stored_copy_is_ignored_and_replaced(payload):
    store, discover = Store(), counting()
    store.rows[("t1", "discovery")] = (1_000_000.0, payload)
    planner(discover, store).discovery("t1", Client("opaque-token"))
    assert len(discover.calls) == 1
    assert json.loads(store.rows[("t1", "discovery")][1])["v"] == 1


def test_an_unreadable_state_falls_back_to_discovering():
    store, discover = Store(), counting()
    store.fail = True
    d = planner(discover, store).discovery("t1", Client(jwt(ROLES)))
    assert len(discover.calls) == 1 and d.capabilities == {"entra_id_p1"}


def test_tenants_are_apart():
    store, discover = Store(), counting()
    planner(discover, store).discovery("t1", Client(jwt(ROLES)))
    planner(discover, store).discovery("t2", Client(jwt(ROLES)))
    assert len(discover.calls) == 2


# --- end to end: three td-graph processes against the simulator ----------------------------

DISCOVERY_PATHS = ("/v1.0/subscribedSkus", "/v1.0/servicePrincipals")


def test_run_once_discovers_once_then_again_after_a_grant(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as sim:
        tenant = sim.add_tenant(profile="e5")
        out = tmp_path / "out.ndjson"
        cfg = write_config(sim, tenant, tmp_path, output=str(out),
                           sources=["audit_logs.sign_ins", "audit_logs.directory_audits"])

        def run() -> list:
            sim.clear_requests()
            proc = td_graph("run", "-c", cfg, "--once", env=env_for(tenant))
            assert proc.returncode == 0, proc.stderr.decode()[-3000:]
            return [r.path for r in sim.requests if r.path.startswith(DISCOVERY_PATHS)]

        assert len(run()) == 4, "first run: skus, our SP, Graph's SP, our app role assignments"
        assert run() == [], "second run: the stored discovery, same roles in the new token"
        tenant.permissions = {"AuditLog.Read.All", "Directory.Read.All", "Application.Read.All"}
        assert len(run()) == 4, "a changed grant shows in the new token's roles: discover again"
        sources = {r["source"] for r in read_records(out)}
        assert sources == {"audit_logs.sign_ins", "audit_logs.directory_audits"}
