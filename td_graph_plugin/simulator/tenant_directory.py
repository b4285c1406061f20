"""Directory data of a simulated tenant: users (with authentication-method registration details),
groups, devices, applications and service principals (td-graph's and Microsoft's included),
consent requests."""

from __future__ import annotations

from . import generators as gen
from .gen_common import MICROSOFT_TENANT_ID, stable_uuid
from .gen_directory import (change_consent_request, first_party_service_principals, make_application,
                            make_consent_request, make_device, make_group, make_service_principal)
from .gen_reports import make_registration_details
from .graph_roles import GRAPH_APP_ID, app_role
from .tenant_base import TenantBase

__all__ = ["DirectoryData"]


class DirectoryData(TenantBase):
    """Directory collections served by list and delta endpoints; system objects are pinned."""

    # -- directory
    def add_users(self, n: int) -> list[dict]:
        """``n`` users (and their authentication-method registration details)."""
        with self.lock:
            objs = gen.make_users(self.rng, n, self.domain, self._user_counter, self._now())
            self._user_counter += n
            self.collections["users"].extend(objs)
            self._record("users", [u["id"] for u in objs])
            now = self._now()
            rng = self.xrng
            self.add_objects("user_registration_details",
                             [make_registration_details(rng, u, now, admin=u["jobTitle"] == "IT Admin") for u in objs])
        return objs

    def change_users(self, n_or_ids) -> list[dict]:
        """Attribute changes (job title, office, department, phone) on ``n`` users or these ids."""
        with self.lock:
            if isinstance(n_or_ids, int):
                pool = list(self.users)
                chosen = self.rng.sample(pool, min(n_or_ids, len(pool)))
            else:
                chosen = self._pick("users", n_or_ids)
            new = [gen.change_user(self.rng, u) for u in chosen]
            self.collections["users"].replace(new)
            self._record("users", [u["id"] for u in new], changed=self._touched(chosen, new))
        return new

    def delete_users(self, n_or_ids, permanent: bool = False) -> list[dict]:
        """Delete users: delta reports ``@removed`` reason ``changed`` (soft) or ``deleted``."""
        with self.lock:
            if isinstance(n_or_ids, int):
                pool = list(self.users)
                gone = self.rng.sample(pool, min(n_or_ids, len(pool)))
            else:
                gone = self._pick("users", n_or_ids)
            self.collections["users"].remove({u["id"] for u in gone})
            self._record("users", [u["id"] for u in gone], "deleted" if permanent else "changed")
        return gone

    def add_groups(self, n: int) -> list[dict]:
        with self.lock:
            now = self._now()
            objs = [make_group(self.xrng, self._next("groups"), self.domain, now) for _ in range(n)]
            self.add_objects("groups", objs)
        return objs

    def add_devices(self, n: int) -> list[dict]:
        with self.lock:
            now = self._now()
            objs = [make_device(self.xrng, self._next("devices"), now) for _ in range(n)]
            self.add_objects("devices", objs)
        return objs

    def add_applications(self, n: int, *, managed_identities: int = 0) -> list[dict]:
        """App registrations, each with its service principal; plus ``managed_identities`` MI service principals."""
        with self.lock:
            now = self._now()
            rng = self.xrng
            apps = [make_application(rng, self._next("applications"), self.domain, now) for _ in range(n)]
            self.add_objects("applications", apps)
            sps = [make_service_principal(rng, a["appId"], a["displayName"], self.tenant_id) for a in apps]
            for _ in range(managed_identities):
                k = self._next("managed_identities")
                name = ("vm-build-agent", "func-ingest", "logic-siem-export", "aks-workload")[k % 4] + f"-{k // 4 + 1:02d}"
                sp = make_service_principal(rng, gen.guid(rng), name, self.tenant_id)
                sp["servicePrincipalType"] = "ManagedIdentity"
                sp["tags"] = []
                sp["alternativeNames"] = ["isExplicit=False",
                                          f"/subscriptions/{stable_uuid(self.tenant_id, 'sub')}/resourcegroups/rg-prod/"
                                          f"providers/Microsoft.Compute/virtualMachines/{name}"]
                sps.append(sp)
            self.add_objects("service_principals", sps)
        return apps

    def _add_system_objects(self) -> None:
        """td-graph's app registration and service principal, Microsoft Graph's service principal,
        and other first-party ones: pinned (random changes and deletions never pick them)."""
        rng = self.xrng
        now = self._now()
        app = make_application(rng, 0, self.domain, now, app_id=self.client_id, display_name="td-graph (ThreatDefence)")
        app["id"] = stable_uuid(self.tenant_id, "app", self.client_id)
        ours = make_service_principal(rng, self.client_id, "td-graph (ThreatDefence)", self.tenant_id, sp_id=self.sp_id)
        graph = make_service_principal(rng, GRAPH_APP_ID, "Microsoft Graph", MICROSOFT_TENANT_ID, sp_id=self.graph_sp_id,
                                          app_roles=[app_role(r) for r in self._sim.role_names()], first_party=True)
        others = [make_service_principal(rng, aid, name, MICROSOFT_TENANT_ID, sp_id=stable_uuid(self.tenant_id, "sp", aid),
                                             first_party=True)
                  for aid, name in first_party_service_principals()]
        self._pinned.update({app["id"], ours["id"], graph["id"]} | {o["id"] for o in others})
        self.add_objects("applications", [app])
        self.add_objects("service_principals", [ours, graph] + others)

    # -- governance
    def add_consent_requests(self, n: int) -> list[dict]:
        with self.lock:
            users = self._user_pool()
            now = self._now()
            objs = [make_consent_request(self.xrng, self._next("consent"), users, now) for _ in range(n)]
            self.add_objects("app_consent_requests", objs)
        return objs

    def change_consent_requests(self, n_or_ids) -> list[dict]:
        """Another user asks, a scope is added, or a user request completes."""
        return self.change_objects("app_consent_requests", n_or_ids)

    def _change(self, collection: str, chosen: list[dict], now: float) -> list[dict]:
        if collection == "users":
            return [gen.change_user(self.rng, o) for o in chosen]
        if collection == "app_consent_requests":
            users = self._user_pool()
            return [change_consent_request(self.xrng, o, users, now - 30.0) for o in chosen]
        return super()._change(collection, chosen, now)
