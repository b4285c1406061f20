"""OCSF mapping tables: the class per source and its rules (data only, see ``formats.rules``).

A table names its ``class`` (a key of ``CLASSES``); ``variants`` pick a class per record by
``when`` conditions (the first that holds, the last is the default).  ``activity_id``,
``severity_id`` and ``status_id`` come from rules or constants; the formatter derives
``type_uid`` and the captions (``activity_name``, ``type_name``, ``severity``, ``status``) from
``CLASSES``.  Captions and ids are the OCSF schema's own (tests check them against it).
"""

from __future__ import annotations

from typing import Any

OCSF_VERSION = "1.8.0"

SEVERITY = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal", 99: "Other"}
_STATUS = {0: "Unknown", 1: "Success", 2: "Failure", 99: "Other"}
_FINDING = {0: "Unknown", 1: "Create", 2: "Update", 3: "Close", 99: "Other"}
_DISCOVERY = {0: "Unknown", 1: "Log", 2: "Collect", 99: "Other"}

CLASSES: dict[str, dict[str, Any]] = {
    "base_event": {"class_uid": 0, "class_name": "Base Event", "category_uid": 0, "category_name": "Uncategorized",
                   "activities": {0: "Unknown", 99: "Other"}, "status": _STATUS},
    "authentication": {
        "class_uid": 3002, "class_name": "Authentication", "category_uid": 3, "category_name": "Identity & Access Management",
        "activities": {0: "Unknown", 1: "Logon", 2: "Logoff", 3: "Authentication Ticket", 4: "Service Ticket Request",
                       5: "Service Ticket Renew", 6: "Preauth", 7: "Account Switch", 99: "Other"},
        "status": _STATUS,
    },
    "account_change": {
        "class_uid": 3001, "class_name": "Account Change", "category_uid": 3, "category_name": "Identity & Access Management",
        "activities": {0: "Unknown", 1: "Create", 2: "Enable", 3: "Password Change", 4: "Password Reset", 5: "Disable",
                       6: "Delete", 7: "Attach Policy", 8: "Detach Policy", 9: "Lock", 10: "MFA Factor Enable",
                       11: "MFA Factor Disable", 12: "Unlock", 99: "Other"},
        "status": _STATUS,
    },
    "api_activity": {
        "class_uid": 6003, "class_name": "API Activity", "category_uid": 6, "category_name": "Application Activity",
        "activities": {0: "Unknown", 1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other"},
        "status": _STATUS,
    },
    "detection_finding": {
        "class_uid": 2004, "class_name": "Detection Finding", "category_uid": 2, "category_name": "Findings",
        "activities": _FINDING,
        "status": {0: "Unknown", 1: "New", 2: "In Progress", 3: "Suppressed", 4: "Resolved", 5: "Archived", 6: "Deleted",
                   99: "Other"},
    },
    "incident_finding": {
        "class_uid": 2005, "class_name": "Incident Finding", "category_uid": 2, "category_name": "Findings",
        "activities": _FINDING,
        "status": {0: "Unknown", 1: "New", 2: "In Progress", 3: "On Hold", 4: "Resolved", 5: "Closed", 99: "Other"},
    },
    "user_inventory": {"class_uid": 5003, "class_name": "User Inventory Info", "category_uid": 5,
                       "category_name": "Discovery", "activities": _DISCOVERY, "status": _STATUS},
    "device_inventory": {"class_uid": 5001, "class_name": "Device Inventory Info", "category_uid": 5,
                         "category_name": "Discovery", "activities": _DISCOVERY, "status": _STATUS},
}

# Every event: the envelope.  metadata.profiles "cloud": the tenant is the cloud account.
COMMON: dict[str, Any] = {
    "const": {
        "activity_id": 0, "severity_id": 1, "timezone_offset": 0,
        "metadata.version": OCSF_VERSION, "metadata.product.name": "Microsoft Graph",
        "metadata.product.vendor_name": "Microsoft", "metadata.profiles[]": ["cloud"],
        "cloud.provider": "Azure", "cloud.account.type_id": 17, "cloud.account.type": "M365 Tenant",
    },
    "fields": [
        ("time", ["event_time", "collected_at"], "ms"),
        ("metadata.uid", "id", "str"),
        ("metadata.tenant_uid", "tenant_id"),
        ("metadata.log_name", "source"),
        ("metadata.logged_time", "collected_at", "ms"),
        ("metadata.original_time", "event_time"),
        ("cloud.account.uid", "tenant_id"),
        ("cloud.account.name", "tenant"),
    ],
    # A delta or snapshot removal: the object is gone (activity Other, named Deleted/Soft-deleted).
    "removed": {"const": {"activity_id": 99}, "fields": [("activity_name", "removed", "map:removal_activity")]},
}

_LOCATION = {"city": "city", "region": "state", "country": "countryOrRegion",
             "lat": "geoCoordinates.latitude", "long": "geoCoordinates.longitude"}
# An IP address and where Entra placed it; no endpoint at all without a valid address.
_ENDPOINT = {"ip": ("ipAddress", "ip"), "location": ("location", _LOCATION), "_require": ["ip"]}


_SIGN_IN: dict[str, Any] = {
    "class": "authentication",
    "const": {"activity_id": 1, "metadata.product.name": "Microsoft Entra ID"},
    "fields": [
        ("status_id", "data.status.errorCode", "map:error_status_id"),
        ("status_code", "data.status.errorCode", "str"),
        ("status_detail", "data.status.failureReason"),
        ("user.uid", ["data.userId", "data.servicePrincipalId"]),
        ("user.name", ["data.userPrincipalName", "data.servicePrincipalName"]),
        ("user.full_name", "data.userDisplayName"),
        ("user.domain", "data.userPrincipalName", "upn_domain"),
        ("user.type_id", "data.userType", "lower|map:user_type_id"),
        ("user.type", "data.userType", "lower|map:user_type"),
        ("is_mfa", "data.authenticationRequirement", "lower|map:is_mfa"),
        ("auth_protocol_id", "data.authenticationProtocol", "lower|map:auth_protocol_id"),
        ("auth_protocol", "data.authenticationProtocol", "lower|map:auth_protocol"),
        # OCSF wants a service or a dst_endpoint: the application signed in to (else the resource)
        ("service.name", ["data.appDisplayName", "data.resourceDisplayName"]),
        ("service.uid", ["data.appId", "data.resourceId"]),
        ("src_endpoint", "data", {
            "ip": ("ipAddress", "ip"), "location": ("location", _LOCATION), "uid": "deviceDetail.deviceId",
            "name": "deviceDetail.displayName",
            "os": ("deviceDetail", {"name": "operatingSystem", "type_id": ("operatingSystem", "lower|map:os_type_id")}),
            "_require": ["ip", "uid", "name"]}),
        ("http_request.user_agent", "data.userAgent"),
    ],
}


_DIRECTORY_ACTOR = [
    ("actor.user", "data.initiatedBy.user", {"uid": "id", "name": "userPrincipalName", "full_name": "displayName",
                                             "domain": ("userPrincipalName", "upn_domain")}),
    ("actor.app_name", ["data.initiatedBy.app.displayName", "data.loggedByService"]),
    ("actor.app_uid", "data.initiatedBy.app.appId"),
    ("src_endpoint.ip", "data.initiatedBy.user.ipAddress", "ip"),
    ("status_id", "data.result", "lower|map:audit_status_id"),
    ("status_detail", "data.resultReason"),
    ("message", "data.activityDisplayName"),
]
_FINDING_DEVICE = {"hostname": "deviceDnsName", "uid": "mdeDeviceId", "type_id": (".", "=0"),
                   "ip": ("ipInterfaces[]", "first|ip"),
                   "os": (".", {"name": "osPlatform", "type_id": ("osPlatform", "lower|map:os_type_id")})}

_INCIDENT: dict[str, Any] = {
    "class": "incident_finding",
    "const": {"metadata.product.name": "Microsoft Defender XDR"},
    "fields": [
        ("activity_id", "data.status", "lower|map:incident_activity_id"),
        ("status_id", "data.status", "lower|map:incident_status_id"),
        ("status_detail", "data.status"),
        ("severity_id", "data.severity", "lower|map:severity_id"),
        ("verdict_id", "data.classification", "lower|map:verdict_id"),
        ("verdict", "data.classification", "lower|map:verdict"),
        ("message", "data.displayName"),
        ("desc", "data.description"),
        ("src_url", "data.incidentWebUrl"),
        ("start_time", "data.createdDateTime", "ms"),
        # The incident's alerts when read with it (fetch_alerts), else the incident itself.
        ("finding_info_list[]", ["data.alerts[]", "data"], {
            "uid": "id", "title": ["title", "displayName"], "src_url": ["alertWebUrl", "incidentWebUrl"],
            "created_time": ("createdDateTime", "ms"), "modified_time": ("lastUpdateDateTime", "ms")}),
    ],
}

TABLES: dict[str, dict[str, Any]] = {
    "audit_logs.sign_ins": _SIGN_IN,
    "audit_logs.sign_ins_non_interactive": _SIGN_IN,
    "audit_logs.sign_ins_service_principal": _SIGN_IN,
    "audit_logs.sign_ins_managed_identity": _SIGN_IN,
    "audit_logs.directory_audits": {
        "variants": [
            {
                "class": "account_change",
                "when": [("data.activityDisplayName", "in:account_change_activity"),
                         ("data.targetResources[?type=User].id", "exists")],
                "const": {"metadata.product.name": "Microsoft Entra ID"},
                "fields": [
                    ("activity_id", "data.activityDisplayName", "map:account_change_activity"),
                    ("user", "data.targetResources[?type=User]", {"uid": "id", "name": "userPrincipalName",
                                                                 "full_name": "displayName"}),
                    *_DIRECTORY_ACTOR,
                ],
            },
            {
                "class": "api_activity",
                "const": {"metadata.product.name": "Microsoft Entra ID"},
                "fields": [
                    ("activity_id", ["data.operationType", "data.activityDisplayName"], "first_word|lower|map:operation_api_activity"),
                    ("activity_name", ["data.operationType", "data.activityDisplayName"],
                     "first_word|unless:operation_api_activity"),
                    ("api.operation", "data.activityDisplayName"),
                    ("api.service.name", "data.loggedByService"),
                    ("api.request.uid", "data.correlationId"),
                    ("resources[]", "data.targetResources[]", {"uid": "id", "name": "displayName", "type": ["type", "Type"]}),
                    *_DIRECTORY_ACTOR,
                    ("src_endpoint.svc_name", "data.loggedByService"),
                ],
            },
        ],
    },
    "intune.audit_events": {
        "class": "api_activity",
        "const": {"metadata.product.name": "Microsoft Intune"},
        "fields": [
            ("activity_id", "data.activityOperationType", "lower|map:intune_api_activity"),
            ("activity_name", "data.activityOperationType", "unless:intune_api_activity"),
            ("status_id", "data.activityResult", "lower|map:audit_status_id"),
            ("api.operation", ["data.activity", "data.displayName"]),
            ("api.service.name", "data.componentName"),
            ("api.request.uid", "data.correlationId"),
            ("actor.user", "data.actor", {"uid": "userId", "name": ["userPrincipalName", "servicePrincipalName"]}),
            ("actor.app_name", ["data.actor.applicationDisplayName", "data.componentName"]),
            ("actor.app_uid", "data.actor.applicationId"),
            ("src_endpoint.ip", "data.actor.ipAddress", "ip"),
            ("src_endpoint.svc_name", "data.componentName"),
            ("resources[]", "data.resources[]", {"uid": "resourceId", "name": "displayName", "type": "type"}),
            ("message", "data.displayName"),
        ],
    },
    "security.alerts_v2": {
        "class": "detection_finding",
        "const": {"metadata.product.name": "Microsoft Defender XDR", "is_alert": True},
        "fields": [
            ("activity_id", "data.status", "lower|map:alert_activity_id"),
            ("status_id", "data.status", "lower|map:alert_status_id"),
            ("status_detail", "data.status"),
            ("severity_id", "data.severity", "lower|map:severity_id"),
            ("message", "data.title"),
            ("finding_info.uid", "data.id"),
            ("finding_info.title", "data.title"),
            ("finding_info.desc", "data.description"),
            ("finding_info.src_url", "data.alertWebUrl"),
            ("finding_info.created_time", "data.createdDateTime", "ms"),
            ("finding_info.modified_time", "data.lastUpdateDateTime", "ms"),
            ("finding_info.first_seen_time", "data.firstActivityDateTime", "ms"),
            ("finding_info.last_seen_time", "data.lastActivityDateTime", "ms"),
            ("finding_info.types[]", "data.category"),
            ("finding_info.data_sources[]", "data.detectionSource"),
            ("finding_info.analytic", "data", {"uid": "detectorId", "name": "title", "type_id": ("detectorId", "=1")}),
            ("finding_info.attacks[]", "data.mitreTechniques[]", {"technique.uid": (".", "technique"),
                                                                  "sub_technique.uid": (".", "subtechnique")}),
            ("finding_info.attacks[]", "data.category", {"tactic.name": "."}),
            ("device", "data.evidence[?@odata.type=#microsoft.graph.security.deviceEvidence]", _FINDING_DEVICE),
        ],
    },
    "identity_protection.risk_detections": {
        "class": "detection_finding",
        "const": {"metadata.product.name": "Microsoft Entra ID Protection", "is_alert": True},
        "fields": [
            ("activity_id", "data.riskState", "lower|map:risk_activity_id"),
            ("status_id", "data.riskState", "lower|map:risk_status_id"),
            ("status_detail", "data.riskDetail"),
            ("severity_id", "data.riskLevel", "lower|map:risk_severity_id"),
            ("risk_level_id", "data.riskLevel", "lower|map:risk_level_id"),
            ("risk_level", "data.riskLevel", "lower|map:risk_level"),
            ("message", "data.riskEventType"),
            ("finding_info.uid", "data.id"),
            ("finding_info.title", "data.riskEventType"),
            ("finding_info.types[]", "data.riskEventType"),
            ("finding_info.created_time", "data.detectedDateTime", "ms"),
            ("finding_info.modified_time", "data.lastUpdatedDateTime", "ms"),
            ("finding_info.first_seen_time", "data.activityDateTime", "ms"),
            ("finding_info.data_sources[]", "data.source"),
            ("finding_info.analytic", "data", {"name": "riskEventType", "type_id": ("riskEventType", "=99"),
                                               "type": ("riskEventType", "=Other")}),
            ("evidences[]", "data", {"user.uid": "userId", "user.name": "userPrincipalName",
                                     "user.full_name": "userDisplayName", "src_endpoint": (".", _ENDPOINT)}),
        ],
    },
    "security.incidents": {
        "variants": [
            {**_INCIDENT, "when": [("data.assignedTo", "exists")], "fields": [("assignee.name", "data.assignedTo"),
                                                                          *_INCIDENT["fields"]]},
            # OCSF wants an assignee or an assignee group; an unassigned incident says so.
            {**_INCIDENT, "const": {**_INCIDENT["const"], "assignee_group.name": "Unassigned"}},
        ],
    },
    "identity_protection.risky_users": {
        "class": "user_inventory",
        "const": {"activity_id": 2, "metadata.product.name": "Microsoft Entra ID Protection"},
        "fields": [
            ("user.uid", "data.id"),
            ("user.name", "data.userPrincipalName"),
            ("user.full_name", "data.userDisplayName"),
            ("user.risk_level_id", "data.riskLevel", "lower|map:risk_level_id"),
            ("user.risk_level", "data.riskLevel", "lower|map:risk_level"),
        ],
    },
    "directory.users": {
        "class": "user_inventory",
        "const": {"activity_id": 2, "metadata.product.name": "Microsoft Entra ID", "user.account.type_id": 6,
                  "user.account.type": "Azure AD Account"},
        "fields": [
            ("user.uid", "data.id"),
            ("user.name", "data.userPrincipalName"),
            ("user.full_name", "data.displayName"),
            ("user.email_addr", "data.mail"),
            ("user.domain", "data.userPrincipalName", "upn_domain"),
            ("user.type_id", "data.userType", "lower|map:user_type_id"),
            ("user.type", "data.userType", "lower|map:user_type"),
            ("user.account.uid", "data.id"),
            ("user.account.name", "data.userPrincipalName"),
            ("user.account.is_disabled", "data.accountEnabled", "bool|map:negate"),
        ],
    },
    "directory.devices": {
        "class": "device_inventory",
        "const": {"activity_id": 2, "metadata.product.name": "Microsoft Entra ID", "device.type_id": 0},
        "fields": [
            ("device.uid", ["data.deviceId", "data.id"]),
            ("device.uid_alt", "data.id"),
            ("device.name", "data.displayName"),
            ("device.hostname", "data.displayName"),
            ("device.vendor_name", "data.manufacturer"),
            ("device.created_time", "data.createdDateTime", "ms"),
            ("device.is_compliant", "data.isCompliant", "bool"),
            ("device.is_managed", "data.isManaged", "bool"),
            ("device.os", "data", {"name": "operatingSystem", "version": "operatingSystemVersion",
                                   "type_id": ("operatingSystem", "lower|map:os_type_id")}),
        ],
    },
}
