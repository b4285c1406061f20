"""Generated report objects (graph-facts §7): userRegistrationDetails and the Office 365
active-user CSV that the usage report redirects to.

Every function takes the tenant's ``random.Random`` or a seed; nothing here keeps state.
"""

from __future__ import annotations

import csv
import io
import random
import time
from typing import Sequence

from .gen_common import ts

__all__ = ['make_registration_details', 'change_registration', 'office365_active_user_csv', 'OFFICE365_COLUMNS']

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
        "lastUpdatedDateTime": ts(now - rng.uniform(3600, 30 * 86400)),
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



def change_registration(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    methods = sorted(set(o.get("methodsRegistered") or []) | {_METHODS[rng.randrange(len(_METHODS))]})
    new["methodsRegistered"] = methods
    new["isMfaRegistered"] = new["isMfaCapable"] = any(m != "email" for m in methods)
    new["lastUpdatedDateTime"] = ts(now)
    return new
