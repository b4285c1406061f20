"""Generated directory objects (graph-facts §4: group, device, application, servicePrincipal)
and consent requests (§6), with their ordinary changes.

Every function takes the tenant's ``random.Random``; nothing here keeps state.
"""

from __future__ import annotations

import random
import time
from typing import Sequence

from .gen_common import ts
from .generators import guid
from .graph_roles import GRAPH_APP_ID
from .timefmt import format_ts

__all__ = ['make_group', 'make_device', 'make_application', 'make_service_principal', 'first_party_service_principals', 'make_consent_request', 'change_consent_request', 'change_group', 'change_device', 'change_application', 'change_service_principal']

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
        "completedDateTime": ts(when + 3600) if status == "Completed" else None,
        "createdDateTime": ts(when),
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
                u["status"], u["completedDateTime"] = "Completed", ts(now)
                break
        else:
            ucr.append(_user_consent_request(rng, users[rng.randrange(len(users))], now))
        new["userConsentRequests"] = ucr
    return new


# --------------------------------------------------------------------------- changes

def change_group(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    new["description"] = f"{o['displayName']} team (updated {time.strftime('%Y-%m-%d', time.gmtime(now))})"
    new["renewedDateTime"] = format_ts(now)
    return new


def change_device(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    new["approximateLastSignInDateTime"] = format_ts(now - rng.uniform(0, 600))
    new["isCompliant"] = not o.get("isCompliant", True) if rng.random() < 0.5 else o.get("isCompliant")
    return new


def change_application(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    new["passwordCredentials"] = list(o.get("passwordCredentials") or []) + [{
        "customKeyIdentifier": None, "displayName": "rotated", "endDateTime": format_ts(now + 180 * 86400),
        "hint": "r0t", "keyId": guid(rng), "secretText": None, "startDateTime": format_ts(now)}]
    return new


def change_service_principal(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    new["tags"] = list(o.get("tags") or []) + [f"reviewed-{time.strftime('%Y%m%d', time.gmtime(now))}-{rng.randrange(1000)}"]
    return new
