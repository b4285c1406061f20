"""Generated audit-log objects beyond sign-ins and directory audits: provisioningObjectSummary
(graph-facts §3).  Takes the tenant's ``random.Random``; keeps no state.
"""

from __future__ import annotations

import random

from .gen_common import ts
from .generators import guid

__all__ = ['make_provisioning']

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
        "activityDateTime": ts(when),
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
