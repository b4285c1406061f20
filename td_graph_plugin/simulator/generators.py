"""Realistic Graph objects, generated fast from templates.

Why templates: benchmarks need 200,000 sign-ins in a few seconds.  Each object is one dict
literal whose nested parts (device, location, status, applied CA policies) are picked from
small pools of pre-built dicts and *shared* between objects.  The simulator never mutates a
stored object (updates are copy-on-write), so sharing is safe and keeps memory and time low.

Shapes follow graph-facts §1 (alert v2), §3 (signIn, directoryAudit) and §4 (user).  All
randomness comes from the tenant's ``random.Random(seed)``, so a seed reproduces a tenant.
"""

from __future__ import annotations

import random
from typing import Sequence

from .timefmt import format_ts

__all__ = [
    "guid",
    "make_users",
    "make_sign_ins",
    "make_directory_audits",
    "make_alerts",
    "change_user",
    "update_alert",
    "NEW_SERVICE_SOURCES",
    "NEW_DETECTION_SOURCES",
    "USER_DEFAULT_PROPERTIES",
    "SIGN_IN_EVENT_TYPES",
]


def guid(rng: random.Random) -> str:
    h = "%032x" % rng.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


# --------------------------------------------------------------------------- users

_FIRST = ("Adele", "Alex", "Diego", "Grady", "Henrietta", "Isaiah", "Johanna", "Joni", "Lee",
          "Lidia", "Lynne", "Megan", "Miriam", "Nestor", "Patti", "Pradeep", "Sakura", "Omar",
          "Ravi", "Chen", "Fatima", "Jonas", "Ingrid", "Kwame")
_LAST = ("Vance", "Wilber", "Siciliani", "Archie", "Cerveny", "Lamkin", "Lambert", "Sherman",
         "Gu", "Holloway", "Robbins", "Bowen", "Graham", "Wilke", "Fernandez", "Gupta", "Sato",
         "Haddad", "Nair", "Wei", "Khan", "Berg", "Larsen", "Mensah")
_JOBS = ("Marketing Manager", "Retail Manager", "Attorney", "Designer", "Developer",
         "IT Admin", "Product Manager", "Sales Rep", "Paralegal", "Researcher", "CFO",
         "Security Analyst", "Helpdesk Technician", "Accountant")
_DEPTS = ("Marketing", "Retail", "Legal", "Engineering", "IT", "Sales", "Finance", "Research",
          "Operations", "Security")
_OFFICES = ("18/2111", "131/1104", "20/1101", "12/1110", "98/2202", "23/2102", "14/1108")
_CITIES = (("Seattle", "United States", "US"), ("Redmond", "United States", "US"),
           ("London", "United Kingdom", "GB"), ("Paris", "France", "FR"),
           ("Berlin", "Germany", "DE"), ("Tokyo", "Japan", "JP"))

# Properties /users and /users/delta return when no $select is given (graph-facts §4).
USER_DEFAULT_PROPERTIES = ("businessPhones", "displayName", "givenName", "jobTitle", "mail",
                           "mobilePhone", "officeLocation", "preferredLanguage", "surname",
                           "userPrincipalName", "id")


