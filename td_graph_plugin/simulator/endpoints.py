"""The table of Graph collections the simulator serves: add a source by adding a row.

Each ``Endpoint`` row says everything the generic handlers (``handlers.py``) need to serve
and police one ``GET /{version}{path}``: which tenant collection feeds it, how it is
collected (``mode``), the licence capability and app permissions it demands (and the exact
403 bodies when they are missing), which timestamp fields ``$filter`` accepts with which
operators, ``$top`` limits, the allowed query options, ordering, and the throttling class.
Facts are from graph-facts.md; values marked ASSUMED are undocumented choices.

A new window source is one row (its ``collection`` name creates the tenant collection, in
``order_field`` order) plus data: ``SimTenant.add_objects(collection, objs)`` or a generator.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Mapping

from .generators import NEW_DETECTION_SOURCES, NEW_SERVICE_SOURCES, SIGN_IN_EVENT_TYPES, USER_DEFAULT_PROPERTIES

__all__ = ["Endpoint", "ENDPOINTS", "lookup", "register", "unregister", "rows", "MODES", "collection_orders",
           "all_permissions", "UNDOCUMENTED", "strict", "relax", "strict_undocumented"]

# window: time-filtered log (``$filter`` on a timestamp, newest first, skiptoken paging).
# list: a whole collection, paged.  delta: change tracking via deltaLink.
# computed: answered from tenant settings (subscribedSkus), no paging.
MODES = ("window", "list", "delta", "computed")

_EQ_GE_LE = frozenset({"eq", "ge", "le"})
_RANGE = frozenset({"ge", "gt", "le", "lt"})
_ALL_OPS = frozenset({"eq", "ge", "gt", "le", "lt"})
_GT_LT = frozenset({"eq", "gt", "lt"})  # provisioning: eq, contains, gt, lt (no ge/le)

_AUDITLOG_PERMISSION_MISSING = (
    403, "Authentication_MSGraphPermissionMissing",
    "Calling principal does not have required MSGraph permissions AuditLog.Read.All",
)
_NON_PREMIUM = (
    403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
    "Neither tenant is B2C or tenant doesn't have premium license",
)
_SECURITY_ROLES_MISSING = (
    403, "Forbidden",
    "Missing application roles. API required roles: SecurityAlert.Read.All,SecurityAlert.ReadWrite.All,"
    "SecurityIncident.Read.All,SecurityIncident.ReadWrite.All, application roles: .",
)
# ASSUMED: the body for a tenant without Defender XDR is undocumented (graph-facts §1, [U]).
_DEFENDER_UNLICENSED = (
    403, "Forbidden",
    "The tenant is not licensed for Microsoft Defender XDR: no Microsoft 365 Defender service plan "
    "is provisioned, so alerts are not licensed for this tenant.",
)
_DIRECTORY_DENIED = (403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
_INCIDENT_ROLES_MISSING = _SECURITY_ROLES_MISSING  # the observed 403 for alerts_v2 / incidents (graph-facts §0.3)
# ASSUMED: the security 403 shape with secureScore's own roles (only the alerts/incidents body is observed).
_SECURE_SCORE_ROLES_MISSING = (
    403, "Forbidden",
    "Missing application roles. API required roles: SecurityEvents.Read.All,SecurityEvents.ReadWrite.All, "
    "application roles: .",
)
# Identity Protection without the scope: the observed message (graph-facts §0.3 [O10]); the code is
# ASSUMED ("Forbidden"; the SDK only surfaced the message).
_IDP_SCOPES_MISSING = (403, "Forbidden", "You cannot perform the requested operation, required scopes are missing in the token.")
# ASSUMED: Identity Protection without P2 (risky users) / P1 (risk detections) is a generic 403 with an
# undocumented body (graph-facts §0.3 [U][O14]).
_IDP_UNLICENSED = (403, "Forbidden", "Your tenant is not licensed for this feature.")
# ASSUMED: service principal risk without Workload ID Premium (undocumented, graph-facts §2 [U]).
_WORKLOAD_UNLICENSED = (
    403, "Forbidden",
    "Your tenant is not licensed for this feature. Microsoft Entra Workload ID Premium is required.",
)
# Observed on /tenantRelationships/managedTenants and reported for Intune device reads; ASSUMED for
# every /deviceManagement/* collection (graph-facts §0.3 [O9]/[U]).
_INTUNE_UNLICENSED = (400, "BadRequest", "Request not applicable to target tenant.")
# ASSUMED: the body of the documented persistent 500 of incidents with $expand=alerts and $filter.
_EXPAND_FILTER_500 = (500, "UnknownError", "An error has occurred.")

_SIGN_IN_FIELDS = frozenset({
    "id", "createdDateTime", "userDisplayName", "userPrincipalName", "userId", "appId", "appDisplayName",
    "ipAddress", "clientAppUsed", "correlationId", "conditionalAccessStatus", "isInteractive", "riskDetail",
    "riskLevelAggregated", "riskLevelDuringSignIn", "riskState", "riskEventTypes", "riskEventTypes_v2",
    "resourceDisplayName", "resourceId", "status", "deviceDetail", "location", "appliedConditionalAccessPolicies",
})
# beta-only properties (workload sign-ins: service principals and managed identities)
_BETA_SIGN_IN_FIELDS = frozenset({
    "signInEventTypes", "servicePrincipalId", "servicePrincipalName", "clientCredentialType",
    "servicePrincipalCredentialKeyId", "managedServiceIdentity",
})
_AUDIT_FIELDS = frozenset({
    "id", "category", "correlationId", "result", "resultReason", "activityDisplayName", "activityDateTime",
    "loggedByService", "operationType", "initiatedBy", "targetResources", "additionalDetails",
})
_USER_FIELDS = frozenset(USER_DEFAULT_PROPERTIES) | {
    "accountEnabled", "createdDateTime", "department", "companyName", "city", "country", "usageLocation",
    "employeeId", "userType", "onPremisesSyncEnabled",
    # user resource (learn.microsoft.com/graph/api/resources/user): Entra-stored properties
    "creationType", "externalUserState", "externalUserStateChangeDateTime", "onPremisesImmutableId",
    "onPremisesSamAccountName", "onPremisesSecurityIdentifier", "onPremisesDomainName",
    "onPremisesLastSyncDateTime", "passwordPolicies", "proxyAddresses", "deletedDateTime",
}
# $select on the other directory delta rows: each resource page's properties (a subset); an
# unknown name is Graph's 400 Request_BadRequest "Could not find a property named ...".
_GROUP_FIELDS = frozenset({
    "id", "displayName", "description", "mail", "mailEnabled", "mailNickname", "securityEnabled", "groupTypes",
    "isAssignableToRole", "membershipRule", "membershipRuleProcessingState", "onPremisesSyncEnabled",
    "onPremisesSecurityIdentifier", "securityIdentifier", "visibility", "createdDateTime", "classification",
    "proxyAddresses", "renewedDateTime", "expirationDateTime", "deletedDateTime", "creationOptions",
})
_DEVICE_FIELDS = frozenset({
    "id", "deviceId", "displayName", "accountEnabled", "operatingSystem", "operatingSystemVersion", "trustType",
    "isCompliant", "isManaged", "approximateLastSignInDateTime", "registrationDateTime", "deviceOwnership",
    "enrollmentType", "profileType", "onPremisesSyncEnabled", "manufacturer", "model",
    "complianceExpirationDateTime", "deletedDateTime",
})
_APP_FIELDS = frozenset({
    "id", "appId", "displayName", "createdDateTime", "signInAudience", "publisherDomain", "identifierUris",
    "keyCredentials", "passwordCredentials", "requiredResourceAccess", "appRoles", "redirectUris", "tags",
    "deletedDateTime", "description",
})
_SP_DELTA_FIELDS = frozenset({
    "id", "appId", "appDisplayName", "displayName", "accountEnabled", "appOwnerOrganizationId",
    "appRoleAssignmentRequired", "servicePrincipalType", "servicePrincipalNames", "keyCredentials",
    "passwordCredentials", "tags", "appRoles", "signInAudience", "deletedDateTime", "description",
})


@dataclass(frozen=True)
class Endpoint:
    path: str  # after the version, e.g. "/auditLogs/signIns" (matched case-insensitively)
    versions: tuple[str, ...]
    collection: str  # SimTenant.collections key, or a computed source name
    mode: str
    entity: str  # OData type, for error messages
    context: str  # "@odata.context" suffix after "$metadata#"
    permissions: tuple[str, ...]  # every entry required; "A|B" = either
    missing_permission: tuple[int, str, str] = _DIRECTORY_DENIED
    capability: str | None = None  # profiles.CAPABILITIES key, None = any licence
    unlicensed: tuple[int, str, str] | None = None
    time_fields: Mapping[str, frozenset[str]] = field(default_factory=dict)  # $filter field -> ops
    order_field: str | None = None  # served order (None: insertion order); rows sharing a collection agree
    descending: bool = True  # newest first
    orderable: tuple[str, ...] = ()  # fields $orderby accepts
    max_top: int | None = 1000  # None: $top is refused
    default_top: int = 100  # page size when no $top
    top_error_code: str = "BadRequest"
    options: frozenset[str] = frozenset()  # allowed system query options (lower case, $skiptoken implicit)
    throttle: str = "default"  # spec.THROTTLE_CLASSES / faults.BUDGETS key
    retained: bool = False  # licence retention (7/30 days) limits what is served
    event_types: tuple[str, ...] = ()  # beta signInEventTypes/any() support
    implicit_event_type: str | None = None  # served when the filter names no event type
    hidden_fields: frozenset[str] = frozenset()  # internal or other-version fields to strip
    known_fields: frozenset[str] | None = None  # $select validation; None = no $select check
    default_properties: tuple[str, ...] | None = None  # projection without $select
    evolvable_enums: Mapping[str, frozenset[str]] = field(default_factory=dict)  # field -> newer members
    rejected_options: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # option -> (code, message)
    # $filter fields compared with `eq '<text>'` / `eq true|false` (not timestamps)
    eq_fields: frozenset[str] = frozenset()
    # $expand=<name> -> (collection, field of its objects holding this object's id)
    expand: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # $expand together with $filter fails like this (incidents: persistent 500, graph-facts [O4])
    expand_with_filter: tuple[int, str, str] | None = None


def _sign_ins(version: str) -> Endpoint:
    beta = version == "beta"
    return Endpoint(
        path="/auditLogs/signIns",
        versions=(version,),
        collection="sign_ins",
        mode="window",
        entity="microsoft.graph.signIn",
        context="auditLogs/signIns",
        permissions=("AuditLog.Read.All",),
        missing_permission=_AUDITLOG_PERMISSION_MISSING,
        capability="entra_id_p1",
        unlicensed=_NON_PREMIUM,
        time_fields={"createdDateTime": _EQ_GE_LE},
        order_field="createdDateTime",
        orderable=("createdDateTime",),
        max_top=1000,
        default_top=1000,
        options=frozenset({"$filter", "$top", "$select", "$orderby"}),
        throttle="identity_reports",
        retained=True,
        event_types=SIGN_IN_EVENT_TYPES if beta else (),
        implicit_event_type="interactiveUser",
        hidden_fields=frozenset() if beta else frozenset({"signInEventTypes"}),
        known_fields=_SIGN_IN_FIELDS | (_BETA_SIGN_IN_FIELDS if beta else set()),
    )


def _alerts(version: str) -> Endpoint:
    only = "Only $count, $filter, $skip and $top are supported on alerts_v2."
    return Endpoint(
        path="/security/alerts_v2",
        versions=(version,),
        collection="alerts",
        mode="window",
        entity="microsoft.graph.security.alert",
        context="security/alerts_v2",
        permissions=("SecurityAlert.Read.All|SecurityAlert.ReadWrite.All|SecurityIncident.Read.All|SecurityIncident.ReadWrite.All",),
        missing_permission=_SECURITY_ROLES_MISSING,
        capability="defender_xdr",
        unlicensed=_DEFENDER_UNLICENSED,
        time_fields={"lastUpdateDateTime": _RANGE, "createdDateTime": _RANGE},
        order_field="createdDateTime",  # "most recent alerts are displayed at the top"
        max_top=1000,  # ASSUMED: undocumented; the legacy API's 1000 (graph-facts §1)
        default_top=100,  # ASSUMED: undocumented
        options=frozenset({"$count", "$filter", "$skip", "$top"}),
        throttle="security",
        evolvable_enums={"serviceSource": NEW_SERVICE_SOURCES, "detectionSource": NEW_DETECTION_SOURCES},
        rejected_options={
            "$select": ("BadRequest", "Query option 'Select' is not allowed. To allow it, set the "
                        "'AllowedQueryOptions' property on EnableQueryAttribute or QueryValidationSettings. " + only),
            "$orderby": ("BadRequest", "Query option 'OrderBy' is not allowed. To allow it, set the "
                         "'AllowedQueryOptions' property on EnableQueryAttribute or QueryValidationSettings. " + only),
            "$expand": ("BadRequest", "Query option 'Expand' is not allowed. " + only),
        },
    )


_USER_READ = "User.Read.All|User.ReadWrite.All|Directory.Read.All|Directory.ReadWrite.All"
_GROUP_READ = ("GroupMember.Read.All|Group.Read.All|Directory.Read.All|GroupMember.ReadWrite.All|"
               "Group.ReadWrite.All|Directory.ReadWrite.All")
_DEVICE_READ = "Device.Read.All|Device.ReadWrite.All|Directory.Read.All|Directory.ReadWrite.All"
_APP_READ = "Application.Read.All|Application.ReadWrite.All|Directory.Read.All|Directory.ReadWrite.All"
_INCIDENTS_ONLY = "Only $count, $expand, $filter, $skip and $top are supported on incidents."


def _delta(path: str, collection: str, entity: str, context: str, permission: str, *, top_allowed: bool,
           known_fields: frozenset[str] | None = None) -> Endpoint:
    """A directory delta row (graph-facts §0.5): nextLink pages, deltaLink, @removed, 7-day tokens."""
    kind = path.strip("/").split("/")[0]
    rejected = {
        # ASSUMED code/message; the documented fact is only that these are unsupported.
        "$orderby": ("Request_UnsupportedQuery", f"Unsupported query option: '$orderby' is not supported on delta queries for {kind}."),
        "$expand": ("Request_UnsupportedQuery", f"Unsupported query option: '$expand' is not supported on delta queries for {kind}."),
        "$filter": ("Request_UnsupportedQuery", f"Unsupported query: the simulator's {kind}/delta does not implement $filter."),
    }
    if not top_allowed:  # users and groups: documented
        rejected["$top"] = ("Request_UnsupportedQuery", f"Unsupported query option: '$top' is not supported on delta queries for {kind}.")
    return Endpoint(
        path=path, versions=("v1.0", "beta"), collection=collection, mode="delta", entity=entity, context=context,
        permissions=(permission,),
        max_top=999 if top_allowed else None,  # ASSUMED where allowed: undocumented
        default_top=100,  # ASSUMED: real pages vary in size
        options=frozenset({"$select", "$deltatoken"} | ({"$top"} if top_allowed else set())),
        throttle="directory", rejected_options=rejected, known_fields=known_fields,
    )


def _directory_list(path: str, collection: str, entity: str, permission: str) -> Endpoint:
    return Endpoint(path=path, versions=("v1.0", "beta"), collection=collection, mode="list", entity=entity,
                    context=path.strip("/"), permissions=(permission,), max_top=999, default_top=100,
                    options=frozenset({"$select", "$top"}), throttle="directory")

ENDPOINTS: tuple[Endpoint, ...] = (
    _sign_ins("v1.0"),
    _sign_ins("beta"),
    Endpoint(
        path="/auditLogs/directoryAudits",
        versions=("v1.0", "beta"),
        collection="directory_audits",
        mode="window",
        entity="microsoft.graph.directoryAudit",
        context="auditLogs/directoryAudits",
        permissions=("AuditLog.Read.All", "Directory.Read.All|Directory.ReadWrite.All"),
        missing_permission=_AUDITLOG_PERMISSION_MISSING,
        time_fields={"activityDateTime": _EQ_GE_LE},
        order_field="activityDateTime",
        orderable=("activityDateTime",),
        max_top=1000,  # ASSUMED: undocumented
        default_top=1000,  # ASSUMED: undocumented
        options=frozenset({"$filter", "$top", "$select", "$orderby"}),
        throttle="identity_reports",
        retained=True,
        known_fields=_AUDIT_FIELDS,
    ),
    _alerts("v1.0"),
    _alerts("beta"),
    Endpoint(
        path="/users/delta",
        versions=("v1.0", "beta"),
        collection="users",
        mode="delta",
        entity="microsoft.graph.user",
        context="users",
        permissions=(_USER_READ,),
        max_top=None,
        default_top=100,  # ASSUMED: real pages vary in size (graph-facts §4)
        options=frozenset({"$select", "$deltatoken"}),
        throttle="directory",
        known_fields=_USER_FIELDS,
        default_properties=USER_DEFAULT_PROPERTIES,
        rejected_options={
            # ASSUMED code/message; the documented fact is only that $top is unsupported.
            "$top": ("Request_UnsupportedQuery", "Unsupported query option: '$top' is not supported on delta queries for users."),
            "$orderby": ("Request_UnsupportedQuery", "Unsupported query option: '$orderby' is not supported on delta queries for users."),
            "$expand": ("Request_UnsupportedQuery", "Unsupported query option: '$expand' is not supported on delta queries for users."),
            "$filter": ("Request_UnsupportedQuery", "Unsupported query: the simulator's users/delta does not implement $filter (Graph allows only id eq '...')."),
        },
    ),
    Endpoint(
        path="/users",
        versions=("v1.0", "beta"),
        collection="users",
        mode="list",
        entity="microsoft.graph.user",
        context="users",
        permissions=(_USER_READ,),
        max_top=999,
        default_top=100,
        options=frozenset({"$select", "$top"}),
        throttle="directory",
        known_fields=_USER_FIELDS,
        default_properties=USER_DEFAULT_PROPERTIES,
    ),
    Endpoint(
        path="/subscribedSkus",
        versions=("v1.0", "beta"),
        collection="subscribed_skus",
        mode="computed",
        entity="microsoft.graph.subscribedSku",
        context="subscribedSkus",
        permissions=("Organization.Read.All|Organization.ReadWrite.All|Directory.Read.All|Directory.ReadWrite.All",),
        max_top=None,
        options=frozenset({"$select"}),
        throttle="directory",
        rejected_options={"$filter": ("BadRequest", "The query specified in the URI is not valid: subscribedSkus does not support $filter.")},
    ),
    # ----------------------------------------------------------------- Defender XDR / Secure Score
    Endpoint(
        path="/security/incidents",
        versions=("v1.0", "beta"),
        collection="incidents",
        mode="window",
        entity="microsoft.graph.security.incident",
        context="security/incidents",
        permissions=("SecurityIncident.Read.All|SecurityIncident.ReadWrite.All",),
        missing_permission=_INCIDENT_ROLES_MISSING,
        capability="defender_xdr",
        unlicensed=_DEFENDER_UNLICENSED,
        time_fields={"lastUpdateDateTime": _RANGE, "createdDateTime": _RANGE},
        order_field="createdDateTime",
        max_top=50,  # $top=100 -> 400 with an empty error code (graph-facts §0.3 [O2])
        default_top=50,  # ASSUMED: undocumented
        top_error_code="",
        options=frozenset({"$count", "$filter", "$skip", "$top", "$expand"}),
        throttle="security",
        eq_fields=frozenset({"status", "severity", "classification", "determination", "assignedTo"}),
        expand={"alerts": ("alerts", "incidentId")},
        expand_with_filter=_EXPAND_FILTER_500,
        rejected_options={
            "$select": ("BadRequest", "Query option 'Select' is not allowed. " + _INCIDENTS_ONLY),
            "$orderby": ("BadRequest", "Query option 'OrderBy' is not allowed. " + _INCIDENTS_ONLY),
        },
    ),
    Endpoint(
        path="/security/secureScores",
        versions=("v1.0", "beta"),
        collection="secure_scores",
        mode="window",
        entity="microsoft.graph.secureScore",
        context="security/secureScores",
        permissions=("SecurityEvents.Read.All|SecurityEvents.ReadWrite.All",),
        missing_permission=_SECURE_SCORE_ROLES_MISSING,
        time_fields={"createdDateTime": _ALL_OPS},  # operators inferred [I]
        order_field="createdDateTime",  # newest first: `$top=1` is today's score
        max_top=1000,  # ASSUMED
        default_top=100,  # ASSUMED
        options=frozenset({"$count", "$filter", "$skip", "$top"}),
        throttle="secure_score",
    ),
    Endpoint(
        path="/security/secureScoreControlProfiles",
        versions=("v1.0", "beta"),
        collection="secure_score_control_profiles",
        mode="list",
        entity="microsoft.graph.secureScoreControlProfile",
        context="security/secureScoreControlProfiles",
        permissions=("SecurityEvents.Read.All|SecurityEvents.ReadWrite.All",),  # inferred [I]
        missing_permission=_SECURE_SCORE_ROLES_MISSING,
        time_fields={"lastModifiedDateTime": _ALL_OPS},  # [I]
        max_top=1000,  # ASSUMED
        default_top=100,  # ASSUMED
        options=frozenset({"$count", "$filter", "$skip", "$top"}),
        throttle="secure_score",
        eq_fields=frozenset({"controlCategory", "service", "tier", "actionType"}),
    ),
    # ----------------------------------------------------------------- Identity Protection
    Endpoint(
        path="/identityProtection/riskyUsers",
        versions=("v1.0", "beta"),
        collection="risky_users",
        mode="window",
        entity="microsoft.graph.riskyUser",
        context="identityProtection/riskyUsers",
        permissions=("IdentityRiskyUser.Read.All|IdentityRiskyUser.ReadWrite.All",),
        missing_permission=_IDP_SCOPES_MISSING,
        capability="entra_id_p2",  # "Using the riskyUsers API requires ... P2" (graph-facts §2)
        unlicensed=_IDP_UNLICENSED,
        time_fields={"riskLastUpdatedDateTime": _ALL_OPS},  # operators ASSUMED [U]
        orderable=("riskLastUpdatedDateTime",),
        max_top=500,  # ASSUMED [U]
        default_top=20,  # ASSUMED [U] (riskDetections' documented default)
        options=frozenset({"$filter", "$select", "$top", "$count", "$orderby"}),
        throttle="identity_protection",
        eq_fields=frozenset({"riskLevel", "riskState", "riskDetail", "userPrincipalName"}),
    ),
    Endpoint(
        path="/identityProtection/riskDetections",
        versions=("v1.0", "beta"),
        collection="risk_detections",
        mode="window",
        entity="microsoft.graph.riskDetection",
        context="identityProtection/riskDetections",
        permissions=("IdentityRiskEvent.Read.All|IdentityRiskEvent.ReadWrite.All",),
        missing_permission=_IDP_SCOPES_MISSING,
        capability="entra_id_p1",  # "P1 or P2 license" (graph-facts §2)
        unlicensed=_IDP_UNLICENSED,
        time_fields={"lastUpdatedDateTime": _ALL_OPS, "detectedDateTime": _ALL_OPS,
                     "activityDateTime": _ALL_OPS},  # operators ASSUMED [U]
        order_field="activityDateTime",
        orderable=("activityDateTime", "detectedDateTime", "lastUpdatedDateTime"),
        max_top=500,  # documented; $top=501 fails (graph-facts §2 [O5])
        default_top=20,  # documented
        options=frozenset({"$filter", "$select", "$top", "$orderby"}),
        throttle="identity_protection",
        eq_fields=frozenset({"riskEventType", "riskLevel", "riskState", "userId", "userPrincipalName",
                             "detectionTimingType", "source"}),
    ),
    Endpoint(
        path="/identityProtection/riskyServicePrincipals",
        versions=("v1.0", "beta"),
        collection="risky_service_principals",
        mode="window",
        entity="microsoft.graph.riskyServicePrincipal",
        context="identityProtection/riskyServicePrincipals",
        permissions=("IdentityRiskyServicePrincipal.Read.All|IdentityRiskyServicePrincipal.ReadWrite.All",),
        missing_permission=_IDP_SCOPES_MISSING,
        capability="workload_id_premium",
        unlicensed=_WORKLOAD_UNLICENSED,
        # "riskLastUpdatedDateTime ... Supports $filter (eq)"
        # (https://learn.microsoft.com/graph/api/resources/riskyserviceprincipal): a range is refused.
        time_fields={"riskLastUpdatedDateTime": frozenset({"eq"})},
        orderable=("riskLastUpdatedDateTime",),
        max_top=500,  # ASSUMED [U]
        default_top=20,  # ASSUMED [U]
        options=frozenset({"$count", "$filter", "$select", "$top", "$orderby"}),
        throttle="identity_protection",
        eq_fields=frozenset({"riskLevel", "riskState", "appId", "servicePrincipalType"}),
    ),
    Endpoint(
        path="/identityProtection/servicePrincipalRiskDetections",
        versions=("v1.0", "beta"),
        collection="service_principal_risk_detections",
        mode="window",
        entity="microsoft.graph.servicePrincipalRiskDetection",
        context="identityProtection/servicePrincipalRiskDetections",
        permissions=("IdentityRiskEvent.Read.All|IdentityRiskEvent.ReadWrite.All",),
        missing_permission=_IDP_SCOPES_MISSING,
        capability="workload_id_premium",
        unlicensed=_WORKLOAD_UNLICENSED,
        time_fields={"lastUpdatedDateTime": _ALL_OPS, "detectedDateTime": _ALL_OPS,
                     "activityDateTime": _ALL_OPS},  # operators ASSUMED [U]
        order_field="activityDateTime",
        orderable=("activityDateTime", "detectedDateTime", "lastUpdatedDateTime"),
        max_top=500,  # ASSUMED [U] ($top is not in the documented list; accepted, not required)
        default_top=20,  # ASSUMED [U]
        options=frozenset({"$filter", "$select", "$top", "$orderby"}),
        throttle="identity_protection",
        eq_fields=frozenset({"riskEventType", "riskLevel", "riskState", "servicePrincipalId", "appId"}),
    ),
    # ----------------------------------------------------------------- audit logs
    Endpoint(
        path="/auditLogs/provisioning",
        versions=("v1.0", "beta"),
        collection="provisioning",
        mode="window",
        entity="microsoft.graph.provisioningObjectSummary",
        context="auditLogs/provisioning",
        permissions=("AuditLog.Read.All",),
        missing_permission=_AUDITLOG_PERMISSION_MISSING,
        capability="entra_id_p1",  # ASSUMED: "P1/P2 commonly required" [U]
        unlicensed=_NON_PREMIUM,  # ASSUMED: as sign-ins
        time_fields={"activityDateTime": _GT_LT},  # gt/lt only, case-sensitive (graph-facts §3)
        order_field="activityDateTime",
        orderable=("activityDateTime",),
        max_top=1000,  # ASSUMED [U]
        default_top=100,  # ASSUMED [U]
        options=frozenset({"$filter", "$orderby", "$top"}),
        throttle="identity_reports",
        retained=True,
        eq_fields=frozenset({"jobId", "cycleId", "changeId", "provisioningAction"}),
    ),
    # ----------------------------------------------------------------- directory inventory
    _delta("/groups/delta", "groups", "microsoft.graph.group", "groups", _GROUP_READ, top_allowed=False,
           known_fields=_GROUP_FIELDS),
    _delta("/devices/delta", "devices", "microsoft.graph.device", "devices", _DEVICE_READ, top_allowed=True,
           known_fields=_DEVICE_FIELDS),
    _delta("/applications/delta", "applications", "microsoft.graph.application", "applications", _APP_READ,
           top_allowed=True, known_fields=_APP_FIELDS),
    _delta("/servicePrincipals/delta", "service_principals", "microsoft.graph.servicePrincipal", "servicePrincipals",
           _APP_READ, top_allowed=True, known_fields=_SP_DELTA_FIELDS),
    _directory_list("/groups", "groups", "microsoft.graph.group", _GROUP_READ),
    _directory_list("/devices", "devices", "microsoft.graph.device", _DEVICE_READ),
    _directory_list("/applications", "applications", "microsoft.graph.application", _APP_READ),
    _directory_list("/servicePrincipals", "service_principals", "microsoft.graph.servicePrincipal", _APP_READ),
    # ----------------------------------------------------------------- governance
    Endpoint(
        path="/identityGovernance/appConsent/appConsentRequests",
        versions=("v1.0", "beta"),
        collection="app_consent_requests",
        mode="list",
        entity="microsoft.graph.appConsentRequest",
        context="identityGovernance/appConsent/appConsentRequests",
        permissions=("ConsentRequest.Read.All|ConsentRequest.ReadWrite.All",),
        max_top=999,  # ASSUMED [U]
        default_top=100,  # ASSUMED [U]
        options=frozenset({"$select", "$skip", "$top", "$filter", "$orderby", "$count"}),
        orderable=("appDisplayName", "appId"),
        eq_fields=frozenset({"appId", "appDisplayName"}),
    ),
    # ----------------------------------------------------------------- Intune
    Endpoint(
        path="/deviceManagement/managedDevices",
        versions=("v1.0", "beta"),
        collection="managed_devices",
        mode="list",
        entity="microsoft.graph.managedDevice",
        context="deviceManagement/managedDevices",
        permissions=("DeviceManagementManagedDevices.Read.All|DeviceManagementManagedDevices.ReadWrite.All",),
        capability="intune",
        unlicensed=_INTUNE_UNLICENSED,
        time_fields={"lastSyncDateTime": _ALL_OPS, "enrolledDateTime": _ALL_OPS},  # ASSUMED
        max_top=1000,  # ASSUMED [U]
        default_top=100,  # ASSUMED [U]
        options=frozenset({"$select", "$top", "$filter", "$skip", "$count", "$orderby"}),
        orderable=("deviceName", "lastSyncDateTime", "enrolledDateTime"),
        throttle="intune",
        eq_fields=frozenset({"operatingSystem", "complianceState", "userPrincipalName", "managedDeviceOwnerType",
                             "azureADDeviceId", "deviceName"}),
    ),
    Endpoint(
        path="/deviceManagement/deviceCompliancePolicies",
        versions=("v1.0", "beta"),
        collection="compliance_policies",
        mode="list",
        entity="microsoft.graph.deviceCompliancePolicy",
        context="deviceManagement/deviceCompliancePolicies",
        permissions=("DeviceManagementConfiguration.Read.All|DeviceManagementConfiguration.ReadWrite.All",),
        capability="intune",
        unlicensed=_INTUNE_UNLICENSED,
        time_fields={"lastModifiedDateTime": _ALL_OPS, "createdDateTime": _ALL_OPS},  # ASSUMED
        max_top=1000,  # ASSUMED [U]
        default_top=100,  # ASSUMED [U]
        options=frozenset({"$select", "$top", "$filter", "$skip", "$count"}),
        throttle="intune",
        eq_fields=frozenset({"displayName"}),
    ),
    Endpoint(
        path="/deviceManagement/deviceConfigurations",
        versions=("v1.0", "beta"),
        collection="device_configurations",
        mode="list",
        entity="microsoft.graph.deviceConfiguration",
        context="deviceManagement/deviceConfigurations",
        permissions=("DeviceManagementConfiguration.Read.All|DeviceManagementConfiguration.ReadWrite.All",),
        capability="intune",
        unlicensed=_INTUNE_UNLICENSED,
        time_fields={"lastModifiedDateTime": _ALL_OPS, "createdDateTime": _ALL_OPS},  # ASSUMED
        max_top=1000,  # ASSUMED [U]
        default_top=100,  # ASSUMED [U]
        options=frozenset({"$select", "$top", "$filter", "$skip", "$count"}),
        throttle="intune",
        eq_fields=frozenset({"displayName"}),
    ),
    Endpoint(
        path="/deviceManagement/auditEvents",
        versions=("v1.0", "beta"),
        collection="intune_audit_events",
        mode="window",
        entity="microsoft.graph.auditEvent",
        context="deviceManagement/auditEvents",
        permissions=("DeviceManagementApps.Read.All|DeviceManagementApps.ReadWrite.All",),  # graph-facts §5
        capability="intune",
        unlicensed=_INTUNE_UNLICENSED,
        time_fields={"activityDateTime": _EQ_GE_LE},  # operators ASSUMED [U]: ge/le
        order_field="activityDateTime",
        orderable=("activityDateTime",),
        max_top=1000,  # ASSUMED [U]
        default_top=100,  # ASSUMED [U]
        options=frozenset({"$select", "$top", "$filter", "$skip", "$orderby"}),
        throttle="intune",
        eq_fields=frozenset({"category", "activityType", "activityResult", "componentName"}),
    ),
    # ----------------------------------------------------------------- reports
    Endpoint(
        path="/reports/authenticationMethods/userRegistrationDetails",
        versions=("v1.0", "beta"),
        collection="user_registration_details",
        mode="list",
        entity="microsoft.graph.userRegistrationDetails",
        context="reports/authenticationMethods/userRegistrationDetails",
        permissions=("AuditLog.Read.All|UserAuthenticationMethod.Read.All|UserAuthenticationMethod.ReadWrite.All",),
        missing_permission=_AUDITLOG_PERMISSION_MISSING,  # ASSUMED: as the other reporting APIs
        capability="entra_id_p1",  # graph-facts §7
        unlicensed=_NON_PREMIUM,  # ASSUMED [U]: "probably" this code
        time_fields={"lastUpdatedDateTime": _ALL_OPS},  # ASSUMED
        # "This method supports only the $filter and $orderBy OData query parameters"
        # (https://learn.microsoft.com/graph/api/authenticationmethodsroot-list-userregistrationdetails,
        # graph-facts [S44]): $top, $select and $skip are refused like any unsupported option.
        max_top=None,
        default_top=100,  # ASSUMED [U]
        options=frozenset({"$filter", "$orderby"}),
        orderable=("userPrincipalName", "userDisplayName", "lastUpdatedDateTime"),
        throttle="identity_reports",
        eq_fields=frozenset({"userPrincipalName", "userType", "isAdmin", "isMfaRegistered", "isMfaCapable",
                             "isSsprRegistered", "isSsprEnabled", "isSsprCapable", "isPasswordlessCapable"}),
    ),
)

_INDEX: dict[tuple[str, str], Endpoint] = {}
_EXTRA: list[Endpoint] = []  # rows added at run time by register()


def _index(ep: Endpoint) -> None:
    if ep.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    for v in ep.versions:
        if (v, ep.path.lower()) in _INDEX:
            raise ValueError(f"duplicate endpoint row {v} {ep.path}")
    for v in ep.versions:
        _INDEX[(v, ep.path.lower())] = ep


for _ep in ENDPOINTS:
    _index(_ep)


def register(ep: Endpoint) -> Endpoint:
    """Add a row at run time (tests of third-party sources); tenants create its collection lazily."""
    _index(ep)
    _EXTRA.append(ep)
    try:
        collection_orders()
    except RuntimeError:
        unregister(ep)
        raise
    return ep


def unregister(ep: Endpoint) -> None:
    for v in ep.versions:
        if _INDEX.get((v, ep.path.lower())) is ep:
            del _INDEX[(v, ep.path.lower())]
    if ep in _EXTRA:
        _EXTRA.remove(ep)


def lookup(version: str, path: str) -> Endpoint | None:
    return _INDEX.get((version, path.rstrip("/").lower()))


def rows() -> list[Endpoint]:
    return list(ENDPOINTS) + list(_EXTRA)


def collection_orders() -> dict[str, tuple[str | None, bool]]:
    """collection name -> (order_field, descending), from the rows (computed rows have none)."""
    out: dict[str, tuple[str | None, bool]] = {}
    for ep in rows():
        if ep.mode == "computed":
            continue
        order = (ep.order_field, ep.descending if ep.order_field else False)
        if out.setdefault(ep.collection, order) != order:
            raise RuntimeError(f"rows for collection {ep.collection!r} disagree on its order")
    return out


def all_permissions() -> set[str]:
    """Every app permission the table mentions (what a fully consented app has)."""
    out: set[str] = set()
    for ep in rows():
        for req in ep.permissions:
            out.update(req.split("|"))
    return out


# ----------------------------------------------------------------- strict modes (issue 12)
# The query shapes td-graph's default shapes rely on although Microsoft does not document them
# ([U] in graph-facts and the catalogue).  A stricter Graph may refuse each; ``strict(path)``
# makes this simulator refuse it with the 400 Graph gives for an unsupported filter property
# ("Invalid filter clause: ...", BadRequest) or an exceeded $top ("The limit of 'N' for Top query
# has been exceeded", graph-facts §0.3 [O2]), so each fallback shape is exercised.
UNDOCUMENTED: dict[str, dict] = {
    # no operator documented for any riskDetection timestamp (riskdetection-list, [S21])
    "/identityProtection/riskDetections": {"drop_time_fields": ("lastUpdatedDateTime",)},
    # $filter documented on requestId / servicePrincipalId (eq) only ([S23])
    "/identityProtection/servicePrincipalRiskDetections": {"drop_time_fields": ("lastUpdatedDateTime",)},
    # riskyuser-list: "some" OData parameters; no operator on riskLastUpdatedDateTime ([S20])
    "/identityProtection/riskyUsers": {"drop_time_fields": ("riskLastUpdatedDateTime",)},
    # secureScores: "$filter={property} eq '{value}'" only ([S7])
    "/security/secureScores": {"drop_time_fields": ("createdDateTime",)},
    # Intune auditEvents: no query option documented ([S40])
    "/deviceManagement/auditEvents": {"drop_time_fields": ("activityDateTime",)},
    # alerts_v2: $top documented, its maximum not ([S1]); a server limit below td-graph's 1000
    "/security/alerts_v2": {"max_top": 500},
}
_STRICT_ORIGINALS: dict[tuple[str, str], Endpoint] = {}


def strict(path: str, *, drop_time_fields: tuple[str, ...] = (), max_top: int | None = None,
           reject: Mapping[str, tuple[str, str]] | None = None) -> None:
    """Make the row of ``path`` refuse ``$filter`` on ``drop_time_fields``, ``$top`` above
    ``max_top`` and the options in ``reject`` ({option: (code, message)}), process-wide (rows
    are shared like routes), until ``relax(path)``."""
    for key, ep in list(_INDEX.items()):
        if key[1] != path.lower():
            continue
        base = _STRICT_ORIGINALS.setdefault(key, ep)
        changes: dict = {"time_fields": {f: ops for f, ops in base.time_fields.items() if f not in drop_time_fields}}
        if max_top is not None:
            changes["max_top"] = max_top
        if reject:
            changes["rejected_options"] = {**base.rejected_options, **reject}
        _INDEX[key] = dataclasses.replace(base, **changes)


def relax(path: str | None = None) -> None:
    """Undo ``strict`` for ``path`` (None: every path)."""
    for key in [k for k in _STRICT_ORIGINALS if path is None or k[1] == path.lower()]:
        _INDEX[key] = _STRICT_ORIGINALS.pop(key)


@contextmanager
def strict_undocumented(*paths: str) -> Iterator[None]:
    """Refuse the [U] shapes of ``paths`` (default: all of ``UNDOCUMENTED``) inside the block."""
    chosen = paths or tuple(UNDOCUMENTED)
    try:
        for p in chosen:
            strict(p, **UNDOCUMENTED[p])
        yield
    finally:
        for p in chosen:
            relax(p)
