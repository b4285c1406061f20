"""The built-in sources: one spec per permission the onboarding guide asks the customer for.

Registered through ``td_graph_register_sources`` exactly like a third-party plugin.  Every fact
(operators, page limits, permissions, licences, throttling class) is from graph-facts; where the
docs are silent ([U]) the spec takes the safe choice and its description says so.

A permission written ``A|B`` is satisfied by either (least privileged first); every entry of
``permissions`` must be satisfied.
"""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..spec import QueryShape, SourceSpec
from .isolation_feed import FEED_SPEC
from .reports import ROW_ID_FIELD, office365_csv_pager

__all__ = ["BUILTIN_SOURCES", "td_graph_register_sources"]

# Evolvable enums: members added after an enum's unknownFutureValue sentinel (riskDetail's
# adminDismissedRiskForSignIn, alerts' serviceSource microsoftSentinel, ...) arrive as
# "unknownFutureValue" unless the request says `Prefer: include-unknown-enum-members`
# (https://learn.microsoft.com/graph/best-practices-concept#handling-future-members-in-evolvable-enumerations;
# riskDetail: https://learn.microsoft.com/graph/api/resources/riskdetail).
_PREFER_ENUMS = {"Prefer": "include-unknown-enum-members"}
_AUDIT = "AuditLog.Read.All"
_DIRECTORY = "Directory.Read.All"
# Identity Protection and provisioning pages carry the "global-us" national-cloud table: Global,
# US Government L4 and L5 (DOD), not China operated by 21Vianet
# (https://learn.microsoft.com/graph/api/riskdetection-list,
# https://learn.microsoft.com/graph/api/provisioningobjectsummary-list).
_GLOBAL_US = ("global", "usgov", "dod")
# alerts_v2 / incidents page with $skip offsets. Graph stops serving pages past some offset
# (Elastic: "past a certain $skip offset the Graph security API stopped returning further pages",
# https://github.com/elastic/integrations/pull/20348, graph-facts O3); the security API's one
# documented constraint is "$skip" <= 500
# (https://learn.microsoft.com/graph/api/resources/security-error-codes#constraints, [S6]).
# So no query follows a nextLink past offset 500; a window holding more is split.
_MAX_SECURITY_OFFSET = 500

# Query shapes (issue 12; collector/shapes.py): where a filter field, operator or $top maximum
# is undocumented ([U]), the default shape is the safe guess and the fallback is a shape that
# relies only on what the list page documents: the plain collection read, followed by
# nextLink, with the window applied client-side on the same field (same window semantics:
# inclusive bounds, dedup on id + version; one read per run instead of one per window).
def _client_window(why: str) -> QueryShape:
    return QueryShape("client_window", client_side_window=True, why=why)


# "GET /identityProtection/riskDetections" with no option is the documented list call
# (https://learn.microsoft.com/graph/api/riskdetection-list); $top 500 is its documented maximum.
_RISK_LIST = _client_window("the documented unfiltered list; lastUpdatedDateTime compared client-side")

# Directory delta $select lists.  Without $select, delta tracks and returns only a default
# property set ("There is no $select parameter, so a default set of properties is tracked and
# returned": https://learn.microsoft.com/graph/api/user-delta), so disabling an account produced
# no record.  Only properties in the main (Entra) data store trigger changes; properties kept in
# SharePoint/Exchange (skills, aboutMe, mailboxSettings...) are never tracked
# (https://learn.microsoft.com/graph/delta-query-overview#limitations), so none is listed.
# Each list is the resource's default set plus its security-relevant Entra properties.
USER_SELECT = (
    # the default set (https://learn.microsoft.com/graph/api/resources/users)
    "id", "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
    "officeLocation", "preferredLanguage", "surname", "userPrincipalName",
    # https://learn.microsoft.com/graph/api/resources/user
    "accountEnabled", "userType", "createdDateTime", "creationType", "externalUserState",
    "externalUserStateChangeDateTime", "onPremisesSyncEnabled", "onPremisesImmutableId",
    "onPremisesSamAccountName", "onPremisesSecurityIdentifier", "onPremisesDomainName",
    "onPremisesLastSyncDateTime", "department", "companyName", "employeeId", "usageLocation",
    "passwordPolicies", "proxyAddresses",
)
GROUP_SELECT = (  # https://learn.microsoft.com/graph/api/resources/group
    "id", "displayName", "description", "mail", "mailEnabled", "mailNickname", "securityEnabled",
    "groupTypes", "isAssignableToRole", "membershipRule", "membershipRuleProcessingState",
    "onPremisesSyncEnabled", "onPremisesSecurityIdentifier", "securityIdentifier", "visibility",
    "createdDateTime", "classification",
)
DEVICE_SELECT = (  # https://learn.microsoft.com/graph/api/resources/device
    "id", "deviceId", "displayName", "accountEnabled", "operatingSystem", "operatingSystemVersion",
    "trustType", "isCompliant", "isManaged", "approximateLastSignInDateTime", "registrationDateTime",
    "deviceOwnership", "enrollmentType", "profileType", "onPremisesSyncEnabled", "manufacturer",
    "model",
)
APPLICATION_SELECT = (  # https://learn.microsoft.com/graph/api/resources/application
    "id", "appId", "displayName", "createdDateTime", "signInAudience", "publisherDomain",
    "identifierUris", "keyCredentials", "passwordCredentials", "requiredResourceAccess",
)
SERVICE_PRINCIPAL_SELECT = (  # https://learn.microsoft.com/graph/api/resources/serviceprincipal
    "id", "appId", "appDisplayName", "displayName", "accountEnabled", "appOwnerOrganizationId",
    "appRoleAssignmentRequired", "servicePrincipalType", "servicePrincipalNames", "keyCredentials",
    "passwordCredentials", "tags",
)