def make_users(rng: random.Random, n: int, domain: str, start_index: int, now: float) -> list[dict]:
    out = []
    for i in range(start_index, start_index + n):
        first = _FIRST[rng.randrange(len(_FIRST))]
        last = _LAST[rng.randrange(len(_LAST))]
        upn = f"{first}.{last}{i}@{domain}".lower()
        guest = rng.random() < 0.05
        city = _CITIES[rng.randrange(len(_CITIES))]
        out.append(
            {
                "id": guid(rng),
                "businessPhones": [f"+1 425 555 {rng.randrange(10000):04d}"],
                "displayName": f"{first} {last}",
                "givenName": first,
                "jobTitle": _JOBS[rng.randrange(len(_JOBS))],
                "mail": upn,
                "mobilePhone": None if rng.random() < 0.6 else f"+1 206 555 {rng.randrange(10000):04d}",
                "officeLocation": _OFFICES[rng.randrange(len(_OFFICES))],
                "preferredLanguage": "en-US",
                "surname": last,
                "userPrincipalName": upn,
                "accountEnabled": rng.random() > 0.03,
                "createdDateTime": format_ts(now - rng.uniform(86400, 3 * 365 * 86400)),
                "department": _DEPTS[rng.randrange(len(_DEPTS))],
                "companyName": "Simulated Ltd",
                "city": city[0],
                "country": city[1],
                "usageLocation": city[2],
                "employeeId": str(100000 + i),
                "userType": "Guest" if guest else "Member",
                "onPremisesSyncEnabled": None,
                "visible_at": 0.0,
            }
        )
    return out


def change_user(rng: random.Random, user: dict) -> dict:
    """A copy of ``user`` with a few ordinary attribute changes (what HR sync does)."""
    new = dict(user)
    new["jobTitle"] = _JOBS[rng.randrange(len(_JOBS))]
    new["officeLocation"] = _OFFICES[rng.randrange(len(_OFFICES))]
    new["department"] = _DEPTS[rng.randrange(len(_DEPTS))]
    new["mobilePhone"] = f"+1 206 555 {rng.randrange(10000):04d}"
    return new


# --------------------------------------------------------------------------- sign-ins

SIGN_IN_EVENT_TYPES = ("interactiveUser", "nonInteractiveUser", "servicePrincipal", "managedIdentity")

# (appId, appDisplayName, resourceDisplayName, resourceId, clientAppUsed)
_APPS = (
    ("00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online",
     "Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000", "Browser"),
    ("1fec8e78-bce4-4aaf-ab1b-5451cc387264", "Microsoft Teams", "Microsoft Teams Services",
     "cc15fd57-2c6c-4117-a88c-83b1d56b4bbe", "Mobile Apps and Desktop clients"),
    ("c44b4083-3bb0-49c1-b47d-974e53cbdf3c", "Azure Portal", "Windows Azure Service Management API",
     "797f4846-ba00-4fd7-ba43-dac1f8f63013", "Browser"),
    ("d3590ed6-52b3-4102-aeff-aad2292ab01c", "Microsoft Office", "Microsoft Graph",
     "00000003-0000-0000-c000-000000000000", "Mobile Apps and Desktop clients"),
    ("00000003-0000-0ff1-ce00-000000000000", "Office 365 SharePoint Online",
     "Office 365 SharePoint Online", "00000003-0000-0ff1-ce00-000000000000", "Browser"),
    ("04b07795-8ddb-461a-bbee-02f9e1bf7b46", "Microsoft Azure CLI", "Microsoft Graph",
     "00000003-0000-0000-c000-000000000000", "Mobile Apps and Desktop clients"),
    ("27922004-5251-4030-b22d-91ecd9a37ea4", "Outlook Mobile", "Office 365 Exchange Online",
     "00000002-0000-0ff1-ce00-000000000000", "Mobile Apps and Desktop clients"),
    ("2793995e-0a7d-40d7-bd35-6968ba142197", "My Apps", "Microsoft Graph",
     "00000003-0000-0000-c000-000000000000", "Browser"),
    ("4765445b-32c6-49b0-83e6-1d93765276ca", "OfficeHome", "OfficeHome",
     "4765445b-32c6-49b0-83e6-1d93765276ca", "Browser"),
    ("00000006-0000-0ff1-ce00-000000000000", "Microsoft Office 365 Portal",
     "Microsoft Office 365 Portal", "00000006-0000-0ff1-ce00-000000000000", "Exchange ActiveSync"),
)

