"""Generated Defender XDR objects: incidents (graph-facts §1), Secure Score and its control profiles.

Every function takes the tenant's ``random.Random``; nothing here keeps state.
"""

from __future__ import annotations

import random
import time
from typing import Sequence

from .gen_common import ts
from .timefmt import format_ts

__all__ = ['make_incident', 'make_redirected_incident', 'update_incident', 'make_secure_score', 'CONTROL_PROFILES', 'make_control_profile', 'change_control_profile']

_SEVERITY_RANK = {"informational": 0, "low": 1, "medium": 2, "high": 3}
_ANALYSTS = ("soc-analyst@sim.example", "tier2@sim.example", "ir-lead@sim.example")


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
    stamp = ts(last_update)
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
        "lastModifiedDateTime": ts(modified),
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
    stamp = ts(when)
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
