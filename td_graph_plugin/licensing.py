"""Licence capabilities a source can require, and the service plans that grant them.

Service plan names and ids from graph-facts §8 (Microsoft's licensing service-plan table).
A plan counts only when its SKU's ``capabilityStatus`` is Enabled (or Warning: grace period)
and the plan's ``provisioningStatus`` is Success.
"""

from __future__ import annotations

from typing import Any, Iterable

__all__ = ["CAPABILITIES", "PLAN_CAPABILITIES", "capabilities_from_skus"]

CAPABILITIES: dict[str, str] = {
    "entra_id_p1": "Microsoft Entra ID P1 (service plan AAD_PREMIUM)",
    "entra_id_p2": "Microsoft Entra ID P2 (service plan AAD_PREMIUM_P2)",
    "intune": "Microsoft Intune (service plan INTUNE_A or INTUNE_SMBIZ)",
    "defender_xdr": "Microsoft Defender XDR (service plan MTP, or a Defender product plan such as MDE_SMB)",
    "workload_id_premium": "Microsoft Entra Workload ID Premium (AAD_WRKLDID_P1/P2)",
}

# servicePlanName -> capabilities it grants.  P2 SKUs also carry AAD_PREMIUM, but P2 alone
# is counted as P1 too, because Microsoft documents P2 as a superset.
PLAN_CAPABILITIES: dict[str, tuple[str, ...]] = {
    "AAD_PREMIUM": ("entra_id_p1",),
    "AAD_PREMIUM_P2": ("entra_id_p1", "entra_id_p2"),
    "INTUNE_A": ("intune",),
    "MTP": ("defender_xdr",),
    "WINDEFATP": ("defender_xdr",),
    "MDE_LITE": ("defender_xdr",),
    "ATP_ENTERPRISE": ("defender_xdr",),
    "THREAT_INTELLIGENCE": ("defender_xdr",),
    "ATA": ("defender_xdr",),
    "ADALLOM_S_STANDALONE": ("defender_xdr",),
    "AAD_WRKLDID_P1": ("workload_id_premium",),
    "AAD_WRKLDID_P2": ("workload_id_premium",),
    # Microsoft 365 Business Premium (and Defender for Business standalone) carry Defender for
    # Business and an SMB Intune plan instead of WINDEFATP/MTP.  Microsoft's "Product names and
    # service plan identifiers for licensing" table
    # (https://learn.microsoft.com/entra/identity/users/licensing-service-plan-reference), rows
    # "Microsoft 365 Business Premium ...": MDE_SMB (bfc1bbd9-981b-4f71-9b82-17c35fd0e2a4)
    # "Microsoft Defender for Business"; INTUNE_SMBIZ (8e9ff0ff-aa7a-4b20-83c1-2f636b600ac2)
    # "Microsoft Intune"; alongside AAD_PREMIUM (41781fb2-...) "Microsoft Entra ID P1",
    # INTUNE_A (c1ec4a95-...) and ATP_ENTERPRISE (f20fedf3-...), already above.
    "MDE_SMB": ("defender_xdr",),
    "INTUNE_SMBIZ": ("intune",),
}
_USABLE_SKU = {"enabled", "warning"}


def capabilities_from_skus(skus: Iterable[dict[str, Any]]) -> set[str]:
    """Capabilities granted by ``/subscribedSkus`` items (client-side filter; it has no $filter)."""
    found: set[str] = set()
    for sku in skus:
        if str(sku.get("capabilityStatus", "")).lower() not in _USABLE_SKU:
            continue
        for plan in sku.get("servicePlans") or ():
            if str(plan.get("provisioningStatus", "")).lower() != "success":
                continue
            found.update(PLAN_CAPABILITIES.get(str(plan.get("servicePlanName", "")), ()))
    return found