# (city, state, countryOrRegion, latitude, longitude, ip prefix)
_LOCATIONS = (
    ("Redmond", "Washington", "US", 47.67399, -122.12151, "131.107.160"),
    ("Seattle", "Washington", "US", 47.60357, -122.32945, "20.190.151"),
    ("New York", "New York", "US", 40.71455, -74.00714, "52.109.12"),
    ("London", "England", "GB", 51.50643, -0.12719, "51.140.8"),
    ("Paris", "Ile-de-France", "FR", 48.85341, 2.3488, "20.74.12"),
    ("Amsterdam", "Noord-Holland", "NL", 52.37403, 4.88969, "40.114.240"),
    ("Frankfurt am Main", "Hessen", "DE", 50.11552, 8.68417, "20.113.3"),
    ("Tokyo", "Tokyo", "JP", 35.6895, 139.69171, "20.43.66"),
    ("Sydney", "New South Wales", "AU", -33.86785, 151.20732, "20.211.22"),
    ("Sao Paulo", "Sao Paulo", "BR", -23.5475, -46.63611, "191.232.40"),
    ("Lagos", "Lagos", "NG", 6.45407, 3.39467, "102.89.34"),
    ("Singapore", "Central Singapore", "SG", 1.28967, 103.85007, "20.198.160"),
)
_LOCATION_DICTS = tuple(
    {"city": c, "state": s, "countryOrRegion": k,
     "geoCoordinates": {"altitude": None, "latitude": la, "longitude": lo}}
    for c, s, k, la, lo, _ in _LOCATIONS
)

_DEVICES = tuple(
    {"deviceId": did, "displayName": name, "operatingSystem": os_, "browser": br,
     "isCompliant": comp, "isManaged": man, "trustType": trust}
    for did, name, os_, br, comp, man, trust in (
        ("", "", "Windows10", "Edge 131.0.0", False, False, ""),
        ("7c9b9e0d-5e4f-4a43-9ab0-1f0c2d3e4f51", "DESKTOP-8H2K3LQ", "Windows10", "Edge 131.0.0", True, True, "Azure AD joined"),
        ("a1f3d2c4-22b1-4c8e-9d0e-5b6a7c8d9e02", "LAPTOP-JQ4P9ZT", "Windows10", "Chrome 131.0.0", True, True, "Hybrid Azure AD joined"),
        ("", "", "MacOs", "Safari 18.1", False, False, ""),
        ("", "", "Ios 18.1", "Mobile Safari 18.1", False, False, ""),
        ("5d2e8f90-7a1b-4c3d-8e9f-0a1b2c3d4e53", "iPhone", "Ios 18.1", "Rich Client 5.2411.0", True, True, "Azure AD registered"),
        ("", "", "Android 15", "Chrome Mobile 131.0.0", False, False, ""),
        ("", "", "Linux", "Firefox 133.0", False, False, ""),
    )
)

# (errorCode, failureReason, additionalDetails, weight)
_STATUSES = (
    (0, "Other.", "MFA requirement satisfied by claim in the token", 55),
    (0, "Other.", "MFA completed in Azure AD", 20),
    (0, None, None, 10),
    (50126, "Error validating credentials due to invalid username or password.",
     "The user didn't enter the right credentials.  It's expected to see some number of these errors in your logs due to users making mistakes.", 6),
    (50074, "Strong Authentication is required.",
     "The user is required to complete MFA before continuing.", 4),
    (53003, "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
     "The user was blocked by a Conditional Access policy.", 2),
    (50140, "This error occurred due to 'Keep me signed in' interrupt when the user was signing in.",
     "This is an expected part of the login flow, where a user is asked if they want to remain signed into this browser.", 2),
    (500121, "Authentication failed during strong authentication request.",
     "The user didn't complete the MFA prompt.", 1),
)
_STATUS_DICTS = tuple(
    {"errorCode": c, "failureReason": r, "additionalDetails": d} for c, r, d, _ in _STATUSES
)
_STATUS_CUM = []
_acc = 0
for _s in _STATUSES:
    _acc += _s[3]
    _STATUS_CUM.append(_acc)
