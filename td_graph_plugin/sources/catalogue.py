"""The built-in sources: one spec per permission the onboarding guide asks the customer for.

Registered through ``td_graph_register_sources`` exactly like a third-party plugin.  Every fact
(operators, page limits, permissions, licences, throttling class) is from graph-facts; where the
docs are silent ([U]) the spec takes the safe choice and its description says so.

A permission written ``A|B`` is satisfied by either (least privileged first); every entry of
``permissions`` must be satisfied.
"""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..spec import SourceSpec
from .isolation_feed import FEED_SPEC
from .reports import office365_csv_pager

__all__ = ["BUILTIN_SOURCES", "td_graph_register_sources"]

_PREFER_ENUMS = {"Prefer": "include-unknown-enum-members"}
_AUDIT = "AuditLog.Read.All"
_DIRECTORY = "Directory.Read.All"

BUILTIN_SOURCES: tuple[SourceSpec, ...] = (
    # --- Microsoft Defender XDR (security) -------------------------------------------------
    SourceSpec(
        name="security.alerts_v2",
        path="/security/alerts_v2",
        mode="window",
        permissions=["SecurityAlert.Read.All|SecurityAlert.ReadWrite.All"],
        licence="defender_xdr",
        time_field="lastUpdateDateTime",
        filter_ops=("ge", "le"),
        version_field="lastUpdateDateTime",
        page_size=1000,
        max_page_size=1000,
        interval="5m",
        lookback="24h",
        overlap="30m",
        delay="0s",
        throttle_class="security",
        headers=_PREFER_ENUMS,
        clouds=("global", "usgov", "dod"),
        description="Defender XDR alerts, polled on lastUpdateDateTime so every update is emitted "
        "again (no delay: an update is stamped when made; the overlap covers late indexing). $top max is undocumented [U]; 1000 is the legacy documented limit. No $orderby "
        "(not in the documented list).",
    ),
    SourceSpec(
        name="security.incidents",
        path="/security/incidents",
        mode="window",
        permissions=["SecurityIncident.Read.All|SecurityIncident.ReadWrite.All"],
        licence="defender_xdr",
        time_field="lastUpdateDateTime",
        filter_ops=("ge", "le"),
        version_field="lastUpdateDateTime",
        page_size=50,
        max_page_size=50,
        interval="5m",
        lookback="24h",
        overlap="30m",
        delay="0s",
        throttle_class="security",
        headers=_PREFER_ENUMS,
        clouds=("global", "usgov", "dod"),
        related={"alerts": "/security/incidents/{id}/alerts"},
        description="Defender XDR incidents; $top above 50 is a 400 with an empty error code. "
        "Never $expand=alerts with a $filter (persistent 500s on large tenants): with the "
        "fetch_alerts setting, each incident's alerts are read separately and attached.",
    ),
    SourceSpec(
        name="security.secure_scores",
        path="/security/secureScores",
        mode="window",
        permissions=["SecurityEvents.Read.All|SecurityEvents.ReadWrite.All"],
        time_field="createdDateTime",
        filter_ops=("ge", "le"),
        interval="6h",
        lookback="7d",
        overlap="1d",
        delay="0s",
        window_chunk="30d",
        throttle_class="secure_score",
        headers=_PREFER_ENUMS,
        description="The daily Secure Score (one object per day, id {tenantId}_{date}). Filter "
        "operators on createdDateTime are inferred [I]; ge/le are standard OData.",
    ),
    SourceSpec(
        name="security.secure_score_control_profiles",
        path="/security/secureScoreControlProfiles",
        mode="snapshot",
        permissions=["SecurityEvents.Read.All|SecurityEvents.ReadWrite.All"],
        time_field="lastModifiedDateTime",
        interval="24h",
        throttle_class="secure_score",
        headers=_PREFER_ENUMS,
        description="Secure Score controls, emitted when a control changes. Permission inferred "
        "from secureScores [I].",
    ),
    # --- Identity Protection (1 request/s per tenant shared by all apps; 429s without
    # Retry-After) --------------------------------------------------------------------------
    SourceSpec(
        name="identity_protection.risky_users",
        path="/identityProtection/riskyUsers",
        mode="window",
        permissions=["IdentityRiskyUser.Read.All|IdentityRiskyUser.ReadWrite.All"],
        licence="entra_id_p2",
        time_field="riskLastUpdatedDateTime",
        filter_ops=("ge", "le"),
        version_field="riskLastUpdatedDateTime",
        interval="10m",
        lookback="7d",
        overlap="3h",
        delay="5m",
        throttle_class="identity_protection",
        description="Risky users (full data needs Entra ID P2). Filter operators on "
        "riskLastUpdatedDateTime are undocumented [U]: ge/le; no $top sent (page size [U]). "
        "Overlap covers the documented up-to-2-hour risk latency.",
    ),
    SourceSpec(
        name="identity_protection.risk_detections",
        path="/identityProtection/riskDetections",
        mode="window",
        permissions=["IdentityRiskEvent.Read.All|IdentityRiskEvent.ReadWrite.All"],
        licence="entra_id_p1",
        time_field="lastUpdatedDateTime",
        filter_ops=("ge", "le"),
        version_field="lastUpdatedDateTime",
        page_size=500,
        max_page_size=500,
        interval="10m",
        lookback="7d",
        overlap="6h",
        delay="5m",
        throttle_class="identity_protection",
        description="Risk detections on lastUpdatedDateTime so late offline detections and "
        "state changes arrive; $top max 500 (501 is a 400). additionalInfo stays the JSON "
        "string Graph sent.",
    ),
    SourceSpec(
        name="identity_protection.risky_service_principals",
        path="/identityProtection/riskyServicePrincipals",
        mode="window",
        permissions=["IdentityRiskyServicePrincipal.Read.All|IdentityRiskyServicePrincipal.ReadWrite.All"],
        licence="workload_id_premium",
        time_field="riskLastUpdatedDateTime",
        filter_ops=("ge", "le"),
        version_field="riskLastUpdatedDateTime",
        interval="30m",
        lookback="7d",
        overlap="3h",
        delay="5m",
        throttle_class="identity_protection",
        description="Risky service principals (Workload ID Premium). Operators [U]: ge/le.",
    ),
    SourceSpec(
        name="identity_protection.service_principal_risk_detections",
        path="/identityProtection/servicePrincipalRiskDetections",
        mode="window",
        permissions=["IdentityRiskEvent.Read.All|IdentityRiskEvent.ReadWrite.All"],
        licence="workload_id_premium",
        time_field="lastUpdatedDateTime",
        filter_ops=("ge", "le"),
        version_field="lastUpdatedDateTime",
        interval="30m",
        lookback="7d",
        overlap="6h",
        delay="5m",
        throttle_class="identity_protection",
        description="Service principal risk detections (offline, late). Operators and page "
        "size [U]: ge/le, no $top.",
    ),
    # --- Entra audit logs (5 requests / 10 s per app per tenant) --------------------------
    SourceSpec(
        name="audit_logs.sign_ins",
        path="/auditLogs/signIns",
        mode="window",
        permissions=[_AUDIT],
        licence="entra_id_p1",
        time_field="createdDateTime",
        filter_ops=("ge", "le"),
        page_size=1000,
        max_page_size=1000,
        interval="5m",
        lookback="24h",
        overlap="15m",
        delay="2m",
        window_chunk="1d",
        throttle_class="identity_reports",
        description="Interactive sign-ins (v1.0 returns interactive only). createdDateTime "
        "accepts eq/le/ge only - never gt/lt; newest first; $top max = default = 1000.",
    ),
    *(
        SourceSpec(
            name=f"audit_logs.sign_ins_{suffix}",
            path="/auditLogs/signIns",
            version="beta",
            mode="window",
            permissions=[_AUDIT],
            licence="entra_id_p1",
            time_field="createdDateTime",
            filter_ops=("ge", "le"),
            extra_filter=f"signInEventTypes/any(t: t eq '{event_type}')",
            page_size=1000,
            max_page_size=1000,
            interval="5m",
            lookback="24h",
            overlap="15m",
            delay="2m",
            window_chunk="1d",
            throttle_class="identity_reports",
            description=f"{label} sign-ins: beta only, with the signInEventTypes filter.",
        )
        for suffix, event_type, label in (
            ("non_interactive", "nonInteractiveUser", "Non-interactive user"),
            ("service_principal", "servicePrincipal", "Service principal"),
            ("managed_identity", "managedIdentity", "Managed identity"),
        )
    ),
    SourceSpec(
        name="audit_logs.directory_audits",
        path="/auditLogs/directoryAudits",
        mode="window",
        permissions=[_AUDIT, _DIRECTORY],
        time_field="activityDateTime",
        filter_ops=("ge", "le"),
        interval="5m",
        lookback="24h",
        overlap="15m",
        delay="2m",
        window_chunk="1d",
        throttle_class="identity_reports",
        description="Directory audit events (all editions; Free keeps 7 days). Needs "
        "AuditLog.Read.All and Directory.Read.All. $top max undocumented [U]: none sent.",
    ),
    SourceSpec(
        name="audit_logs.provisioning",
        path="/auditLogs/provisioning",
        mode="window",
        permissions=[_AUDIT],
        licence="entra_id_p1",
        time_field="activityDateTime",
        filter_ops=("gt", "lt"),
        interval="15m",
        lookback="24h",
        overlap="30m",
        delay="5m",
        throttle_class="identity_reports",
        description="Provisioning events: activityDateTime accepts gt/lt only (case-sensitive). "
        "Licence commonly P1/P2 [U]; $top [U]: none sent.",
    ),
    # --- Directory inventory (delta; resource-unit budget) --------------------------------
    SourceSpec(
        name="directory.users",
        path="/users/delta",
        mode="delta",
        permissions=["User.Read.All|Directory.Read.All"],
        interval="15m",
        full_resync="24h",
        throttle_class="directory",
        description="Users via delta: no $top (rejected on user delta), deltaLink stored whole, "
        "410/syncStateNotFound -> full resync, @removed -> removal records, replays deduplicated.",
    ),
    SourceSpec(
        name="directory.groups",
        path="/groups/delta",
        mode="delta",
        permissions=["GroupMember.Read.All|Group.Read.All|Directory.Read.All"],
        interval="15m",
        full_resync="24h",
        throttle_class="directory",
        description="Groups via delta (no $top on group delta).",
    ),
    SourceSpec(
        name="directory.devices",
        path="/devices/delta",
        mode="delta",
        permissions=["Device.Read.All|Directory.Read.All"],
        interval="15m",
        full_resync="24h",
        throttle_class="directory",
        description="Entra devices via delta.",
    ),
    SourceSpec(
        name="directory.applications",
        path="/applications/delta",
        mode="delta",
        permissions=["Application.Read.All|Directory.Read.All"],
        interval="1h",
        full_resync="24h",
        throttle_class="directory",
        description="App registrations via delta.",
    ),
    SourceSpec(
        name="directory.service_principals",
        path="/servicePrincipals/delta",
        mode="delta",
        permissions=["Application.Read.All|Directory.Read.All"],
        interval="1h",
        full_resync="24h",
        throttle_class="directory",
        description="Service principals via delta (permission include not readable; inferred [I]).",
    ),
    # --- Governance --------------------------------------------------------------------------
    SourceSpec(
        name="governance.app_consent_requests",
        path="/identityGovernance/appConsent/appConsentRequests",
        mode="snapshot",
        permissions=["ConsentRequest.Read.All|ConsentRequest.ReadWrite.All"],
        interval="30m",
        throttle_class="default",
        description="Admin-consent requests; emitted again when pending scopes or user requests "
        "change. Data only if the admin-consent workflow is enabled [U].",
    ),
    # --- Intune (1,000 requests / 20 s per app per tenant) -----------------------------------
    SourceSpec(
        name="intune.managed_devices",
        path="/deviceManagement/managedDevices",
        mode="snapshot",
        permissions=["DeviceManagementManagedDevices.Read.All|DeviceManagementManagedDevices.ReadWrite.All"],
        licence="intune",
        time_field="lastSyncDateTime",
        interval="1h",
        throttle_class="intune",
        description="Intune-managed devices, emitted when changed.",
    ),
    SourceSpec(
        name="intune.compliance_policies",
        path="/deviceManagement/deviceCompliancePolicies",
        mode="snapshot",
        permissions=["DeviceManagementConfiguration.Read.All|DeviceManagementConfiguration.ReadWrite.All"],
        licence="intune",
        time_field="lastModifiedDateTime",
        interval="6h",
        throttle_class="intune",
        description="Intune compliance policies, emitted when changed.",
    ),
    SourceSpec(
        name="intune.device_configurations",
        path="/deviceManagement/deviceConfigurations",
        mode="snapshot",
        permissions=["DeviceManagementConfiguration.Read.All|DeviceManagementConfiguration.ReadWrite.All"],
        licence="intune",
        time_field="lastModifiedDateTime",
        interval="6h",
        throttle_class="intune",
        description="Intune device configuration profiles, emitted when changed.",
    ),
    SourceSpec(
        name="intune.audit_events",
        path="/deviceManagement/auditEvents",
        mode="window",
        permissions=["DeviceManagementApps.Read.All|DeviceManagementApps.ReadWrite.All"],
        licence="intune",
        time_field="activityDateTime",
        filter_ops=("ge", "le"),
        interval="15m",
        lookback="24h",
        overlap="30m",
        delay="5m",
        throttle_class="intune",
        description="Intune audit events; needs DeviceManagementApps.Read.All (not a "
        "Configuration permission). Filter operators [U]: ge/le.",
    ),
    # --- Reports -------------------------------------------------------------------------------
    SourceSpec(
        name="reports.user_registration_details",
        path="/reports/authenticationMethods/userRegistrationDetails",
        mode="snapshot",
        permissions=[_AUDIT],
        licence="entra_id_p1",
        time_field="lastUpdatedDateTime",
        interval="24h",
        throttle_class="identity_reports",
        description="MFA / SSPR registration per user (Entra ID P1/P2), emitted when changed.",
    ),
    SourceSpec(
        name="reports.office365_active_users",
        path="/reports/getOffice365ActiveUserDetail(period='D7')",
        mode="snapshot",
        permissions=["Reports.Read.All"],
        interval="24h",
        throttle_class="usage_reports",
        clouds=("global",),
        id_field="User Principal Name",
        pager=office365_csv_pager,
        description="Microsoft 365 active users (global cloud only): the function answers 302 "
        "to a pre-authenticated CSV, fetched WITHOUT the Authorization header; one record per "
        "user row. 14 requests / 10 min per report.",
    ),
)


@hookimpl
def td_graph_register_sources(register) -> None:  # type: ignore[no-untyped-def]
    for spec in BUILTIN_SOURCES:
        register(spec)
    register(FEED_SPEC)
