"""Generated objects for the sources beyond sign-ins, audits, alerts and users.

Shapes follow graph-facts: §1 (incident, secureScore, secureScoreControlProfile), §2 (riskyUser,
riskDetection, riskyServicePrincipal, servicePrincipalRiskDetection), §3 (provisioningObjectSummary),
§4 (group, device, application, servicePrincipal), §5 (Intune), §6 (appConsentRequest), §7
(userRegistrationDetails, the Office 365 active-user CSV).  Volumes are small (tens), so these favour
realism over speed.  Every function takes the tenant's ``random.Random``; nothing here keeps state.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
import uuid
from typing import Sequence

from .generators import _LOCATION_DICTS, _LOCATIONS, guid
from .graph_roles import GRAPH_APP_ID
from .timefmt import format_ts

__all__ = [
    "make_incident", "make_redirected_incident", "update_incident", "make_secure_score", "CONTROL_PROFILES",
    "make_control_profile", "change_control_profile", "make_risky_user", "change_risky_user",
    "make_risk_detection", "make_risky_service_principal", "make_sp_risk_detection", "make_provisioning",
    "make_group", "make_device", "make_application", "make_service_principal", "first_party_service_principals",
    "make_consent_request", "change_consent_request", "make_managed_device", "make_compliance_policies",
    "make_device_configurations", "make_intune_audit_event", "make_registration_details",
    "office365_active_user_csv", "OFFICE365_COLUMNS", "CHANGERS", "MICROSOFT_TENANT_ID", "stable_uuid",
]

MICROSOFT_TENANT_ID = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"  # owner of Microsoft's first-party apps
_SEVERITY_RANK = {"informational": 0, "low": 1, "medium": 2, "high": 3}
_ANALYSTS = ("soc-analyst@sim.example", "tier2@sim.example", "ir-lead@sim.example")


def _ts(epoch: float) -> str:
    return format_ts(epoch, frac=True)


# --------------------------------------------------------------------------- incidents

def make_incident(rng: random.Random, incident_id: str, alerts: Sequence[dict], tenant_id: str) -> dict:
    """An incident grouping ``alerts`` (their incidentId must already be ``incident_id``)."""
    created = min(a["createdDateTime"] for a in alerts)
    last = max(a["lastUpdateDateTime"] for a in alerts)
    severity = max((a["severity"] for a in alerts), key=lambda s: _SEVERITY_RANK.get(s, 0))
    categories = sorted({a["category"] for a in alerts})
    if len(alerts) == 1:
        name = f"{alerts[0]['title']} involving one user"
    elif len(categories) > 1:
        name = f"Multi-stage incident involving {categories[0]} & {categories[1]} on multiple endpoints"
    else:
        name = f"{categories[0]} incident involving multiple users"
    return {
        "@odata.type": "#microsoft.graph.security.incident",
        "id": incident_id,
        "incidentWebUrl": f"https://security.microsoft.com/incidents/{incident_id}?tid={tenant_id}",
        "redirectIncidentId": None,
        "tenantId": tenant_id,
        "displayName": name,
        "createdDateTime": created,
        "lastUpdateDateTime": last,
        "assignedTo": None,
        "classification": "unknown",
        "determination": "unknown",
        "status": "active",
        "severity": severity,
        "customTags": [],
        "comments": [],
        "systemTags": [],
        "description": None,
        "summary": None,
        "resolvingComment": None,
        "lastModifiedBy": "Microsoft 365 Defender-AlertCorrelation",
        "visible_at": min(a.get("visible_at", 0.0) for a in alerts),
    }


def make_redirected_incident(incident_id: str, target: dict, tenant_id: str) -> dict:
    """An incident Defender merged into ``target``: status ``redirected``, redirectIncidentId set."""
    return {
        **target,
        "id": incident_id,
        "incidentWebUrl": f"https://security.microsoft.com/incidents/{incident_id}?tid={tenant_id}",
        "redirectIncidentId": target["id"],
        "status": "redirected",
        "displayName": target["displayName"] + " (merged)",
        "lastModifiedBy": "Microsoft 365 Defender-AlertCorrelation",
        "comments": [],
    }


_INCIDENT_NEXT = {"active": "inProgress", "inProgress": "resolved", "resolved": "resolved"}


def update_incident(rng: random.Random, incident: dict, last_update: float) -> dict:
    new = dict(incident)
    status = _INCIDENT_NEXT.get(incident.get("status") or "active", "inProgress")
    stamp = _ts(last_update)
    new["status"] = status
    new["lastUpdateDateTime"] = stamp
    analyst = _ANALYSTS[rng.randrange(len(_ANALYSTS))]
    new["assignedTo"] = analyst
    new["lastModifiedBy"] = analyst
    new["comments"] = list(incident.get("comments") or []) + [
        {"comment": f"Status set to {status}.", "createdBy": analyst, "createdTime": stamp}
    ]
    if status == "resolved":
        new["classification"] = "truePositive"
        new["determination"] = ("malware", "phishing", "compromisedAccount", "other")[rng.randrange(4)]
        new["resolvingComment"] = "Contained and remediated by the SOC."
    return new


# --------------------------------------------------------------------------- secure score

# (id, title, controlCategory, service, maxScore, rank, tier, userImpact, cost, actionType, threats)
CONTROL_PROFILES = (
    ("AdminMFAV2", "Ensure multifactor authentication is enabled for all users in administrative roles", "Identity", "AzureAD", 10.0, 1, "Core", "Low", "Low", "Config", ["AccountBreach", "ElevationOfPrivilege"]),
    ("MFARegistrationV2", "Ensure all users can complete multifactor authentication", "Identity", "AzureAD", 9.0, 2, "Core", "Moderate", "Moderate", "Config", ["AccountBreach"]),
    ("BlockLegacyAuthentication", "Enable Conditional Access policies to block legacy authentication", "Identity", "AzureAD", 8.0, 3, "Core", "Moderate", "Moderate", "Config", ["AccountBreach", "PasswordCracking"]),
    ("SigninRiskPolicy", "Turn on sign-in risk policy", "Identity", "AzureAD", 7.0, 4, "Defense in depth", "Moderate", "Moderate", "Config", ["AccountBreach"]),
    ("UserRiskPolicy", "Turn on user risk policy", "Identity", "AzureAD", 7.0, 5, "Defense in depth", "Moderate", "Moderate", "Config", ["AccountBreach"]),
    ("SelfServicePasswordReset", "Enable self-service password reset", "Identity", "AzureAD", 1.0, 20, "Core", "Low", "Low", "Config", []),
    ("PWAgePolicyNew", "Do not expire passwords", "Identity", "AzureAD", 8.0, 12, "Core", "Low", "Low", "Config", ["PasswordCracking"]),
    ("IntegratedApps", "Do not allow users to grant consent to unreliable applications", "Identity", "AzureAD", 4.0, 15, "Core", "Moderate", "Low", "Config", ["DataExfiltration"]),
    ("OneAdmin", "Designate more than one global admin", "Identity", "AzureAD", 1.0, 30, "Core", "Low", "Low", "Config", []),
    ("RoleOverlap", "Use least privileged administrative roles", "Identity", "AzureAD", 1.0, 31, "Core", "Low", "Low", "Review", ["ElevationOfPrivilege"]),
    ("aad_admin_accounts_separate_unassigned_cloud_only", "Ensure administrative accounts are separate, unassigned and cloud-only", "Identity", "AzureAD", 3.0, 18, "Core", "Low", "Moderate", "Review", ["AccountBreach"]),
    ("DLPEnabled", "Create a DLP policy", "Data", "MIP", 8.0, 25, "Defense in depth", "Moderate", "Moderate", "Config", ["DataExfiltration"]),
    ("mdo_safeattachments", "Turn on Safe Attachments in block mode", "Apps", "MDO", 8.0, 10, "Core", "Low", "Low", "Config", ["Malware"]),
    ("mdo_safelinksforemail", "Create Safe Links policies for email messages", "Apps", "MDO", 9.0, 9, "Core", "Low", "Low", "Config", ["Phishing"]),
    ("mdo_atpprotection", "Turn on Microsoft Defender for Office 365 in SharePoint, OneDrive, and Microsoft Teams", "Apps", "MDO", 8.0, 11, "Core", "Low", "Low", "Config", ["Malware"]),
    ("meeting_restrictanonymousjoin_v1", "Only people in my org can bypass the lobby", "Apps", "MicrosoftTeams", 1.0, 60, "Defense in depth", "Moderate", "Low", "Config", []),
    ("scid_2000", "Turn on real-time protection", "Device", "MDATP", 6.0, 7, "Core", "Low", "Low", "Config", ["Malware"]),
    ("scid_2001", "Turn on Microsoft Defender Antivirus PUA protection in block mode", "Device", "MDATP", 3.0, 40, "Core", "Low", "Low", "Config", ["Malware"]),
    ("scid_91", "Block execution of potentially obfuscated scripts", "Device", "MDATP", 9.0, 8, "Core", "Moderate", "Low", "Config", ["Malware", "ElevationOfPrivilege"]),
    ("AATP_LateralMovementPaths", "Reduce lateral movement path risk to sensitive entities", "Identity", "AATP", 5.0, 22, "Defense in depth", "Low", "Moderate", "Review", ["ElevationOfPrivilege"]),
)
_VENDOR = {"provider": "SecureScore", "providerVersion": None, "subProvider": None, "vendor": "Microsoft"}


def make_control_profile(rng: random.Random, row: tuple, tenant_id: str, modified: float) -> dict:
    cid, title, category, service, max_score, rank, tier, impact, cost, action, threats = row
    return {
        "id": cid,
        "azureTenantId": tenant_id,
        "actionType": action,
        "actionUrl": f"https://security.microsoft.com/securescore?viewid=actions&actionId={cid}",
        "controlCategory": category,
        "title": title,
        "deprecated": False,
        "implementationCost": cost,
        "lastModifiedDateTime": _ts(modified),
        "maxScore": max_score,
        "rank": rank,
        "remediation": f"<p>To improve this score: {title.lower()}.</p>",
        "remediationImpact": f"<p>Users impacted: {impact.lower()}.</p>",
        "service": service,
        "threats": list(threats),
        "tier": tier,
        "userImpact": impact,
        "complianceInformation": [
            {"certificationName": "NIST 800-53", "certificationControls": [{"name": "AC-2", "url": None}]},
        ],
        "controlStateUpdates": [],
        "vendorInformation": dict(_VENDOR),
        "visible_at": 0.0,
    }


_CONTROL_STATES = ("Ignored", "ThirdParty", "Reviewed", "Default")


def change_control_profile(rng: random.Random, profile: dict, when: float, by: str) -> dict:
    new = dict(profile)
    stamp = _ts(when)
    state = _CONTROL_STATES[rng.randrange(len(_CONTROL_STATES))]
    new["controlStateUpdates"] = list(profile.get("controlStateUpdates") or []) + [
        {"assignedTo": None, "comment": f"Marked {state} during the quarterly review.", "state": state,
         "updatedBy": by, "updatedDateTime": stamp}
    ]
    new["lastModifiedDateTime"] = stamp
    return new


def make_secure_score(rng: random.Random, tenant_id: str, day_epoch: float, current: float, users: int) -> dict:
    date = time.strftime("%Y-%m-%d", time.gmtime(day_epoch))
    controls = []
    for row in CONTROL_PROFILES:
        score = round(row[4] * rng.choice((0.0, 0.5, 1.0, 1.0)), 2)
        controls.append({
            "controlCategory": row[2], "controlName": row[0], "description": row[1], "score": score,
            "scoreInPercentage": round(100.0 * score / row[4], 2), "implementationStatus": "",
            "lastSynced": format_ts(day_epoch),
        })
    return {
        "id": f"{tenant_id}_{date}",
        "azureTenantId": tenant_id,
        "activeUserCount": users,
        "createdDateTime": format_ts(day_epoch),
        "currentScore": round(current, 2),
        "enabledServices": ["HasExchange", "HasSharePoint", "HasOD4B", "HasMDEP", "HasMCAS", "HasAATP"],
        "licensedUserCount": max(users, 1) + 25,
        "maxScore": round(sum(r[4] for r in CONTROL_PROFILES), 2),
        "averageComparativeScores": [
            {"basis": "AllTenants", "averageScore": 41.27},
            {"basis": "TotalSeats", "averageScore": 38.85, "seatSizeRangeLowerValue": "100",
             "seatSizeRangeUpperValue": "500"},
        ],
        "controlScores": controls,
        "vendorInformation": dict(_VENDOR),
        "visible_at": 0.0,
    }


# --------------------------------------------------------------------------- identity protection

_RISK_LEVELS = ("low", "medium", "medium", "high")
_RISKY_USER_STATES = (("atRisk", "none"), ("atRisk", "none"), ("remediated", "userPerformedSecuredPasswordReset"),
                      ("dismissed", "adminDismissedAllRiskForUser"), ("confirmedCompromised", "adminConfirmedUserCompromised"))


def make_risky_user(rng: random.Random, user: tuple, when: float) -> dict:
    state, detail = _RISKY_USER_STATES[rng.randrange(len(_RISKY_USER_STATES))]
    level = "none" if state in ("remediated", "dismissed") else _RISK_LEVELS[rng.randrange(len(_RISK_LEVELS))]
    return {
        "id": user[0],
        "isDeleted": False,
        "isProcessing": False,
        "riskLastUpdatedDateTime": _ts(when),
        "riskLevel": level,
        "riskState": state,
        "riskDetail": detail,
        "userDisplayName": user[1],
        "userPrincipalName": user[2],
        "visible_at": 0.0,
    }


def change_risky_user(rng: random.Random, risky: dict, when: float) -> dict:
    new = dict(risky)
    if risky.get("riskState") == "atRisk":
        new["riskState"], new["riskDetail"], new["riskLevel"] = (
            ("remediated", "userPerformedSecuredPasswordReset", "none") if rng.random() < 0.5
            else ("confirmedCompromised", "adminConfirmedUserCompromised", "high"))
    else:
        new["riskState"], new["riskDetail"] = "atRisk", "none"
        new["riskLevel"] = _RISK_LEVELS[rng.randrange(len(_RISK_LEVELS))]
    new["riskLastUpdatedDateTime"] = _ts(when)
    return new


# (riskEventType, detectionTimingType, activity, source)
_DETECTIONS = (
    ("unfamiliarFeatures", "realtime", "signin", "IdentityProtection"),
    ("anonymizedIPAddress", "realtime", "signin", "IdentityProtection"),
    ("maliciousIPAddress", "offline", "signin", "IdentityProtection"),
    ("unlikelyTravel", "offline", "signin", "IdentityProtection"),
    ("leakedCredentials", "offline", "user", "IdentityProtection"),
    ("passwordSpray", "offline", "signin", "IdentityProtection"),
    ("investigationsThreatIntelligence", "offline", "user", "IdentityProtection"),
    ("anomalousToken", "offline", "signin", "IdentityProtection"),
    ("mcasImpossibleTravel", "offline", "signin", "MicrosoftCloudAppSecurity"),
    ("suspiciousInboxForwarding", "offline", "user", "MicrosoftCloudAppSecurity"),
)
_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "python-requests/2.32.3",
)


def make_risk_detection(rng: random.Random, user: tuple, updated: float, timing: str | None = None) -> dict:
    """One riskDetection whose lastUpdatedDateTime is ``updated``.

    Offline detections happened (activityDateTime) hours before they were detected; realtime
    ones within seconds.  ``additionalInfo`` is a JSON-encoded *string*, as Graph sends it.
    """
    pool = [d for d in _DETECTIONS if timing is None or d[1] == timing] or list(_DETECTIONS)
    kind, timing_type, activity, source = pool[rng.randrange(len(pool))]
    if timing_type == "realtime":
        activity_at = updated - rng.uniform(1, 90)
    else:
        activity_at = updated - rng.uniform(3600, 20 * 3600)
    li = rng.randrange(len(_LOCATIONS))
    ua = _USER_AGENTS[rng.randrange(len(_USER_AGENTS))]
    info = [{"Key": "userAgent", "Value": ua}]
    if kind in ("unlikelyTravel", "mcasImpossibleTravel"):
        other = _LOCATIONS[(li + 3) % len(_LOCATIONS)]
        info.append({"Key": "relatedLocation", "Value": {"clientIP": f"{other[5]}.{rng.randrange(256)}",
                                                       "latitude": other[3], "longitude": other[4],
                                                       "countryCode": other[2]}})
    if kind == "leakedCredentials":
        info = [{"Key": "LeakSource", "Value": "Dark web"}]
    level = _RISK_LEVELS[rng.randrange(len(_RISK_LEVELS))]
    return {
        "id": "%064x" % rng.getrandbits(256),
        "requestId": guid(rng) if activity == "signin" else None,
        "correlationId": guid(rng) if activity == "signin" else None,
        "riskType": kind,
        "riskEventType": kind,
        "riskState": "atRisk",
        "riskLevel": level,
        "riskDetail": "none",
        "source": source,
        "detectionTimingType": timing_type,
        "activity": activity,
        "tokenIssuerType": "AzureAD",
        "ipAddress": f"{_LOCATIONS[li][5]}.{rng.randrange(256)}" if activity == "signin" else None,
        "location": _LOCATION_DICTS[li] if activity == "signin" else None,
        "activityDateTime": _ts(activity_at),
        "detectedDateTime": _ts(updated),
        "lastUpdatedDateTime": _ts(updated),
        "userId": user[0],
        "userDisplayName": user[1],
        "userPrincipalName": user[2],
        "additionalInfo": json.dumps(info, separators=(",", ":")),
        "visible_at": 0.0,
    }


def make_risky_service_principal(rng: random.Random, sp: dict, when: float) -> dict:
    level = _RISK_LEVELS[rng.randrange(len(_RISK_LEVELS))]
    return {
        "id": sp["id"],
        "appId": sp["appId"],
        "displayName": sp["displayName"],
        "servicePrincipalType": sp.get("servicePrincipalType", "Application"),
        "isEnabled": True,
        "isProcessing": False,
        "riskLastUpdatedDateTime": _ts(when),
        "riskLevel": level,
        "riskState": "atRisk",
        "riskDetail": "none",
        "visible_at": 0.0,
    }


_SP_DETECTIONS = ("investigationsThreatIntelligence", "suspiciousSignins", "leakedCredentials",
                  "anomalousServicePrincipalActivity", "suspiciousAPITraffic")


def make_sp_risk_detection(rng: random.Random, sp: dict, updated: float) -> dict:
    kind = _SP_DETECTIONS[rng.randrange(len(_SP_DETECTIONS))]
    li = rng.randrange(len(_LOCATIONS))
    activity_at = updated - rng.uniform(3600, 24 * 3600)
    key_ids = [guid(rng)] if kind == "leakedCredentials" else []
    return {
        "id": "%064x" % rng.getrandbits(256),
        "requestId": guid(rng),
        "correlationId": guid(rng),
        "riskEventType": kind,
        "riskState": "atRisk",
        "riskLevel": _RISK_LEVELS[rng.randrange(len(_RISK_LEVELS))],
        "riskDetail": "none",
        "source": "IdentityProtection",
        "detectionTimingType": "offline",
        "activity": "servicePrincipal",
        "tokenIssuerType": "AzureAD",
        "ipAddress": f"{_LOCATIONS[li][5]}.{rng.randrange(256)}",
        "location": _LOCATION_DICTS[li],
        "activityDateTime": _ts(activity_at),
        "detectedDateTime": _ts(updated),
        "lastUpdatedDateTime": _ts(updated),
        "servicePrincipalId": sp["id"],
        "servicePrincipalDisplayName": sp["displayName"],
        "appId": sp["appId"],
        "keyIds": key_ids,
        "additionalInfo": json.dumps([{"Key": "alertUrl", "Value": None}, {"Key": "requestCount", "Value": str(rng.randrange(1, 900))}],
                                     separators=(",", ":")),
        "visible_at": 0.0,
    }


# --------------------------------------------------------------------------- provisioning

_PROV_ACTIONS = ("create", "update", "delete", "disable", "other")


def make_provisioning(rng: random.Random, when: float, user: tuple, tenant_id: str, sp: dict) -> dict:
    action = _PROV_ACTIONS[rng.randrange(len(_PROV_ACTIONS))]
    ok = rng.random() > 0.12
    err = None if ok else {
        "errorCode": "SalesforceDuplicateUsername", "reason": "The user name already exists in the target system.",
        "additionalDetails": None, "errorCategory": "NonServiceFailure",
        "recommendedAction": "Update the user's username in the source system.",
    }
    steps = [
        {"name": "EntryImport", "provisioningStepType": "import", "status": "success",
         "description": f"Retrieved {user[2]} from Microsoft Entra ID", "details": {}},
        {"name": "EntrySynchronizationScoping", "provisioningStepType": "scoping", "status": "success",
         "description": "Determine if User in scope by evaluating against each scoping filter", "details": {}},
        {"name": "EntryExportUpdate" if action == "update" else "EntryExportAdd", "provisioningStepType": "export",
         "status": "success" if ok else "failure", "description": "Exported to the target application", "details": {}},
    ]
    return {
        "id": f"{guid(rng)}",
        "activityDateTime": _ts(when),
        "tenantId": tenant_id,
        "jobId": f"SaaSApp.{sp['appId'][:8]}.{tenant_id[:8]}",
        "cycleId": guid(rng),
        "changeId": guid(rng),
        "provisioningAction": action,
        "durationInMilliseconds": rng.randrange(80, 4000),
        "provisioningStatusInfo": {"status": "success" if ok else "failure", "errorInformation": err},
        "provisioningSteps": steps,
        "modifiedProperties": [{"displayName": "accountEnabled", "oldValue": None, "newValue": "True"},
                               {"displayName": "userName", "oldValue": None, "newValue": user[2]}],
        "servicePrincipal": {"id": sp["id"], "displayName": sp["displayName"]},
        "sourceSystem": {"id": guid(rng), "displayName": "Azure Active Directory", "details": {}},
        "targetSystem": {"id": guid(rng), "displayName": sp["displayName"], "details": {"ApplicationId": sp["appId"]}},
        "initiatedBy": {"id": "", "displayName": "Azure AD Provisioning Service", "initiatorType": "system"},
        "sourceIdentity": {"id": user[0], "displayName": user[1], "identityType": "User", "details": {}},
        "targetIdentity": {"id": str(rng.randrange(10**17, 10**18)), "displayName": user[1], "identityType": "User",
                           "details": {}},
        "visible_at": 0.0,
    }


# --------------------------------------------------------------------------- directory objects

_GROUP_NAMES = ("Finance", "Marketing", "Engineering", "Sales EMEA", "Sales Americas", "IT Admins", "Helpdesk",
                "Legal", "HR", "Security Operations", "All Company", "Project Falcon", "Contractors", "VPN Users",
                "Executives", "Design", "Research", "Retail Stores", "Data Science", "Break-glass Exclusions")


def make_group(rng: random.Random, index: int, domain: str, now: float) -> dict:
    base = _GROUP_NAMES[index % len(_GROUP_NAMES)] + (f" {index // len(_GROUP_NAMES) + 1}" if index >= len(_GROUP_NAMES) else "")
    unified = rng.random() < 0.5
    nick = base.lower().replace(" ", "-")
    created = now - rng.uniform(30 * 86400, 3 * 365 * 86400)
    return {
        "id": guid(rng),
        "deletedDateTime": None,
        "classification": None,
        "createdDateTime": format_ts(created),
        "creationOptions": [],
        "description": f"{base} team",
        "displayName": base,
        "expirationDateTime": None,
        "groupTypes": ["Unified"] if unified else [],
        "isAssignableToRole": base in ("IT Admins", "Break-glass Exclusions"),
        "mail": f"{nick}@{domain}" if unified else None,
        "mailEnabled": unified,
        "mailNickname": nick,
        "membershipRule": None,
        "membershipRuleProcessingState": None,
        "onPremisesSyncEnabled": None,
        "proxyAddresses": [f"SMTP:{nick}@{domain}"] if unified else [],
        "renewedDateTime": format_ts(created),
        "securityEnabled": not unified or rng.random() < 0.3,
        "securityIdentifier": f"S-1-12-1-{rng.randrange(10**9)}-{rng.randrange(10**9)}-{rng.randrange(10**9)}-{rng.randrange(10**9)}",
        "visibility": "Private" if unified else None,
        "visible_at": 0.0,
    }


_DEVICE_MODELS = (("Windows", "10.0.22631.4460", "Microsoft Corporation", "Surface Laptop 5"),
                  ("Windows", "10.0.26100.2314", "Dell Inc.", "Latitude 7440"),
                  ("MacMDM", "14.6.1", "Apple", "MacBookPro18,3"),
                  ("iOS", "18.1.1", "Apple", "iPhone 15"),
                  ("Android", "15.0", "samsung", "SM-S921B"),
                  ("Windows", "10.0.20348.2849", "VMware, Inc.", "VMware7,1"))


def make_device(rng: random.Random, index: int, now: float) -> dict:
    os_, ver, maker, model = _DEVICE_MODELS[rng.randrange(len(_DEVICE_MODELS))]
    prefix = {"Windows": "DESKTOP", "MacMDM": "MAC", "iOS": "iPhone", "Android": "Galaxy"}[os_]
    trust = "AzureAd" if os_ == "Windows" and rng.random() < 0.6 else ("ServerAd" if os_ == "Windows" else "Workplace")
    registered = now - rng.uniform(7 * 86400, 900 * 86400)
    return {
        "id": guid(rng),
        "deletedDateTime": None,
        "accountEnabled": rng.random() > 0.05,
        "approximateLastSignInDateTime": format_ts(now - rng.uniform(600, 20 * 86400)),
        "complianceExpirationDateTime": None,
        "createdDateTime": format_ts(registered),
        "deviceId": guid(rng),
        "deviceOwnership": "Company" if trust != "Workplace" else "Personal",
        "displayName": f"{prefix}-{rng.randrange(16**7):07X}" if prefix in ("DESKTOP", "MAC") else f"{prefix} {index}",
        "enrollmentType": "AzureDomainJoined" if trust == "AzureAd" else None,
        "isCompliant": rng.random() > 0.15,
        "isManaged": trust != "Workplace" or rng.random() < 0.5,
        "manufacturer": maker,
        "model": model,
        "operatingSystem": os_,
        "operatingSystemVersion": ver,
        "profileType": "RegisteredDevice",
        "registrationDateTime": format_ts(registered),
        "trustType": trust,
        "visible_at": 0.0,
    }


_APP_NAMES = ("Contoso Expenses", "HR Portal", "Salesforce", "ServiceNow", "GitHub Enterprise", "Jira Cloud",
              "Zoom", "Slack", "Power BI Connector", "Backup Automation", "CI Deploy Bot", "Payroll Sync",
              "Legacy Intranet", "Partner API", "Monitoring Agent")


def make_application(rng: random.Random, index: int, domain: str, now: float, *, app_id: str | None = None,
                     display_name: str | None = None) -> dict:
    name = display_name or _APP_NAMES[index % len(_APP_NAMES)] + (f" {index // len(_APP_NAMES) + 1}" if index >= len(_APP_NAMES) else "")
    created = now - rng.uniform(30 * 86400, 4 * 365 * 86400)
    creds = []
    for _ in range(rng.randrange(0, 3)):
        start = created + rng.uniform(0, 300 * 86400)
        creds.append({"customKeyIdentifier": None, "displayName": "ci secret", "endDateTime": format_ts(start + 365 * 86400),
                      "hint": "".join(rng.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(3)),
                      "keyId": guid(rng), "secretText": None, "startDateTime": format_ts(start)})
    return {
        "id": guid(rng),
        "deletedDateTime": None,
        "appId": app_id or guid(rng),
        "createdDateTime": format_ts(created),
        "displayName": name,
        "identifierUris": [],
        "publisherDomain": domain,
        "signInAudience": "AzureADMyOrg",
        "tags": [],
        "keyCredentials": [],
        "passwordCredentials": creds,
        "requiredResourceAccess": [
            {"resourceAppId": GRAPH_APP_ID,
             "resourceAccess": [{"id": "df021288-bdef-4463-88db-98f22de89214", "type": "Role"}]},
        ],
        "web": {"homePageUrl": None, "logoutUrl": None, "redirectUris": []},
        "visible_at": 0.0,
    }


def make_service_principal(rng: random.Random, app_id: str, name: str, owner_tenant: str, *, sp_id: str | None = None,
                           app_roles: list[dict] | None = None, first_party: bool = False) -> dict:
    return {
        "id": sp_id or guid(rng),
        "deletedDateTime": None,
        "accountEnabled": True,
        "appDisplayName": name,
        "appId": app_id,
        "appOwnerOrganizationId": owner_tenant,
        "appRoleAssignmentRequired": False,
        "appRoles": app_roles or [],
        "displayName": name,
        "servicePrincipalNames": [app_id] + ([f"https://{name.lower().replace(' ', '')}.microsoft.com"] if first_party else []),
        "servicePrincipalType": "Application",
        "signInAudience": "AzureADMultipleOrgs" if first_party else "AzureADMyOrg",
        "tags": [] if first_party else ["WindowsAzureActiveDirectoryIntegratedApp"],
        "visible_at": 0.0,
    }


def first_party_service_principals() -> tuple[tuple[str, str], ...]:
    """(appId, displayName) of Microsoft apps present in every tenant (Graph is added separately)."""
    return (
        ("00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online"),
        ("00000003-0000-0ff1-ce00-000000000000", "Office 365 SharePoint Online"),
        ("cc15fd57-2c6c-4117-a88c-83b1d56b4bbe", "Microsoft Teams Services"),
        ("0000000a-0000-0000-c000-000000000000", "Microsoft Intune"),
        ("fc780465-2017-40d4-a0c5-307022471b92", "WindowsDefenderATP"),
    )


# --------------------------------------------------------------------------- governance

_CONSENT_SCOPES = ("User.Read.All", "Mail.Read", "Files.ReadWrite.All", "Sites.Read.All", "Calendars.Read",
                   "Group.Read.All", "Directory.Read.All", "offline_access")
_CONSENT_APPS = (("Grammarly", "f6b2ae61-3b8a-4e8a-8f42-0f1c5c2a1f10"), ("Calendly", "4d0ff1b6-3a2a-48d8-a0a9-59f0f8f5a1a2"),
                 ("Miro", "a9d9f7d4-1b3c-4bd0-9e0f-1d2c3b4a5e61"), ("Notion", "6e1c2f90-5a4b-4d5c-8e7f-9a0b1c2d3e72"),
                 ("Trello", "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d83"), ("Lucidchart", "c2d3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e94"),
                 ("DocuSign", "d3e4f5a6-b7c8-4d9e-8f1a-2b3c4d5e6fa5"), ("Dropbox", "e4f5a6b7-c8d9-4e0f-9a2b-3c4d5e6f7ab6"))


def _user_consent_request(rng: random.Random, user: tuple, when: float, status: str = "InProgress") -> dict:
    return {
        "id": guid(rng),
        "approvalId": guid(rng),
        "completedDateTime": _ts(when + 3600) if status == "Completed" else None,
        "createdDateTime": _ts(when),
        "createdBy": {"user": {"id": user[0], "displayName": user[1], "userPrincipalName": user[2]}},
        "customData": None,
        "reason": "I need this app to do my job.",
        "status": status,
    }


def make_consent_request(rng: random.Random, index: int, users: Sequence[tuple], now: float) -> dict:
    app = _CONSENT_APPS[index % len(_CONSENT_APPS)]
    scopes = rng.sample(_CONSENT_SCOPES, rng.randrange(1, 4))
    requests = [_user_consent_request(rng, users[rng.randrange(len(users))], now - rng.uniform(3600, 20 * 86400))
                for _ in range(rng.randrange(1, 4))]
    return {
        "id": guid(rng),
        "appId": app[1] if index < len(_CONSENT_APPS) else guid(rng),
        "appDisplayName": app[0] + (f" {index // len(_CONSENT_APPS) + 1}" if index >= len(_CONSENT_APPS) else ""),
        "consentType": "Dynamic",
        "pendingScopes": [{"displayName": s} for s in scopes],
        "userConsentRequests": requests,
        "visible_at": 0.0,
    }


def change_consent_request(rng: random.Random, req: dict, users: Sequence[tuple], now: float) -> dict:
    """Another user asks for the app, or a scope is added, or a pending request completes."""
    new = dict(req)
    pick = rng.random()
    if pick < 0.5:
        new["userConsentRequests"] = list(req.get("userConsentRequests") or []) + [
            _user_consent_request(rng, users[rng.randrange(len(users))], now)]
    elif pick < 0.8:
        have = {s["displayName"] for s in req.get("pendingScopes") or []}
        extra = [s for s in _CONSENT_SCOPES if s not in have]
        new["pendingScopes"] = list(req.get("pendingScopes") or []) + ([{"displayName": extra[0]}] if extra else [])
        if not extra:
            new["userConsentRequests"] = list(req.get("userConsentRequests") or []) + [
                _user_consent_request(rng, users[rng.randrange(len(users))], now)]
    else:
        ucr = [dict(u) for u in req.get("userConsentRequests") or []]
        for u in ucr:
            if u["status"] == "InProgress":
                u["status"], u["completedDateTime"] = "Completed", _ts(now)
                break
        else:
            ucr.append(_user_consent_request(rng, users[rng.randrange(len(users))], now))
        new["userConsentRequests"] = ucr
    return new


# --------------------------------------------------------------------------- Intune

_MD_MODELS = (("Windows", "10.0.22631.4460", "Microsoft Corporation", "Surface Laptop 5", "windows"),
              ("Windows", "10.0.26100.2314", "Dell Inc.", "Latitude 7440", "windows"),
              ("iOS", "18.1.1", "Apple", "iPhone 15", "ios"),
              ("Android", "15", "samsung", "SM-S921B", "android"),
              ("macOS", "14.6.1", "Apple", "MacBook Pro", "macos"))
_COMPLIANCE = ("compliant", "compliant", "compliant", "noncompliant", "inGracePeriod", "unknown")


def make_managed_device(rng: random.Random, user: tuple, now: float) -> dict:
    os_, ver, maker, model, kind = _MD_MODELS[rng.randrange(len(_MD_MODELS))]
    enrolled = now - rng.uniform(5 * 86400, 700 * 86400)
    total = rng.choice((128, 256, 512)) * 1024 ** 3
    mac = ":".join("%02X" % rng.randrange(256) for _ in range(6)).replace(":", "")
    return {
        "id": guid(rng),
        "userId": user[0],
        "deviceName": f"{user[2].split('@')[0].split('.')[0].upper()}-{kind.upper()}-{rng.randrange(1000):03d}",
        "managedDeviceOwnerType": "company" if kind in ("windows", "macos") else rng.choice(("company", "personal")),
        "enrolledDateTime": format_ts(enrolled),
        "lastSyncDateTime": format_ts(now - rng.uniform(300, 5 * 86400)),
        "operatingSystem": os_,
        "complianceState": _COMPLIANCE[rng.randrange(len(_COMPLIANCE))],
        "jailBroken": "False" if kind in ("ios", "android") else "Unknown",
        "managementAgent": "mdm",
        "osVersion": ver,
        "easActivated": kind in ("ios", "android"),
        "easDeviceId": "%032X" % rng.getrandbits(128) if kind in ("ios", "android") else "",
        "easActivationDateTime": "0001-01-01T00:00:00Z",
        "azureADRegistered": True,
        "deviceEnrollmentType": "windowsAzureADJoin" if kind == "windows" else "userEnrollment",
        "activationLockBypassCode": None,
        "emailAddress": user[2],
        "azureADDeviceId": guid(rng),
        "deviceRegistrationState": "registered",
        "deviceCategoryDisplayName": "Unknown",
        "isSupervised": kind == "ios" and rng.random() < 0.5,
        "exchangeLastSuccessfulSyncDateTime": "0001-01-01T00:00:00Z",
        "exchangeAccessState": "none",
        "exchangeAccessStateReason": "none",
        "remoteAssistanceSessionUrl": None,
        "remoteAssistanceSessionErrorDetails": None,
        "isEncrypted": rng.random() > 0.1,
        "userPrincipalName": user[2],
        "model": model,
        "manufacturer": maker,
        "imei": "".join(str(rng.randrange(10)) for _ in range(15)) if kind in ("ios", "android") else "",
        "complianceGracePeriodExpirationDateTime": "9999-12-31T23:59:59Z",
        "serialNumber": "%010X" % rng.getrandbits(40),
        "phoneNumber": "",
        "androidSecurityPatchLevel": "2024-11-01" if kind == "android" else "",
        "userDisplayName": user[1],
        "configurationManagerClientEnabledFeatures": None,
        "wiFiMacAddress": mac,
        "deviceHealthAttestationState": None,
        "subscriberCarrier": "",
        "meid": "",
        "totalStorageSpaceInBytes": total,
        "freeStorageSpaceInBytes": int(total * rng.uniform(0.05, 0.7)),
        "managedDeviceName": f"{user[2].split('@')[0]}_{os_}_{time.strftime('%m/%d/%Y', time.gmtime(enrolled))}",
        "partnerReportedThreatState": "unknown",
        "deviceActionResults": [],
        "ethernetMacAddress": None,
        "visible_at": 0.0,
    }


def make_compliance_policies(rng: random.Random, now: float) -> list[dict]:
    specs = (
        ("#microsoft.graph.windows10CompliancePolicy", "Windows 10/11 baseline compliance",
         {"passwordRequired": True, "passwordMinimumLength": 8, "osMinimumVersion": "10.0.19045", "bitLockerEnabled": True,
          "secureBootEnabled": True, "codeIntegrityEnabled": True, "storageRequireEncryption": True,
          "defenderEnabled": True, "rtpEnabled": True, "antivirusRequired": True, "deviceThreatProtectionEnabled": True,
          "deviceThreatProtectionRequiredSecurityLevel": "medium"}),
        ("#microsoft.graph.iosCompliancePolicy", "iOS compliance",
         {"passcodeRequired": True, "passcodeMinimumLength": 6, "osMinimumVersion": "17.0", "securityBlockJailbrokenDevices": True,
          "deviceThreatProtectionEnabled": False, "managedEmailProfileRequired": False}),
        ("#microsoft.graph.androidWorkProfileCompliancePolicy", "Android Enterprise work profile",
         {"passwordRequired": True, "passwordMinimumLength": 6, "osMinimumVersion": "13.0", "securityBlockJailbrokenDevices": True,
          "securityRequireVerifyApps": True, "storageRequireEncryption": True}),
        ("#microsoft.graph.macOSCompliancePolicy", "macOS compliance",
         {"passwordRequired": True, "osMinimumVersion": "13.0", "systemIntegrityProtectionEnabled": True,
          "storageRequireEncryption": True, "firewallEnabled": True}),
        ("#microsoft.graph.androidCompliancePolicy", "Android device administrator (legacy)",
         {"passwordRequired": True, "passwordMinimumLength": 4, "securityBlockJailbrokenDevices": True}),
        ("#microsoft.graph.windows10CompliancePolicy", "Windows servers (kiosk)",
         {"passwordRequired": False, "osMinimumVersion": "10.0.17763", "bitLockerEnabled": False,
          "secureBootEnabled": True, "defenderEnabled": True}),
    )
    out = []
    for odata_type, name, settings in specs:
        created = now - rng.uniform(60 * 86400, 800 * 86400)
        out.append({
            "@odata.type": odata_type,
            "id": guid(rng),
            "createdDateTime": format_ts(created, frac=True),
            "description": f"{name} (managed by the endpoint team)",
            "lastModifiedDateTime": format_ts(created + rng.uniform(0, 50 * 86400), frac=True),
            "displayName": name,
            "version": rng.randrange(1, 9),
            **settings,
            "visible_at": 0.0,
        })
    return out


def make_device_configurations(rng: random.Random, now: float) -> list[dict]:
    specs = (
        ("#microsoft.graph.windows10GeneralConfiguration", "Windows - Device restrictions",
         {"passwordRequired": True, "passwordMinimumLength": 12, "screenCaptureBlocked": False, "bluetoothBlocked": False,
          "cameraBlocked": False, "defenderRequireRealTimeMonitoring": True, "smartScreenEnableAppInstallControl": True}),
        ("#microsoft.graph.windows10EndpointProtectionConfiguration", "Windows - Endpoint protection",
         {"firewallBlockStatefulFTP": True, "bitLockerEncryptDevice": True, "defenderAttackSurfaceReductionExcludedPaths": [],
          "applicationGuardEnabled": False, "smartScreenBlockOverrideForFiles": True}),
        ("#microsoft.graph.windowsUpdateForBusinessConfiguration", "Windows Update ring - Broad",
         {"deliveryOptimizationMode": "httpWithPeeringNat", "qualityUpdatesDeferralPeriodInDays": 7,
          "featureUpdatesDeferralPeriodInDays": 30, "automaticUpdateMode": "autoInstallAtMaintenanceTime"}),
        ("#microsoft.graph.iosGeneralDeviceConfiguration", "iOS - Device restrictions",
         {"passcodeRequired": True, "passcodeMinimumLength": 6, "cameraBlocked": False, "iCloudBlockBackup": True}),
        ("#microsoft.graph.androidGeneralDeviceConfiguration", "Android - Device restrictions",
         {"passwordRequired": True, "passwordMinimumLength": 6, "cameraBlocked": False, "storageRequireDeviceEncryption": True}),
        ("#microsoft.graph.macOSGeneralDeviceConfiguration", "macOS - Device restrictions",
         {"passwordRequired": True, "passwordMinimumLength": 10, "passwordBlockSimple": True}),
        ("#microsoft.graph.windows10CustomConfiguration", "Windows - Custom OMA-URI (LSA protection)",
         {"omaSettings": [{"@odata.type": "#microsoft.graph.omaSettingInteger", "displayName": "RunAsPPL",
                           "omaUri": "./Device/Vendor/MSFT/Policy/Config/LocalSecurityAuthority/ConfigureLsaProtectedProcess",
                           "value": 1}]}),
        ("#microsoft.graph.iosUpdateConfiguration", "iOS - Update policy",
         {"activeHoursStart": "08:00:00.0000000", "activeHoursEnd": "17:00:00.0000000", "scheduledInstallDays": ["saturday"]}),
    )
    out = []
    for odata_type, name, settings in specs:
        created = now - rng.uniform(60 * 86400, 800 * 86400)
        out.append({
            "@odata.type": odata_type,
            "id": guid(rng),
            "lastModifiedDateTime": format_ts(created + rng.uniform(0, 50 * 86400), frac=True),
            "createdDateTime": format_ts(created, frac=True),
            "description": f"{name}",
            "displayName": name,
            "version": rng.randrange(1, 9),
            **settings,
            "visible_at": 0.0,
        })
    return out


# (activity, activityType, activityOperationType, componentName, category, resource type)
_INTUNE_ACTIVITIES = (
    ("Wipe ManagedDevice", "Wipe ManagedDevice", "Action", "DeviceManagement", "Device", "ManagedDevice"),
    ("Sync ManagedDevice", "Sync ManagedDevice", "Action", "DeviceManagement", "Device", "ManagedDevice"),
    ("Patch DeviceCompliancePolicy", "Patch DeviceCompliancePolicy", "Patch", "DeviceCompliance", "Compliance", "DeviceCompliancePolicy"),
    ("Create DeviceConfiguration", "Create DeviceConfiguration", "Create", "DeviceConfiguration", "DeviceConfiguration", "DeviceConfiguration"),
    ("Assign MobileApp", "Assign MobileApp", "Create", "MobileApps", "Application", "MobileApp"),
    ("Delete ManagedDevice", "Delete ManagedDevice", "Delete", "DeviceManagement", "Device", "ManagedDevice"),
    ("Retire ManagedDevice", "Retire ManagedDevice", "Action", "DeviceManagement", "Device", "ManagedDevice"),
)


def make_intune_audit_event(rng: random.Random, when: float, user: tuple) -> dict:
    act = _INTUNE_ACTIVITIES[rng.randrange(len(_INTUNE_ACTIVITIES))]
    ok = rng.random() > 0.05
    return {
        "id": guid(rng),
        "displayName": act[0],
        "componentName": act[3],
        "actor": {
            "type": "ItPro", "auditActorType": "ItPro", "userPermissions": ["*"], "applicationId": "0000000a-0000-0000-c000-000000000000",
            "applicationDisplayName": "Microsoft Intune portal extension", "userPrincipalName": user[2],
            "servicePrincipalName": None, "ipAddress": f"{_LOCATIONS[rng.randrange(len(_LOCATIONS))][5]}.{rng.randrange(256)}",
            "userId": user[0], "remoteTenantId": None, "remoteUserId": None,
        },
        "activity": act[0],
        "activityDateTime": _ts(when),
        "activityType": act[1],
        "activityOperationType": act[2],
        "activityResult": "Success" if ok else "Failure",
        "correlationId": guid(rng),
        "resources": [{"displayName": act[5], "modifiedProperties": [
            {"displayName": "Version", "oldValue": str(rng.randrange(1, 5)), "newValue": str(rng.randrange(5, 9))}],
            "type": act[5], "auditResourceType": act[5], "resourceId": guid(rng)}],
        "category": act[4],
        "visible_at": 0.0,
    }


# --------------------------------------------------------------------------- reports

_METHODS = ("microsoftAuthenticatorPush", "softwareOneTimePasscode", "mobilePhone", "email", "fido2",
            "windowsHelloForBusiness", "microsoftAuthenticatorPasswordless")


def make_registration_details(rng: random.Random, user: dict, now: float, admin: bool = False) -> dict:
    methods = sorted(set(rng.sample(_METHODS, rng.randrange(0, 4))))
    mfa = any(m not in ("email",) for m in methods)
    passwordless = any(m in ("fido2", "windowsHelloForBusiness", "microsoftAuthenticatorPasswordless") for m in methods)
    return {
        "id": user["id"],
        "userPrincipalName": user["userPrincipalName"],
        "userDisplayName": user["displayName"],
        "userType": "guest" if user.get("userType") == "Guest" else "member",
        "isAdmin": admin,
        "isSsprRegistered": bool(methods),
        "isSsprEnabled": True,
        "isSsprCapable": bool(methods),
        "isMfaRegistered": mfa,
        "isMfaCapable": mfa,
        "isPasswordlessCapable": passwordless,
        "isSystemPreferredAuthenticationMethodEnabled": True,
        "lastUpdatedDateTime": _ts(now - rng.uniform(3600, 30 * 86400)),
        "methodsRegistered": methods,
        "systemPreferredAuthenticationMethods": [methods[0]] if mfa else [],
        "userPreferredMethodForSecondaryAuthentication": ("push" if "microsoftAuthenticatorPush" in methods else
                                                          "oath" if "softwareOneTimePasscode" in methods else "none"),
        "visible_at": 0.0,
    }


OFFICE365_COLUMNS = (
    "Report Refresh Date", "User Principal Name", "Display Name", "Is Deleted", "Deleted Date",
    "Has Exchange License", "Has OneDrive License", "Has SharePoint License", "Has Skype For Business License",
    "Has Yammer License", "Has Teams License", "Exchange Last Activity Date", "OneDrive Last Activity Date",
    "SharePoint Last Activity Date", "Skype For Business Last Activity Date", "Yammer Last Activity Date",
    "Teams Last Activity Date", "Exchange License Assign Date", "OneDrive License Assign Date",
    "SharePoint License Assign Date", "Skype For Business License Assign Date", "Yammer License Assign Date",
    "Teams License Assign Date", "Assigned Products",
)


def office365_active_user_csv(users: Sequence[dict], now: float, seed: int, period_days: int = 7) -> bytes:
    """The CSV ``getOffice365ActiveUserDetail`` redirects to: UTF-8 with a BOM, one row per user.

    A user's row depends only on the tenant seed, the user and the day, so downloading the
    report twice on one day gives the same rows (a snapshot source emits nothing new).
    """
    day = int(now // 86400)
    refresh = time.strftime("%Y-%m-%d", time.gmtime((day - 1) * 86400))
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(OFFICE365_COLUMNS)
    for u in users:
        rng = random.Random(f"{seed}:{u['id']}:{day}:{period_days}")
        assign = time.strftime("%Y-%m-%d", time.gmtime((day - rng.randrange(30, 700)) * 86400))

        def last(p: float) -> str:
            if rng.random() >= p:
                return ""
            return time.strftime("%Y-%m-%d", time.gmtime((day - rng.randrange(1, period_days + 1)) * 86400))

        w.writerow([
            refresh, u["userPrincipalName"], u["displayName"], "False", "",
            "True", "True", "True", "False", "False", "True",
            last(0.9), last(0.6), last(0.5), "", "", last(0.8),
            assign, assign, assign, "", "", assign,
            "MICROSOFT 365 E5+MICROSOFT DEFENDER FOR ENDPOINT",
        ])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


# --------------------------------------------------------------------------- changers

def _change_group(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    new["description"] = f"{o['displayName']} team (updated {time.strftime('%Y-%m-%d', time.gmtime(now))})"
    new["renewedDateTime"] = format_ts(now)
    return new


def _change_device(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    new["approximateLastSignInDateTime"] = format_ts(now - rng.uniform(0, 600))
    new["isCompliant"] = not o.get("isCompliant", True) if rng.random() < 0.5 else o.get("isCompliant")
    return new


def _change_application(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    new["passwordCredentials"] = list(o.get("passwordCredentials") or []) + [{
        "customKeyIdentifier": None, "displayName": "rotated", "endDateTime": format_ts(now + 180 * 86400),
        "hint": "r0t", "keyId": guid(rng), "secretText": None, "startDateTime": format_ts(now)}]
    return new


def _change_service_principal(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    new["tags"] = list(o.get("tags") or []) + [f"reviewed-{time.strftime('%Y%m%d', time.gmtime(now))}-{rng.randrange(1000)}"]
    return new


def _change_managed_device(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    new["lastSyncDateTime"] = format_ts(now - rng.uniform(0, 300))
    new["complianceState"] = _COMPLIANCE[rng.randrange(len(_COMPLIANCE))]
    return new


def _change_policy(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    new["version"] = int(o.get("version") or 1) + 1
    new["lastModifiedDateTime"] = format_ts(now, frac=True)
    return new


def _change_registration(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    methods = sorted(set(o.get("methodsRegistered") or []) | {_METHODS[rng.randrange(len(_METHODS))]})
    new["methodsRegistered"] = methods
    new["isMfaRegistered"] = new["isMfaCapable"] = any(m != "email" for m in methods)
    new["lastUpdatedDateTime"] = _ts(now)
    return new


# collection -> (rng, obj, now) -> new obj; users, risky users, consent requests and control profiles
# have richer changers the tenant calls with more context.
CHANGERS = {
    "groups": _change_group,
    "devices": _change_device,
    "applications": _change_application,
    "service_principals": _change_service_principal,
    "managed_devices": _change_managed_device,
    "compliance_policies": _change_policy,
    "device_configurations": _change_policy,
    "user_registration_details": _change_registration,
}


def stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "td-graph-sim:" + ":".join(parts)))