BUILTIN_SOURCES: tuple[SourceSpec, ...] = (
    # --- Microsoft Defender XDR (security) -------------------------------------------------
    SourceSpec(
        name="security.alerts_v2",
        doc="https://learn.microsoft.com/graph/api/security-list-alerts_v2",
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
        max_offset=_MAX_SECURITY_OFFSET,
        shapes=(
            QueryShape("default"),
            # alerts_v2 documents $top but no maximum [U]; without $top Graph pages at its own
            # default size ("$top ... might default to the maximum page size",
            # https://learn.microsoft.com/graph/paging), which max_offset still bounds.
            QueryShape("no_top", top=0, why="no $top: the server's default page size"),
        ),
        description="Defender XDR alerts, polled on lastUpdateDateTime so every update is emitted "
        "again (no delay: an update is stamped when made; the overlap covers late indexing). $top max is undocumented [U]; 1000 is the legacy documented limit. No $orderby "
        "(not in the documented list). Offset paging is bounded (max_offset; collector/offsets.py): "
        "Graph stops serving pages past some $skip (https://github.com/elastic/integrations/issues/20234), "
        "so a window holding more is split, and $count=true (documented) detects a paging that ended short.",
    ),
    SourceSpec(
        name="security.incidents",
        doc="https://learn.microsoft.com/graph/api/security-list-incidents",
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
        max_offset=_MAX_SECURITY_OFFSET,
        description="Defender XDR incidents; $top above 50 is a 400 with an empty error code. "
        "Never $expand=alerts with a $filter (persistent 500s on large tenants): with the "
        "fetch_alerts setting, each incident's alerts are read separately and attached. Offset "
        "paging bounded as alerts_v2's (max_offset).",
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
        shapes=(
            QueryShape("default"),
            # $filter is documented only as "{property} eq '{value}'" [S7]: the plain list (one
            # object per day) is the documented read (https://learn.microsoft.com/graph/api/security-list-securescores).
            _client_window("the documented unfiltered list; createdDateTime compared client-side"),
        ),
        description="The daily Secure Score (one object per day, id {tenantId}_{date}). Filter "
        "operators on createdDateTime are inferred [I]; ge/le are standard OData (a 400 naming $filter "
        "falls back to the client_window shape).",
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
        doc="https://learn.microsoft.com/graph/api/riskyuser-list",
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
        headers=_PREFER_ENUMS,
        clouds=_GLOBAL_US,
        shapes=(
            QueryShape("default"),
            # riskyuser-list documents "some" OData parameters, no operator on
            # riskLastUpdatedDateTime [U]; the plain list is documented
            # (https://learn.microsoft.com/graph/api/riskyuser-list).
            _client_window("the documented unfiltered list; riskLastUpdatedDateTime compared client-side"),
        ),
        description="Risky users (full data needs Entra ID P2). Filter operators on "
        "riskLastUpdatedDateTime are undocumented [U]: ge/le (a 400 naming $filter falls back to the "
        "client_window shape); no $top sent (page size [U]). "
        "Overlap covers the documented up-to-2-hour risk latency. riskDetail is an evolvable enum "
        "(https://learn.microsoft.com/graph/api/resources/riskdetail): Prefer "
        "include-unknown-enum-members. Clouds: as Identity Protection's riskDetections [I] (the "
        "stored riskyuser-list revision shows no cloud table).",
    ),
    SourceSpec(
        name="identity_protection.risk_detections",
        doc="https://learn.microsoft.com/graph/api/riskdetection-list",
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
        event_time_field="activityDateTime",
        headers=_PREFER_ENUMS,
        clouds=_GLOBAL_US,
        shapes=(QueryShape("default"), _RISK_LIST),
        description="Risk detections on lastUpdatedDateTime so late offline detections and "
        "state changes arrive (operators on lastUpdatedDateTime [U]: a 400 naming $filter falls back to "
        "the client_window shape); $top max 500 (501 is a 400). additionalInfo stays the JSON "
        "string Graph sent. event_time is activityDateTime, \"Date and time that the risky "
        "activity occurred\" (https://learn.microsoft.com/graph/api/resources/riskdetection); "
        "lastUpdatedDateTime stays the cursor. Global and US Government only "
        "(https://learn.microsoft.com/graph/api/riskdetection-list). riskDetail is an evolvable "
        "enum (https://learn.microsoft.com/graph/api/resources/riskdetail).",
    ),
    SourceSpec(
        name="identity_protection.risky_service_principals",
        doc="https://learn.microsoft.com/graph/api/identityprotectionroot-list-riskyserviceprincipals",
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
        headers=_PREFER_ENUMS,
        clouds=_GLOBAL_US,
        # The resource documents riskLastUpdatedDateTime as "Supports $filter (eq)" only
        # (https://learn.microsoft.com/graph/api/resources/riskyserviceprincipal): a ge/le range
        # is not allowed, so the default shape reads the (small: risky principals only) list and
        # applies the window client-side.
        shapes=(QueryShape("default", client_side_window=True,
                           why="riskLastUpdatedDateTime supports $filter (eq) only; window applied client-side"),),
        description="Risky service principals (Workload ID Premium). riskLastUpdatedDateTime "
        "supports $filter (eq) only (https://learn.microsoft.com/graph/api/resources/riskyserviceprincipal): "
        "no time $filter is sent; the window is applied client-side (shape default). "
        "riskDetail is an evolvable enum (https://learn.microsoft.com/graph/api/resources/riskdetail). "
        "Clouds: as Identity Protection's riskDetections [I].",
    ),
    SourceSpec(
        name="identity_protection.service_principal_risk_detections",
        doc="https://learn.microsoft.com/graph/api/identityprotectionroot-list-serviceprincipalriskdetections",
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
        event_time_field="activityDateTime",
        headers=_PREFER_ENUMS,
        clouds=_GLOBAL_US,
        shapes=(
            QueryShape("default"),
            # The resource documents $filter only on requestId/servicePrincipalId (eq) [U]
            # (https://learn.microsoft.com/graph/api/identityprotectionroot-list-serviceprincipalriskdetections).
            _client_window("the documented unfiltered list; lastUpdatedDateTime compared client-side"),
        ),
        description="Service principal risk detections (offline, late). Operators and page "
        "size [U]: ge/le (fallback: client_window), no $top. event_time is activityDateTime (the risky activity; "
        "https://learn.microsoft.com/graph/api/resources/serviceprincipalriskdetection); "
        "lastUpdatedDateTime stays the cursor. riskDetail is an evolvable enum "
        "(https://learn.microsoft.com/graph/api/resources/riskdetail). Clouds: as riskDetections [I].",
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
        headers=_PREFER_ENUMS,
        description="Interactive sign-ins (v1.0 returns interactive only). createdDateTime "
        "accepts eq/le/ge only - never gt/lt; newest first; $top max = default = 1000. The signIn "
        "resource's riskDetail is the evolvable riskDetail enum "
        "(https://learn.microsoft.com/graph/api/resources/signin, .../resources/riskdetail): Prefer "
        "include-unknown-enum-members.",
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
            headers=_PREFER_ENUMS,
            description=f"{label} sign-ins: beta only, with the signInEventTypes filter. Prefer "
            "include-unknown-enum-members (riskDetail is evolvable: "
            "https://learn.microsoft.com/graph/api/resources/riskdetail).",
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
        doc="https://learn.microsoft.com/graph/api/provisioningobjectsummary-list",
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
        clouds=_GLOBAL_US,
        description="Provisioning events: activityDateTime accepts gt/lt only (case-sensitive). "
        "Licence commonly P1/P2 [U]; $top [U]: none sent. Global and US Government only, not "
        "China (https://learn.microsoft.com/graph/api/provisioningobjectsummary-list).",
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
        select=USER_SELECT,
        event_time_field=None,
        description="Users via delta: no $top (rejected on user delta), deltaLink stored whole, "
        "410/syncStateNotFound -> full resync, @removed -> removal records, replays deduplicated. "
        "$select USER_SELECT: without it only the default properties are tracked, so an "
        "accountEnabled/userType/on-premises sync change produced no record "
        "(https://learn.microsoft.com/graph/api/user-delta; "
        "https://learn.microsoft.com/graph/delta-query-overview#limitations). No timestamp of "
        "the change: event_time is when td-graph observed it.",
    ),
    SourceSpec(
        name="directory.groups",
        path="/groups/delta",
        mode="delta",
        permissions=["GroupMember.Read.All|Group.Read.All|Directory.Read.All"],
        interval="15m",
        full_resync="24h",
        throttle_class="directory",
        select=GROUP_SELECT,
        event_time_field=None,
        description="Groups via delta (no $top on group delta). $select GROUP_SELECT: only "
        "selected properties are tracked (https://learn.microsoft.com/graph/api/group-delta; "
        "https://learn.microsoft.com/graph/api/resources/group). event_time: observed.",
    ),
    SourceSpec(
        name="directory.devices",
        path="/devices/delta",
        mode="delta",
        permissions=["Device.Read.All|Directory.Read.All"],
        interval="15m",
        full_resync="24h",
        throttle_class="directory",
        select=DEVICE_SELECT,
        event_time_field=None,
        description="Entra devices via delta. $select DEVICE_SELECT "
        "(https://learn.microsoft.com/graph/api/device-delta; "
        "https://learn.microsoft.com/graph/api/resources/device). event_time: observed.",
    ),
    SourceSpec(
        name="directory.applications",
        path="/applications/delta",
        mode="delta",
        permissions=["Application.Read.All|Directory.Read.All"],
        interval="1h",
        full_resync="24h",
        throttle_class="directory",
        select=APPLICATION_SELECT,
        event_time_field=None,
        description="App registrations via delta; $select APPLICATION_SELECT (credentials and "
        "requested permissions: https://learn.microsoft.com/graph/api/application-delta; "
        "https://learn.microsoft.com/graph/api/resources/application). event_time: observed.",
    ),
    SourceSpec(
        name="directory.service_principals",
        path="/servicePrincipals/delta",
        mode="delta",
        permissions=["Application.Read.All|Directory.Read.All"],
        interval="1h",
        full_resync="24h",
        throttle_class="directory",
        select=SERVICE_PRINCIPAL_SELECT,
        event_time_field=None,
        description="Service principals via delta (permission include not readable; inferred [I]). "
        "$select SERVICE_PRINCIPAL_SELECT (https://learn.microsoft.com/graph/api/serviceprincipal-delta; "
        "https://learn.microsoft.com/graph/api/resources/serviceprincipal). event_time: observed.",
    ),
    # --- Governance --------------------------------------------------------------------------
    SourceSpec(
        name="governance.app_consent_requests",
        path="/identityGovernance/appConsent/appConsentRequests",
        mode="snapshot",
        permissions=["ConsentRequest.Read.All|ConsentRequest.ReadWrite.All"],
        interval="30m",
        throttle_class="default",
        event_time_field=None,
        description="Admin-consent requests; emitted again when pending scopes or user requests "
        "change. Data only if the admin-consent workflow is enabled [U]. The request object has "
        "no timestamp of its own (https://learn.microsoft.com/graph/api/resources/appconsentrequest): "
        "event_time is when td-graph observed the change.",
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
        shapes=(
            QueryShape("default"),
            # The Intune list page documents no query option [U]
            # (https://learn.microsoft.com/graph/api/intune-auditing-auditevent-list).
            _client_window("the documented unfiltered list; activityDateTime compared client-side"),
        ),
        description="Intune audit events; needs DeviceManagementApps.Read.All (not a "
        "Configuration permission). Filter operators [U]: ge/le (a 400 naming $filter falls back to "
        "the client_window shape).",
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
        doc="https://learn.microsoft.com/graph/api/reportroot-getoffice365activeuserdetail",
        path="/reports/getOffice365ActiveUserDetail(period='D7')",
        mode="snapshot",
        permissions=["Reports.Read.All"],
        interval="24h",
        throttle_class="usage_reports",
        clouds=("global",),
        id_field=ROW_ID_FIELD,
        time_field="Report Refresh Date",
        pager=office365_csv_pager,
        description="Microsoft 365 active users (global cloud only): the function answers 302 "
        "to a pre-authenticated CSV, fetched WITHOUT the Authorization header; one record per "
        "user row. 14 requests / 10 min per report. event_time is the row's Report Refresh Date "
        "(https://learn.microsoft.com/graph/api/reportroot-getoffice365activeuserdetail). The id "
        "is a hash of (User Principal Name, Is Deleted, Deleted Date) - see sources/reports.py "
        "row_id: a UPN alone is not unique (a deleted and a live user may share it).",
    ),
)


@hookimpl
def td_graph_register_sources(register) -> None:  # type: ignore[no-untyped-def]
    for spec in BUILTIN_SOURCES:
        register(spec)
    register(FEED_SPEC)
