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
    "intune": "Microsoft Intune (service plan INTUNE_A)",
    "defender_xdr": "Microsoft Defender XDR (service plan MTP, or a Defender product plan)",
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
