"""ECS mapping tables, one per source (data only; the rule language is in ``formats.rules``).

Field meanings follow Microsoft's Graph resource documentation; the categorisation follows
Elastic's own integrations for the same data (``azure`` sign-in/audit logs, ``m365_defender``
alerts and incidents, ``entityanalytics_entra_id`` users and devices), see docs/formats.md.
"""

from __future__ import annotations

from typing import Any

ECS_VERSION = "9.4.0"

# Every document: the envelope.  Source tables come first, so their rules win for scalars.
COMMON: dict[str, Any] = {
    "const": {"ecs.version": ECS_VERSION, "event.kind": "event", "event.module": "td_graph", "cloud.provider": "azure"},
    "fields": [
        ("@timestamp", ["event_time", "collected_at"], "date"),
        ("event.created", "collected_at", "date"),
        ("event.id", "id", "str"),
        ("event.dataset", "source", "prefix:td_graph."),
        ("organization.id", "tenant_id"),
        ("organization.name", "tenant"),
        ("cloud.account.id", "tenant_id"),
    ],
    # A delta or snapshot removal (record["removed"]): the object is gone.
    "removed": {"const": {"event.type[]": ["deletion"]}, "fields": [("event.action", "removed", "map:removal_action")]},
}

_SIGN_IN: dict[str, Any] = {
    "const": {"event.category[]": ["authentication"], "event.type[]": ["info"], "event.provider": "Microsoft Entra ID"},
    "fields": [
        ("event.action", "source", "map:sign_in_action"),
        ("event.outcome", "data.status.errorCode", "map:error_outcome"),
        ("event.reason", "data.status.failureReason"),
        ("error.code", "data.status.errorCode", "nonzero|str"),
        ("user.id", ["data.userId", "data.servicePrincipalId"]),
        ("user.name", ["data.userPrincipalName", "data.servicePrincipalName"]),
        ("user.domain", "data.userPrincipalName", "upn_domain"),
        ("user.full_name", "data.userDisplayName"),
        ("source.ip", "data.ipAddress", "ip"),
        ("source.address", "data.ipAddress"),
        ("source.as.number", "data.autonomousSystemNumber", "int"),
        ("source.geo.city_name", "data.location.city"),
        ("source.geo.region_name", "data.location.state"),
        ("source.geo.country_iso_code", "data.location.countryOrRegion"),
        ("source.geo.location", "data.location.geoCoordinates", "geo_point"),
        ("user_agent.original", "data.userAgent"),
        ("host.id", "data.deviceDetail.deviceId"),
        ("host.name", "data.deviceDetail.displayName"),
        ("host.os.full", "data.deviceDetail.operatingSystem"),
        ("related.user[]", ["data.userPrincipalName", "data.servicePrincipalName"]),
        ("related.user[]", ["data.userId", "data.servicePrincipalId"]),
        ("related.ip[]", "data.ipAddress", "ip"),
    ],
}


_RISK_USER = [
    ("user.id", "data.userId"),
    ("user.name", "data.userPrincipalName"),
    ("user.domain", "data.userPrincipalName", "upn_domain"),
    ("user.full_name", "data.userDisplayName"),
    ("user.risk.static_level", "data.riskLevel"),
    ("related.user[]", "data.userPrincipalName"),
    ("related.user[]", "data.userId"),
]

_DEVICE_EVIDENCE = "data.evidence[?@odata.type=#microsoft.graph.security.deviceEvidence]"
_USER_EVIDENCE = "data.evidence[?@odata.type=#microsoft.graph.security.userEvidence].userAccount"

