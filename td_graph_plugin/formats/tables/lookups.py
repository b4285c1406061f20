"""Value tables the ECS and OCSF mappings look Graph values up in (``map:NAME``).

Keys are Graph's documented values as strings (lower-cased where the rule says ``lower|``);
``"*"`` is the value for anything else (without it, an unknown value writes nothing).
"""

from __future__ import annotations

from typing import Any

# A sign-in's status.errorCode: 0 is success, anything else a failure (signIn resource docs).
_ERROR_OUTCOME = {"0": "success", "*": "failure"}
_ERROR_STATUS = {"0": 1, "*": 2}

# Defender's alert/incident severity (informational, low, medium, high) as Elastic's integrations
# score it in event.severity (m365_defender: 21, 47, 73, 99).
_SEVERITY_SCORE = {"informational": 21, "low": 21, "medium": 47, "high": 73, "critical": 99}

# alert evidence @odata.type -> ECS event.category (the m365_defender integration's table).
_EVIDENCE_CATEGORY = {
    "#microsoft.graph.security.analyzedmessageevidence": "email",
    "#microsoft.graph.security.mailboxevidence": "email",
    "#microsoft.graph.security.mailclusterevidence": "email",
    "#microsoft.graph.security.deviceevidence": "host",
    "#microsoft.graph.security.fileevidence": "file",
    "#microsoft.graph.security.ipevidence": "network",
    "#microsoft.graph.security.processevidence": "process",
    "#microsoft.graph.security.registryvalueevidence": "registry",
    "#microsoft.graph.security.registrykeyevidence": "registry",
    "#microsoft.graph.security.userevidence": "iam",
    "#microsoft.graph.security.securitygroupevidence": "iam",
}
_EVIDENCE_TYPE = {
    "#microsoft.graph.security.registryvalueevidence": "access",
    "#microsoft.graph.security.registrykeyevidence": "access",
    "*": "info",
}

