"""Audit logs of a simulated tenant: sign-ins of every event type, directory audits, provisioning."""

from __future__ import annotations

from . import generators as gen
from .gen_audit import make_provisioning
from .gen_common import MICROSOFT_TENANT_ID, stable_uuid
from .gen_directory import make_service_principal
from .tenant_base import TenantBase

__all__ = ["AuditLogsData"]


class AuditLogsData(TenantBase):
    """``/auditLogs/signIns`` (v1.0 interactive, beta every type), ``directoryAudits``, ``provisioning``."""

    # -- sign-ins, audits
    def add_sign_ins(self, n: int, *, start=None, end=None, visible_at=None, latency=None,
                     event_type: str = "interactiveUser") -> list[dict]:
        """Add ``n`` sign-ins, createdDateTime uniform in [start, end] (default: last 24 h to now-3 min).

        ``visible_at`` (datetime or epoch) hides them until then; ``latency=(lo, hi)`` seconds
        makes each visible at createdDateTime + uniform(lo, hi) instead.  ``event_type`` is
        one of ``generators.SIGN_IN_EVENT_TYPES`` (v1.0 serves ``interactiveUser`` only;
        servicePrincipal / managedIdentity sign-ins name a service principal, not a user).
        """
        if event_type not in gen.SIGN_IN_EVENT_TYPES:
            raise ValueError(f"event_type must be one of {gen.SIGN_IN_EVENT_TYPES}")
        with self.lock:
            objs = gen.make_sign_ins(self.rng, self._times(n, start, end), self._user_pool(), event_type)
            if event_type in ("servicePrincipal", "managedIdentity"):
                self._as_workload_sign_ins(objs, event_type)
            self._set_visibility(objs, "createdDateTime", visible_at, latency)
            self.collections["sign_ins"].extend(objs)
        return objs

    def _as_workload_sign_ins(self, objs: list[dict], event_type: str) -> None:
        """Turn fresh (not yet stored) sign-ins into service principal / managed identity ones."""
        sps = [o for o in self.collection("service_principals").items
               if (o.get("servicePrincipalType") == "ManagedIdentity") == (event_type == "managedIdentity")
               and o.get("appOwnerOrganizationId") != MICROSOFT_TENANT_ID]
        if not sps:
            sps = [make_service_principal(self.xrng, stable_uuid(self.tenant_id, "fallback-app"), "Automation",
                                             self.tenant_id)]
        rng = self.xrng
        for o in objs:
            sp = sps[rng.randrange(len(sps))]
            failed = rng.random() < 0.04
            o.update({
                "userDisplayName": None, "userPrincipalName": None, "userId": "",
                "appId": sp["appId"], "appDisplayName": sp["displayName"],
                "servicePrincipalId": sp["id"], "servicePrincipalName": sp["displayName"],
                "resourceDisplayName": "Microsoft Graph", "resourceId": self.graph_sp_id,
                "clientAppUsed": None, "conditionalAccessStatus": "notApplied", "appliedConditionalAccessPolicies": [],
                "deviceDetail": {"deviceId": "", "displayName": "", "operatingSystem": "", "browser": "",
                                 "isCompliant": False, "isManaged": False, "trustType": ""},
                "riskDetail": "none", "riskLevelAggregated": "none", "riskLevelDuringSignIn": "none", "riskState": "none",
                "riskEventTypes": [], "riskEventTypes_v2": [],
                "clientCredentialType": "managedIdentity" if event_type == "managedIdentity" else
                ("certificate" if rng.random() < 0.4 else "clientSecret"),
                "servicePrincipalCredentialKeyId": None if event_type == "managedIdentity" else gen.guid(rng),
                "managedServiceIdentity": {
                    "msiType": "systemAssigned" if event_type == "managedIdentity" else "none",
                    "associatedResourceId": sp.get("alternativeNames", [None, None])[-1] if event_type == "managedIdentity" else None,
                    "federatedTokenId": None, "federatedTokenIssuer": None,
                },
                "status": ({"errorCode": 7000215, "failureReason": "Invalid client secret is provided.",
                            "additionalDetails": None} if failed and event_type == "servicePrincipal"
                           else {"errorCode": 0, "failureReason": None, "additionalDetails": None}),
            })

    def add_directory_audits(self, n: int, *, start=None, end=None, visible_at=None, latency=None) -> list[dict]:
        with self.lock:
            objs = gen.make_directory_audits(self.rng, self._times(n, start, end), self._user_pool(), self.tenant_id)
            self._set_visibility(objs, "activityDateTime", visible_at, latency)
            self.collections["directory_audits"].extend(objs)
        return objs

    def add_provisioning(self, n: int, *, start=None, end=None, visible_at=None, latency=None) -> list[dict]:
        """Provisioning events (activityDateTime in [start, end], default last 24 h to now-3 min)."""
        with self.lock:
            users = self._user_pool()
            sps = [o for o in self.collection("service_principals").items
                   if o.get("appOwnerOrganizationId") == self.tenant_id and o.get("servicePrincipalType") == "Application"]
            if not sps:
                sps = [{"id": stable_uuid(self.tenant_id, "prov-sp"), "appId": stable_uuid(self.tenant_id, "prov-app"),
                        "displayName": "Salesforce"}]
            rng = self.xrng
            objs = [make_provisioning(rng, t, users[rng.randrange(len(users))], self.tenant_id, sps[rng.randrange(len(sps))])
                    for t in self._times(n, start, end, rng)]
            self._set_visibility(objs, "activityDateTime", visible_at, latency, rng)
            self.add_objects("provisioning", objs)
        return objs
