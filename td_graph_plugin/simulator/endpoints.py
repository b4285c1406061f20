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

from dataclasses import dataclass, field
from typing import Mapping

from .generators import NEW_DETECTION_SOURCES, NEW_SERVICE_SOURCES, SIGN_IN_EVENT_TYPES, USER_DEFAULT_PROPERTIES

__all__ = ["Endpoint", "ENDPOINTS", "lookup", "register", "unregister", "rows", "MODES", "collection_orders",
           "all_permissions"]

# window: time-filtered log (``$filter`` on a timestamp, newest first, skiptoken paging).
# list: a whole collection, paged.  delta: change tracking via deltaLink.
# computed: answered from tenant settings (subscribedSkus), no paging.
MODES = ("window", "list", "delta", "computed")

_EQ_GE_LE = frozenset({"eq", "ge", "le"})
_RANGE = frozenset({"ge", "gt", "le", "lt"})

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

_SIGN_IN_FIELDS = frozenset({
    "id", "createdDateTime", "userDisplayName", "userPrincipalName", "userId", "appId", "appDisplayName",
    "ipAddress", "clientAppUsed", "correlationId", "conditionalAccessStatus", "isInteractive", "riskDetail",
    "riskLevelAggregated", "riskLevelDuringSignIn", "riskState", "riskEventTypes", "riskEventTypes_v2",
    "resourceDisplayName", "resourceId", "status", "deviceDetail", "location", "appliedConditionalAccessPolicies",
})
_AUDIT_FIELDS = frozenset({
    "id", "category", "correlationId", "result", "resultReason", "activityDisplayName", "activityDateTime",
    "loggedByService", "operationType", "initiatedBy", "targetResources", "additionalDetails",
})
_USER_FIELDS = frozenset(USER_DEFAULT_PROPERTIES) | {
    "accountEnabled", "createdDateTime", "department", "companyName", "city", "country", "usageLocation",
    "employeeId", "userType", "onPremisesSyncEnabled",
}


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
        known_fields=_SIGN_IN_FIELDS | ({"signInEventTypes"} if beta else set()),
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