_STATUS_TOTAL = _acc

_CA_POLICIES = (
    ("2f9c2e8a-5d3b-4e6f-9a1b-0c2d3e4f5a61", "Require MFA for all users", ["Mfa"], []),
    ("8b1d4c6e-2a3f-4b5c-8d7e-9f0a1b2c3d72", "Block legacy authentication", ["Block"], []),
    ("c3e5f7a9-1b2d-4c6e-8f0a-2b4d6f8a0c83", "Require compliant device for admins",
     ["RequireCompliantDevice", "RequireDomainJoinedDevice"], []),
    ("d4f6a8b0-2c3e-4d5f-9a1b-3c5e7a9b1d94", "Sign-in frequency for unmanaged devices", [],
     ["SignInFrequency", "PersistentBrowserSessionMode"]),
)


def _ca_set(results: Sequence[str]) -> list[dict]:
    return [
        {"id": pid, "displayName": name, "enforcedGrantControls": grant,
         "enforcedSessionControls": sess, "result": res}
        for (pid, name, grant, sess), res in zip(_CA_POLICIES, results)
    ]


# (conditionalAccessStatus, applied policies) pairs, chosen by the sign-in's status.
_CA_SUCCESS = (
    ("success", _ca_set(("success", "notApplied"))),
    ("success", _ca_set(("success", "notApplied", "success"))),
    ("notApplied", _ca_set(("notApplied", "notApplied", "notApplied", "notEnabled"))),
    ("success", _ca_set(("success", "notApplied"))),
)
_CA_FAILURE = (
    ("failure", _ca_set(("failure", "notApplied", "notApplied", "notApplied"))),
    ("failure", _ca_set(("notApplied", "failure", "notApplied", "notApplied"))),
)
_NO_RISK = ("none", "none", "none", "none", [])
_RISKS = (
    ("none", "low", "low", "atRisk", ["unfamiliarFeatures"]),
    ("none", "medium", "medium", "atRisk", ["anonymizedIPAddress"]),
    ("none", "high", "high", "atRisk", ["unlikelyTravel"]),
    ("adminDismissedAllRiskForUser", "low", "low", "dismissed", ["unfamiliarFeatures"]),
)


def make_sign_ins(rng: random.Random, times: Sequence[float], users: Sequence[tuple],
                  event_type: str, frac_every: int = 3) -> list[dict]:
    """One sign-in per epoch in ``times``; ``users`` is (id, displayName, upn) tuples.

    Every ``frac_every``-th timestamp carries Graph's 7-digit fraction so clients must parse both.
    """
    out = []
    nu, na, nl, nd = len(users), len(_APPS), len(_LOCATIONS), len(_DEVICES)
    bits = rng.getrandbits
    interactive = event_type == "interactiveUser"
    types = [event_type]
    ns, nf = len(_CA_SUCCESS), len(_CA_FAILURE)
    for i, t in enumerate(times):
        # One 96-bit draw feeds every categorical pick: randrange() per field was 60% of the cost.
        r = bits(96)
        u = users[(r & 0xFFFF) % nu]
        app = _APPS[((r >> 16) & 0xFF) % na]
        li = ((r >> 24) & 0xFF) % nl
        x = ((r >> 32) & 0xFFFF) % _STATUS_TOTAL
        si = 0
        while _STATUS_CUM[si] <= x:
            si += 1
        status = _STATUS_DICTS[si]
        if status["errorCode"] == 53003:
            cas, policies = _CA_FAILURE[((r >> 48) & 0xFF) % nf]
        else:
            cas, policies = _CA_SUCCESS[((r >> 48) & 0xFF) % ns]
        risk = _RISKS[(r >> 56) & 3] if ((r >> 58) & 0x1F) == 0 else _NO_RISK
        device = _DEVICES[((r >> 64) & 0xFF) % nd]
        octet = (r >> 72) & 0xFF
        h = "%064x" % bits(256)
        out.append(
            {
                "id": f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}",
                "createdDateTime": format_ts(t, frac=(i % frac_every == 1)),
                "userDisplayName": u[1],
                "userPrincipalName": u[2],
                "userId": u[0],
                "appId": app[0],
                "appDisplayName": app[1],
                "ipAddress": f"{_LOCATIONS[li][5]}.{octet}",
                "clientAppUsed": app[4],
                "correlationId": f"{h[32:40]}-{h[40:44]}-4{h[45:48]}-b{h[49:52]}-{h[52:64]}",
                "conditionalAccessStatus": cas,
                "isInteractive": interactive,
                "riskDetail": risk[0],
                "riskLevelAggregated": risk[1],
                "riskLevelDuringSignIn": risk[2],
                "riskState": risk[3],
                "riskEventTypes": risk[4],
                "riskEventTypes_v2": risk[4],
                "resourceDisplayName": app[2],
                "resourceId": app[3],
                "status": status,
                "deviceDetail": device,
                "location": _LOCATION_DICTS[li],
                "appliedConditionalAccessPolicies": policies,
                "signInEventTypes": types,
                "visible_at": 0.0,
            }
        )
    return out


