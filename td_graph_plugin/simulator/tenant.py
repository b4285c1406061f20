"""A simulated tenant: its app registration, licence profile, data and change log.

``SimTenant`` is composed of one part per Graph area, each in its own module:
``tenant_audit`` (sign-ins, directory audits, provisioning), ``tenant_security`` (alerts,
incidents, Secure Score), ``tenant_identity`` (Identity Protection), ``tenant_directory``
(users, groups, devices, applications, service principals, consent requests) and
``tenant_intune``, on ``tenant_base.TenantBase`` (collections, change logs, the generic object
API, licence and permissions).  This module adds the default volumes and ``populate``.
"""

from __future__ import annotations

from .collection import Collection
from .tenant_audit import AuditLogsData
from .tenant_base import DELTA_EXPIRY_MODES, TenantHost
from .tenant_directory import DirectoryData
from .tenant_identity import IdentityProtectionData
from .tenant_intune import IntuneData
from .tenant_security import SecurityData

__all__ = ["Collection", "SimTenant", "TenantHost", "DEFAULT_VOLUMES", "DELTA_EXPIRY_MODES"]

# Object counts a new tenant gets (``add_tenant(volumes=...)`` overrides any of them).  Modest on
# purpose: ``td-graph demo`` reads every source.  Derived, not listed: incidents (from alerts),
# authentication-method registration details (one per user), service principals (one per
# application, the managed identities, td-graph's, Microsoft Graph's and a few first-party ones),
# the 20 Secure Score controls, 6 compliance policies and 8 device configurations.
DEFAULT_VOLUMES = {
    "users": 120, "sign_ins": 300, "directory_audits": 100, "alerts": 40,
    "sign_ins_non_interactive": 60, "sign_ins_service_principal": 20, "sign_ins_managed_identity": 15,
    "provisioning": 40, "secure_score_days": 30, "risky_users": 20, "risk_detections": 50,
    "risky_service_principals": 6, "service_principal_risk_detections": 10, "groups": 25, "devices": 30,
    "applications": 12, "managed_identities": 4, "app_consent_requests": 6, "managed_devices": 30,
    "intune_audit_events": 40,
}


class SimTenant(AuditLogsData, SecurityData, IdentityProtectionData, DirectoryData, IntuneData):
    """One tenant of the simulator (use ``GraphSimulator.add_tenant`` to make one).

    Data: ``collections`` (one per endpoint-table collection name), filled by ``populate`` and
    by the ``add_*`` methods of each area.  See ``tenant_base.TenantBase`` for the change logs,
    the generic object API, ``permissions``, ``profile`` and ``ext``.
    """

    def __repr__(self) -> str:
        return f"SimTenant(tenant_id={self.tenant_id!r}, profile={self.profile!r})"

    def populate(self, volumes: dict | None) -> None:
        vols = dict(DEFAULT_VOLUMES)
        if volumes:
            unknown = set(volumes) - set(DEFAULT_VOLUMES)
            if unknown:
                raise ValueError(f"unknown volume keys {sorted(unknown)}; known: {sorted(DEFAULT_VOLUMES)}")
            vols.update(volumes)
        # The first four keep their data for a given seed whatever is added after them.
        self.add_users(vols["users"])
        self.add_sign_ins(vols["sign_ins"])
        self.add_directory_audits(vols["directory_audits"])
        self.add_alerts(vols["alerts"])
        self._add_system_objects()
        self.add_applications(vols["applications"], managed_identities=vols["managed_identities"])
        self.add_groups(vols["groups"])
        self.add_devices(vols["devices"])
        for key, event_type in (("sign_ins_non_interactive", "nonInteractiveUser"),
                                ("sign_ins_service_principal", "servicePrincipal"),
                                ("sign_ins_managed_identity", "managedIdentity")):
            if vols[key]:
                self.add_sign_ins(vols[key], event_type=event_type)
        self.add_provisioning(vols["provisioning"])
        self.add_secure_scores(vols["secure_score_days"])
        self.add_control_profiles()
        self.add_risky_users(vols["risky_users"])
        self.add_risk_detections(vols["risk_detections"], late_fraction=0.1)
        self.add_risky_service_principals(vols["risky_service_principals"])
        self.add_service_principal_risk_detections(vols["service_principal_risk_detections"])
        self.add_consent_requests(vols["app_consent_requests"])
        self.add_managed_devices(vols["managed_devices"])
        self.add_intune_policies()
        self.add_intune_audit_events(vols["intune_audit_events"])
