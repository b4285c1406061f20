"""Generated Identity Protection objects (graph-facts §2): riskyUser, riskDetection,
riskyServicePrincipal, servicePrincipalRiskDetection.

Every function takes the tenant's ``random.Random``; nothing here keeps state.
"""

from __future__ import annotations

import json
import random

from .gen_common import ts
from .generators import _LOCATION_DICTS, _LOCATIONS, guid

__all__ = ['make_risky_user', 'change_risky_user', 'make_risk_detection', 'make_risky_service_principal', 'make_sp_risk_detection']

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
        "riskLastUpdatedDateTime": ts(when),
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
    new["riskLastUpdatedDateTime"] = ts(when)
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
        "activityDateTime": ts(activity_at),
        "detectedDateTime": ts(updated),
        "lastUpdatedDateTime": ts(updated),
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
        "riskLastUpdatedDateTime": ts(when),
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
        "activityDateTime": ts(activity_at),
        "detectedDateTime": ts(updated),
        "lastUpdatedDateTime": ts(updated),
        "servicePrincipalId": sp["id"],
        "servicePrincipalDisplayName": sp["displayName"],
        "appId": sp["appId"],
        "keyIds": key_ids,
        "additionalInfo": json.dumps([{"Key": "alertUrl", "Value": None}, {"Key": "requestCount", "Value": str(rng.randrange(1, 900))}],
                                     separators=(",", ":")),
        "visible_at": 0.0,
    }