TABLES: dict[str, dict[str, Any]] = {
    "audit_logs.sign_ins": _SIGN_IN,
    "audit_logs.sign_ins_non_interactive": _SIGN_IN,
    "audit_logs.sign_ins_service_principal": _SIGN_IN,
    "audit_logs.sign_ins_managed_identity": _SIGN_IN,
    "audit_logs.directory_audits": {
        "const": {"event.category[]": ["iam"]},
        "fields": [
            ("event.action", "data.activityDisplayName"),
            ("event.type[]", ["data.operationType", "data.activityDisplayName"], "first_word|lower|map:operation_event_type"),
            # targetResource.type; Microsoft's own example writes it "Type"
            ("event.type[]", ["data.targetResources[].type", "data.targetResources[].Type"], "lower|map:target_event_type"),
            ("event.outcome", "data.result", "lower|map:audit_outcome"),
            ("event.reason", "data.resultReason"),
            ("event.provider", "data.loggedByService"),
            ("user.id", ["data.initiatedBy.user.id", "data.initiatedBy.app.servicePrincipalId"]),
            ("user.name", ["data.initiatedBy.user.userPrincipalName", "data.initiatedBy.app.servicePrincipalName"]),
            ("user.domain", "data.initiatedBy.user.userPrincipalName", "upn_domain"),
            ("user.full_name", ["data.initiatedBy.user.displayName", "data.initiatedBy.app.displayName"]),
            ("source.ip", "data.initiatedBy.user.ipAddress", "ip"),
            ("user.target.id", "data.targetResources[?type=User].id", "first"),
            ("user.target.name", "data.targetResources[?type=User].userPrincipalName", "first"),
            ("user.target.domain", "data.targetResources[?type=User].userPrincipalName", "first|upn_domain"),
            ("user.target.full_name", "data.targetResources[?type=User].displayName", "first"),
            ("user.target.group.id", "data.targetResources[?type=Group].id", "first"),
            ("user.target.group.name", "data.targetResources[?type=Group].displayName", "first"),
            ("related.user[]", "data.initiatedBy.user.userPrincipalName"),
            ("related.user[]", "data.initiatedBy.user.id"),
            ("related.user[]", "data.targetResources[?type=User].userPrincipalName"),
            ("related.user[]", "data.targetResources[?type=User].id"),
            ("related.ip[]", "data.initiatedBy.user.ipAddress", "ip"),
        ],
    },
    "audit_logs.provisioning": {
        "const": {"event.category[]": ["iam"], "event.provider": "Microsoft Entra provisioning"},
        "fields": [
            ("event.action", "data.provisioningAction"),
            ("event.type[]", "data.provisioningAction", "lower|map:provisioning_event_type"),
            ("event.type[]", "data.targetIdentity[?identityType=User].identityType", "lower|map:target_event_type"),
            ("event.outcome", "data.provisioningStatusInfo.status", "lower|map:provisioning_outcome"),
            ("event.duration", "data.durationInMilliseconds", "ms_to_ns"),
            ("error.code", "data.provisioningStatusInfo.errorInformation.errorCode"),
            ("error.message", "data.provisioningStatusInfo.errorInformation.reason"),
            ("user.target.id", "data.targetIdentity[?identityType=User].id", "first"),
            ("user.target.full_name", "data.targetIdentity[?identityType=User].displayName", "first"),
            ("related.user[]", "data.targetIdentity[?identityType=User].id"),
            ("related.user[]", "data.sourceIdentity[?identityType=User].id"),
        ],
    },
    "security.alerts_v2": {
        "const": {"event.kind": "alert"},
        "fields": [
            ("event.category[]", "data.evidence[].@odata.type", "lower|map:evidence_category"),
            ("event.type[]", "data.evidence[].@odata.type", "lower|map:evidence_type"),
            ("event.category[]", "data.determination", "lower|map:determination_category"),
            ("event.type[]", "data.determination", "lower|map:determination_type"),
            ("event.severity", "data.severity", "lower|map:severity_score"),
            ("event.provider", "data.serviceSource"),
            ("event.url", "data.alertWebUrl"),
            ("event.start", "data.firstActivityDateTime", "date"),
            ("event.end", "data.lastActivityDateTime", "date"),
            ("message", "data.title"),
            ("rule.id", "data.detectorId"),
            ("rule.name", "data.title"),
            ("rule.description", "data.description"),
            ("rule.category", "data.category"),
            ("rule.ruleset", "data.detectionSource"),
            ("threat.framework", "data.mitreTechniques", "=MITRE ATT&CK"),
            ("threat.tactic.name[]", "data.category"),
            ("threat.technique.id[]", "data.mitreTechniques[]", "technique"),
            ("threat.technique.subtechnique.id[]", "data.mitreTechniques[]", "subtechnique"),
            ("threat.group.name", "data.actorDisplayName"),
            ("threat.software.name", ["data.threatFamilyName", "data.threatDisplayName"]),
            ("host.name", f"{_DEVICE_EVIDENCE}.deviceDnsName", "first"),
            ("host.id", f"{_DEVICE_EVIDENCE}.azureAdDeviceId", "first"),
            ("host.os.name", f"{_DEVICE_EVIDENCE}.osPlatform", "first"),
            ("host.ip[]", f"{_DEVICE_EVIDENCE}.ipInterfaces[]", "ip"),
            ("user.name", f"{_USER_EVIDENCE}.userPrincipalName", "first"),
            ("user.id", f"{_USER_EVIDENCE}.azureAdUserId", "first"),
            ("user.domain", f"{_USER_EVIDENCE}.domainName", "first"),
            ("user.full_name", f"{_USER_EVIDENCE}.displayName", "first"),
            ("related.user[]", "data.evidence[].userAccount.userPrincipalName"),
            ("related.user[]", "data.evidence[].userAccount.accountName"),
            ("related.user[]", "data.assignedTo"),
            ("related.ip[]", "data.evidence[?@odata.type=#microsoft.graph.security.ipEvidence].ipAddress", "ip"),
            ("related.ip[]", f"{_DEVICE_EVIDENCE}.ipInterfaces[]", "ip"),
            ("related.hosts[]", f"{_DEVICE_EVIDENCE}.deviceDnsName"),
            ("related.hash[]", "data.evidence[].fileDetails.sha256"),
            ("related.hash[]", "data.evidence[].fileDetails.sha1"),
            ("related.hash[]", "data.evidence[].imageFile.sha256"),
        ],
    },
    "security.incidents": {
        # ECS: "alert ... an alert or notable event, triggered by a detection rule executing
        # externally" (Elastic's m365_defender incident stream says event; an incident is notable).
        "const": {"event.kind": "alert"},
        "fields": [
            ("event.category[]", "data.determination", "lower|map:determination_category"),
            ("event.type[]", "data.determination", "lower|map:determination_type"),
            ("event.severity", "data.severity", "lower|map:severity_score"),
            ("event.url", "data.incidentWebUrl"),
            ("message", "data.displayName"),
            ("tags[]", "data.customTags[]"),
            ("tags[]", "data.systemTags[]"),
            ("threat.framework", "data.alerts[].mitreTechniques[]", "=MITRE ATT&CK"),
            ("threat.tactic.name[]", "data.alerts[].category"),
            ("threat.technique.id[]", "data.alerts[].mitreTechniques[]", "technique"),
            ("threat.technique.subtechnique.id[]", "data.alerts[].mitreTechniques[]", "subtechnique"),
            ("related.user[]", "data.assignedTo"),
            ("related.user[]", "data.comments[].createdBy"),
        ],
    },
    "identity_protection.risk_detections": {
        "const": {"event.kind": "alert", "event.type[]": ["info"]},
        "fields": [
            ("event.category[]", "data.activity", "lower|map:risk_activity_category"),
            ("event.type[]", "data.activity", "lower|map:risk_activity_type"),
            ("event.action", "data.riskEventType"),
            ("event.severity", "data.riskLevel", "lower|map:risk_score"),
            ("event.provider", "data.source"),
            ("event.start", "data.activityDateTime", "date"),
            ("rule.name", "data.riskEventType"),
            ("rule.ruleset", "data.detectionTimingType"),
            *_RISK_USER,
            ("source.ip", "data.ipAddress", "ip"),
            ("source.geo.city_name", "data.location.city"),
            ("source.geo.region_name", "data.location.state"),
            ("source.geo.country_iso_code", "data.location.countryOrRegion"),
            ("source.geo.location", "data.location.geoCoordinates", "geo_point"),
            ("user_agent.original", "data.additionalInfo", "kv:userAgent"),
            ("related.ip[]", "data.ipAddress", "ip"),
        ],
    },
    "identity_protection.risky_users": {
        "const": {"event.category[]": ["iam"], "event.type[]": ["user", "info"]},
        "fields": [
            ("event.action", "data.riskState"),
            ("event.severity", "data.riskLevel", "lower|map:risk_score"),
            ("user.id", "data.id"),
            *_RISK_USER[1:],
            ("related.user[]", "data.id"),
        ],
    },
    "directory.users": {
        "const": {"event.kind": "asset", "event.category[]": ["iam"], "event.type[]": ["user", "info"],
                  "event.action": "user-inventory"},
        "removed": {"const": {"event.type[]": ["user", "deletion"]}},
        "fields": [
            ("user.id", "data.id"),
            ("user.name", "data.userPrincipalName"),
            ("user.domain", "data.userPrincipalName", "upn_domain"),
            ("user.full_name", "data.displayName"),
            ("user.email", "data.mail"),
            ("related.user[]", "data.userPrincipalName"),
            ("related.user[]", "data.id"),
            ("related.user[]", "data.mail"),
        ],
    },
    "directory.devices": {
        "const": {"event.kind": "asset", "event.category[]": ["host"], "event.type[]": ["info"],
                  "event.action": "device-inventory"},
        "removed": {"const": {"event.category[]": ["iam"], "event.type[]": ["deletion"]}},
        "fields": [
            ("host.id", "data.deviceId"),
            ("host.name", "data.displayName"),
            ("host.os.name", "data.operatingSystem"),
            ("host.os.version", "data.operatingSystemVersion"),
            ("device.id", "data.deviceId"),
            ("device.manufacturer", "data.manufacturer"),
            ("device.model.name", "data.model"),
            ("related.hosts[]", "data.displayName"),
        ],
    },
    "intune.audit_events": {
        "const": {"event.category[]": ["configuration"], "event.provider": "Microsoft Intune"},
        "fields": [
            ("event.action", ["data.activity", "data.displayName"]),
            ("event.type[]", "data.activityOperationType", "lower|map:intune_event_type"),
            ("event.outcome", "data.activityResult", "lower|map:intune_outcome"),
            ("user.id", "data.actor.userId"),
            ("user.name", ["data.actor.userPrincipalName", "data.actor.servicePrincipalName"]),
            ("user.domain", "data.actor.userPrincipalName", "upn_domain"),
            ("source.ip", "data.actor.ipAddress", "ip"),
            ("related.user[]", "data.actor.userPrincipalName"),
            ("related.user[]", "data.actor.userId"),
            ("related.ip[]", "data.actor.ipAddress", "ip"),
        ],
    },
}