# --------------------------------------------------------------------------- directory audits

# (activityDisplayName, category, loggedByService, operationType, target type)
_ACTIVITIES = (
    ("Add user", "UserManagement", "Core Directory", "Add", "User"),
    ("Update user", "UserManagement", "Core Directory", "Update", "User"),
    ("Delete user", "UserManagement", "Core Directory", "Delete", "User"),
    ("Reset user password", "UserManagement", "Core Directory", "Update", "User"),
    ("Change user password", "UserManagement", "Self-service Password Management", "Update", "User"),
    ("Add member to group", "GroupManagement", "Core Directory", "Assign", "Group"),
    ("Remove member from group", "GroupManagement", "Core Directory", "Unassign", "Group"),
    ("Update application", "ApplicationManagement", "Core Directory", "Update", "Application"),
    ("Consent to application", "ApplicationManagement", "Core Directory", "Assign", "ServicePrincipal"),
    ("Add service principal credentials", "ApplicationManagement", "Core Directory", "Update", "ServicePrincipal"),
    ("Add app role assignment to service principal", "ApplicationManagement", "Core Directory", "Assign", "ServicePrincipal"),
    ("Update conditional access policy", "Policy", "Conditional Access", "Update", "Policy"),
    ("Add member to role", "RoleManagement", "Core Directory", "Assign", "User"),
)
_MODIFIED = (
    [{"displayName": "AccountEnabled", "oldValue": "[true]", "newValue": "[false]"}],
    [{"displayName": "JobTitle", "oldValue": "[\"Developer\"]", "newValue": "[\"Product Manager\"]"},
     {"displayName": "Included Updated Properties", "oldValue": None, "newValue": "\"JobTitle\""}],
    [{"displayName": "StrongAuthenticationMethod", "oldValue": "[]",
      "newValue": "[{\"MethodType\":6,\"Default\":true}]"}],
    [],
)
_INITIATING_APPS = (
    ("Microsoft Azure AD Group-Based Licensing", "f0ae4899-d877-4d3c-ae25-679e38eea492"),
    ("Microsoft Intune", "0000000a-0000-0000-c000-000000000000"),
    ("MS-PIM", "01fc33a7-78ba-4d2f-a4b7-768e336e890e"),
)