LOOKUPS: dict[str, dict[str, Any]] = {
    # ---- shared
    "error_outcome": _ERROR_OUTCOME,
    "error_status_id": _ERROR_STATUS,
    "negate": {"true": False, "false": True},
    "removal_action": {"deleted": "deleted", "changed": "soft-deleted"},
    "removal_activity": {"deleted": "Deleted", "changed": "Soft-deleted"},
    # directoryAudit.result: success, failure, timeout, unknownFutureValue
    "audit_outcome": {"success": "success", "failure": "failure", "timeout": "failure", "*": "unknown"},
    "audit_status_id": {"success": 1, "failure": 2, "timeout": 2, "*": 0},
    # directoryAudit.operationType (or the first word of activityDisplayName), lower-cased
    "operation_event_type": {
        "add": "creation", "create": "creation", "register": "creation", "restore": "creation",
        "update": "change", "set": "change", "change": "change", "assign": "change", "unassign": "change",
        "enable": "change", "disable": "change", "reset": "change", "consent": "change", "reprocess": "change",
        "delete": "deletion", "remove": "deletion", "hard": "deletion", "*": "info",
    },
    "operation_api_activity": {
        "add": 1, "create": 1, "register": 1, "restore": 1, "update": 3, "set": 3, "change": 3, "assign": 3,
        "unassign": 3, "enable": 3, "disable": 3, "reset": 3, "consent": 3, "delete": 4, "remove": 4, "hard": 4,
        "*": 99,
    },
    # targetResources[].type, lower-cased: what kind of IAM object changed (ECS event.type)
    "target_event_type": {"user": "user", "group": "group"},
    # directory audits OCSF routes to Account Change (3001), by activityDisplayName
    "account_change_activity": {
        "Add user": 1, "Enable account": 2, "Change user password": 3, "Change password (self-service)": 3,
        "Reset user password": 4, "Reset password (by admin)": 4, "Reset password (self-service)": 4,
        "Disable account": 5, "Delete user": 6, "Hard delete user": 6,
    },
    # provisioningObjectSummary.provisioningAction / provisioningStatusInfo.status
    "provisioning_event_type": {"create": "creation", "update": "change", "delete": "deletion",
                                "stageddelete": "deletion", "disable": "change", "*": "info"},
    "provisioning_outcome": {"success": "success", "warning": "success", "failure": "failure", "*": "unknown"},
    # intune auditEvent.activityOperationType / activityResult
    "intune_event_type": {"create": "creation", "delete": "deletion", "patch": "change", "update": "change",
                          "action": "change", "get": "access", "*": "info"},
    "intune_api_activity": {"create": 1, "get": 2, "patch": 3, "update": 3, "action": 3, "delete": 4, "*": 99},
    "intune_outcome": {"success": "success", "failure": "failure", "fail": "failure", "*": "unknown"},
    # ---- Defender XDR
    "severity_score": _SEVERITY_SCORE,
    "evidence_category": _EVIDENCE_CATEGORY,
    "evidence_type": _EVIDENCE_TYPE,
    "determination_category": {"malware": "malware", "malicioususeractivity": "malware", "phishing": "email", "apt": "threat"},
    "determination_type": {"malware": "info", "malicioususeractivity": "info", "phishing": "info", "apt": "indicator"},
    "severity_id": {"informational": 1, "low": 2, "medium": 3, "high": 4, "*": 0},
    # alert.status (new, inProgress, resolved) -> Detection Finding activity / status
    "alert_activity_id": {"new": 1, "inprogress": 2, "resolved": 3, "*": 0},
    "alert_status_id": {"new": 1, "inprogress": 2, "resolved": 4, "*": 0},
    # incident.status (active, inProgress, awaitingAction, resolved, redirected)
    "incident_activity_id": {"active": 1, "inprogress": 2, "awaitingaction": 2, "resolved": 3, "redirected": 3, "*": 0},
    "incident_status_id": {"active": 1, "inprogress": 2, "awaitingaction": 3, "resolved": 4, "redirected": 5, "*": 0},
    # alert/incident classification -> OCSF verdict
    "verdict_id": {"falsepositive": 1, "truepositive": 2, "informationalexpectedactivity": 5, "*": 0},
    "verdict": {"falsepositive": "False Positive", "truepositive": "True Positive",
                "informationalexpectedactivity": "Benign", "*": "Unknown"},
    # ---- Identity Protection (riskLevel: low, medium, high, hidden, none; riskState ...)
    "risk_score": {"low": 21, "medium": 47, "high": 73},
    "risk_severity_id": {"none": 1, "low": 2, "medium": 3, "high": 4, "*": 0},
    "risk_level_id": {"none": 0, "low": 1, "medium": 2, "high": 3},
    "risk_level": {"none": "Info", "low": "Low", "medium": "Medium", "high": "High"},
    "risk_activity_category": {"signin": "authentication", "user": "iam", "serviceprincipal": "iam"},
    "risk_activity_type": {"user": "user"},
    "risk_activity_id": {"atrisk": 1, "confirmedcompromised": 2, "remediated": 3, "dismissed": 3,
                         "confirmedsafe": 3, "*": 2},
    "risk_status_id": {"atrisk": 1, "confirmedcompromised": 2, "remediated": 4, "dismissed": 3,
                       "confirmedsafe": 4, "*": 0},
    # ---- sign-ins: which of the four sign-in logs (the envelope's source)
    "sign_in_action": {"audit_logs.sign_ins": "interactive-user-sign-in",
                       "audit_logs.sign_ins_non_interactive": "non-interactive-user-sign-in",
                       "audit_logs.sign_ins_service_principal": "service-principal-sign-in",
                       "audit_logs.sign_ins_managed_identity": "managed-identity-sign-in"},
    "auth_protocol_id": {"oauth2": 6, "saml20": 5, "ropc": 99, "wsfederation": 99, "devicecode": 99, "none": 0, "*": 99},
    "auth_protocol": {"oauth2": "OAUTH 2.0", "saml20": "SAML", "ropc": "ROPC", "wsfederation": "WS-Federation",
                      "devicecode": "Device code", "none": "Unknown"},
    "is_mfa": {"multifactorauthentication": True, "singlefactorauthentication": False},
    # user.userType / directory object kinds -> OCSF user.type_id
    "user_type_id": {"member": 1, "guest": 1, "*": 0},
    "user_type": {"member": "User", "guest": "User", "*": "Unknown"},
    "account_type_id": {"*": 6},
    # device.operatingSystem (lower-cased) -> OCSF os.type_id
    "os_type_id": {"windows": 100, "windows10": 100, "windows 10": 100, "windows 11": 100, "linux": 200,
                   "android": 201, "androidforwork": 201, "macos": 300, "macmdm": 300, "ios": 301, "ipados": 302,
                   "*": 0},
    "os_type": {"windows": "Windows", "windows10": "Windows", "windows 10": "Windows", "windows 11": "Windows",
                "linux": "Linux", "android": "Android", "androidforwork": "Android", "macos": "macOS",
                "macmdm": "macOS", "ios": "iOS", "ipados": "iPadOS", "*": "Unknown"},
}