def make_directory_audits(rng: random.Random, times: Sequence[float], users: Sequence[tuple],
                          tenant_id: str, frac_every: int = 2) -> list[dict]:
    out = []
    nu = len(users)
    rr, rand = rng.randrange, rng.random
    for i, t in enumerate(times):
        act = _ACTIVITIES[rr(len(_ACTIVITIES))]
        target = users[rr(nu)]
        if rand() < 0.7:
            actor = users[rr(nu)]
            initiated = {
                "app": None,
                "user": {"id": actor[0], "displayName": None, "userPrincipalName": actor[2],
                         "ipAddress": f"{_LOCATIONS[rr(len(_LOCATIONS))][5]}.{rr(256)}",
                         "userType": None, "homeTenantId": tenant_id, "homeTenantName": None},
            }
        else:
            app = _INITIATING_APPS[rr(len(_INITIATING_APPS))]
            initiated = {
                "app": {"appId": app[1], "displayName": app[0], "servicePrincipalId": guid(rng),
                        "servicePrincipalName": None},
                "user": None,
            }
        ok = rand() > 0.05
        out.append(
            {
                "id": f"Directory_{guid(rng)}_{rr(10**8):08d}",
                "category": act[1],
                "correlationId": guid(rng),
                "result": "success" if ok else "failure",
                "resultReason": "" if ok else "Microsoft.Online.Workflows.ObjectAlreadyExistsException",
                "activityDisplayName": act[0],
                "activityDateTime": format_ts(t, frac=(i % frac_every == 1)),
                "loggedByService": act[2],
                "operationType": act[3],
                "initiatedBy": initiated,
                "targetResources": [
                    {
                        "id": target[0],
                        "displayName": target[1] if act[4] != "User" else None,
                        "type": act[4],
                        "userPrincipalName": target[2] if act[4] == "User" else None,
                        "groupType": "unifiedGroups" if act[4] == "Group" else None,
                        "modifiedProperties": _MODIFIED[rr(len(_MODIFIED))],
                    }
                ],
                "additionalDetails": [
                    {"key": "UserType", "value": "Member"},
                    {"key": "User-Agent", "value": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"},
                ],
                "visible_at": 0.0,
            }
        )
    return out


# --------------------------------------------------------------------------- alerts (v2)

# serviceSource members added after unknownFutureValue: served as unknownFutureValue unless the
# request sends `Prefer: include-unknown-enum-members` (graph-facts §0.4).
NEW_SERVICE_SOURCES = frozenset({"microsoftDefenderForCloud", "microsoftSentinel",
                                 "microsoftInsiderRiskManagement"})
NEW_DETECTION_SOURCES = frozenset({"microsoftSentinel", "nrtAlerts", "scheduledAlerts",
                                   "microsoftDefenderThreatIntelligenceAnalytics", "builtInMl",
                                   "microsoftInsiderRiskManagement"})

# (serviceSource, detectionSource, title, category, mitreTechniques, id prefix, weight)
_ALERT_KINDS = (
    ("microsoftDefenderForEndpoint", "antivirus", "Suspicious PowerShell command line", "Execution", ["T1059.001"], "da", 25),
    ("microsoftDefenderForEndpoint", "microsoftDefenderForEndpoint", "Ransomware behavior detected in the file system", "Ransomware", ["T1486"], "da", 8),
    ("microsoftDefenderForOffice365", "microsoftDefenderForOffice365", "Email messages containing malicious URL removed after delivery", "InitialAccess", ["T1566.002"], "fa", 20),
    ("microsoftDefenderForIdentity", "microsoftDefenderForIdentity", "Suspected DCSync attack (replication of directory services)", "CredentialAccess", ["T1003.006"], "aa", 8),
    ("microsoftDefenderForCloudApps", "microsoftDefenderForCloudApps", "Impossible travel activity", "InitialAccess", ["T1078"], "ca", 10),
    ("azureAdIdentityProtection", "azureAdIdentityProtection", "Unfamiliar sign-in properties", "InitialAccess", ["T1078.004"], "ad", 12),
    ("microsoft365Defender", "microsoft365Defender", "Multi-stage incident involving Initial access & Collection", "Collection", [], "ra", 5),
    ("microsoftSentinel", "scheduledAlerts", "Rare subscription-level operations in Azure", "Persistence", ["T1098"], "sn", 7),
    ("microsoftDefenderForCloud", "microsoftDefenderForCloud", "Suspicious authentication activity on a storage account", "CredentialAccess", ["T1110"], "dc", 5),
)
_KIND_CUM = []
_acc = 0
for _k in _ALERT_KINDS:
    _acc += _k[6]
    _KIND_CUM.append(_acc)
_KIND_TOTAL = _acc
_SEVERITIES = ("low", "medium", "medium", "high", "informational")
_DEVICES_ALERT = (("DESKTOP-8H2K3LQ", "Windows10", "22H2"), ("LAPTOP-JQ4P9ZT", "Windows11", "23H2"),
                  ("SRV-FILE-01", "WindowsServer2022", "21H2"), ("mac-design-07", "macOS", "14.6"))


def _alert_evidence(rng: random.Random, user: tuple, domain: str, created: str) -> list[dict]:
    dev = _DEVICES_ALERT[rng.randrange(len(_DEVICES_ALERT))]
    account = user[2].split("@")[0]
    ev = [
        {
            "@odata.type": "#microsoft.graph.security.userEvidence",
            "createdDateTime": created,
            "verdict": "suspicious",
            "remediationStatus": "none",
            "remediationStatusDetails": None,
            "roles": ["compromised"],
            "tags": [],
            "userAccount": {"accountName": account, "domainName": domain.split(".")[0].upper(),
                            "userSid": f"S-1-5-21-{rng.randrange(10**9)}-{rng.randrange(10**9)}-{rng.randrange(10**4)}",
                            "azureAdUserId": user[0], "userPrincipalName": user[2],
                            "displayName": user[1]},
        },
        {
            "@odata.type": "#microsoft.graph.security.deviceEvidence",
            "createdDateTime": created,
            "verdict": "unknown",
            "remediationStatus": "none",
            "remediationStatusDetails": None,
            "roles": [],
            "tags": [],
            "firstSeenDateTime": created,
            "mdeDeviceId": "%040x" % rng.getrandbits(160),
            "azureAdDeviceId": guid(rng),
            "deviceDnsName": f"{dev[0].lower()}.{domain}",
            "osPlatform": dev[1],
            "osBuild": rng.randrange(19041, 26100),
            "version": dev[2],
            "healthStatus": "active",
            "riskScore": ("low", "medium", "high")[rng.randrange(3)],
            "rbacGroupId": 0,
            "rbacGroupName": None,
            "onboardingStatus": "onboarded",
            "defenderAvStatus": "updated",
            "loggedOnUsers": [{"accountName": account, "domainName": domain.split(".")[0].upper()}],
        },
    ]
    if rng.random() < 0.5:
        sha = "%064x" % rng.getrandbits(256)
        ev.append(
            {
                "@odata.type": "#microsoft.graph.security.processEvidence",
                "createdDateTime": created,
                "verdict": "malicious",
                "remediationStatus": "prevented",
                "remediationStatusDetails": None,
                "roles": [],
                "tags": [],
                "processId": rng.randrange(1000, 30000),
                "parentProcessId": rng.randrange(1000, 30000),
                "processCommandLine": "powershell.exe -NoP -W Hidden -Enc SQBFAFgAIAAoAE4AZQB3AC0A",
                "processCreationDateTime": created,
                "parentProcessCreationDateTime": created,
                "detectionStatus": "prevented",
                "mdeDeviceId": None,
                "imageFile": {"sha1": sha[:40], "sha256": sha, "fileName": "powershell.exe",
                              "filePath": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0",
                              "fileSize": 452608, "filePublisher": "Microsoft Corporation",
                              "signer": None, "issuer": None},
                "userAccount": {"accountName": account, "domainName": domain.split(".")[0].upper(),
                                "userSid": None, "azureAdUserId": None, "userPrincipalName": None},
            }
        )
    else:
        ev.append(
            {
                "@odata.type": "#microsoft.graph.security.ipEvidence",
                "createdDateTime": created,
                "verdict": "suspicious",
                "remediationStatus": "none",
                "remediationStatusDetails": None,
                "roles": [],
                "tags": [],
                "ipAddress": f"{_LOCATIONS[rng.randrange(len(_LOCATIONS))][5]}.{rng.randrange(256)}",
                "countryLetterCode": _LOCATIONS[rng.randrange(len(_LOCATIONS))][2],
            }
        )
    return ev


def make_alerts(rng: random.Random, times: Sequence[float], users: Sequence[tuple], tenant_id: str,
                domain: str, now: float, first_incident: int) -> list[dict]:
    out = []
    for i, t in enumerate(times):
        x = rng.randrange(_KIND_TOTAL)
        ki = 0
        while _KIND_CUM[ki] <= x:
            ki += 1
        svc, det, title, cat, mitre, prefix, _ = _ALERT_KINDS[ki]
        user = users[rng.randrange(len(users))]
        created = format_ts(t, frac=True)
        updated_at = min(t + rng.uniform(0, 1800), now - 60)
        updated = format_ts(max(updated_at, t), frac=True)
        first_act = format_ts(t - rng.uniform(30, 3600), frac=True)
        incident = str(first_incident + i)
        aid = f"{prefix}{rng.randrange(10**17, 10**18)}_{rng.randrange(-2**31, 2**31)}"
        out.append(
            {
                "@odata.type": "#microsoft.graph.security.alert",
                "id": aid,
                "providerAlertId": aid[2:],
                "incidentId": incident,
                "status": "new",
                "severity": _SEVERITIES[rng.randrange(len(_SEVERITIES))],
                "classification": None,
                "determination": None,
                "serviceSource": svc,
                "detectionSource": det,
                "productName": svc[0].upper() + svc[1:],
                "detectorId": guid(rng),
                "tenantId": tenant_id,
                "title": title,
                "description": f"{title}. The activity was observed for {user[2]}.",
                "recommendedActions": "1. Review the evidence.\n2. Contain the user and device if the activity is not expected.",
                "category": cat,
                "assignedTo": None,
                "alertWebUrl": f"https://security.microsoft.com/alerts/{aid}?tid={tenant_id}",
                "incidentWebUrl": f"https://security.microsoft.com/incidents/{incident}?tid={tenant_id}",
                "actorDisplayName": None,
                "threatDisplayName": None,
                "threatFamilyName": None,
                "mitreTechniques": mitre,
                "createdDateTime": created,
                "lastUpdateDateTime": updated,
                "resolvedDateTime": None,
                "firstActivityDateTime": first_act,
                "lastActivityDateTime": created,
                "comments": [],
                "evidence": _alert_evidence(rng, user, domain, created),
                "systemTags": [],
                "alertPolicyId": None,
                "additionalData": {},
                "visible_at": 0.0,
            }
        )
    return out


_NEXT_STATUS = {"new": "inProgress", "inProgress": "resolved", "resolved": "resolved"}


def update_alert(alert: dict, last_update: float) -> dict:
    """A copy with the next status, a new comment, and ``lastUpdateDateTime`` set; same id."""
    new = dict(alert)
    status = _NEXT_STATUS.get(alert.get("status") or "new", "inProgress")
    stamp = format_ts(last_update, frac=True)
    new["status"] = status
    new["lastUpdateDateTime"] = stamp
    new["comments"] = list(alert.get("comments") or []) + [
        {"comment": f"Status changed to {status} by the SOC automation.",
         "createdByDisplayName": "Automation", "createdDateTime": stamp}
    ]
    if status == "resolved":
        new["resolvedDateTime"] = stamp
        new["classification"] = "truePositive"
        new["determination"] = "malware" if alert.get("category") in ("Execution", "Ransomware") else "other"
    else:
        new["assignedTo"] = "soc-analyst@sim.example"
    return new
