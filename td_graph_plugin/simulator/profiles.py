"""Licence profiles: the one place that says what a simulated tenant has bought.

A profile is a set of *capabilities* (what endpoints check before answering), the
``/subscribedSkus`` a real tenant with that purchase would list (so a client's licence
detection and the endpoints' 403s agree), and the log retention the licence gives
(graph-facts §0.8: Free keeps 7 days of sign-ins and audits, P1/P2 30 days).

Adding a profile is adding one entry to ``PROFILES``; adding a licence-gated endpoint is
naming one of ``CAPABILITIES`` in its row of ``endpoints.ENDPOINTS``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CAPABILITIES", "SERVICE_PLANS", "Profile", "PROFILES", "get_profile", "subscribed_skus"]

# Capability -> the service plan(s) that grant it (graph-facts §8).  Any one plan suffices.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "entra_id_p1": ("AAD_PREMIUM", "AAD_PREMIUM_P2"),
    "entra_id_p2": ("AAD_PREMIUM_P2",),
    "defender_xdr": ("MTP",),
    "intune": ("INTUNE_A",),
    "workload_id_premium": ("AAD_WRKLDID_P1", "AAD_WRKLDID_P2"),
}

# servicePlanName -> servicePlanId (graph-facts §8; the licensing service-plan reference).
SERVICE_PLANS: dict[str, str] = {
    "AAD_PREMIUM": "41781fb2-bc02-4b7c-bd55-b576c07bb09d",
    "AAD_PREMIUM_P2": "eec0eb4f-6444-4f95-aba0-50c24d67f998",
    "INTUNE_A": "c1ec4a95-1f05-45b3-a911-aa3fa01094f5",
    "INTUNE_O365": "882e1d05-acd1-4ccb-8708-6ee03664b117",
    "MTP": "bf28f719-7844-4079-9c78-c1307898e192",
    "ATP_ENTERPRISE": "f20fedf3-f3c3-43c3-8267-2bfdd51c0939",
    "THREAT_INTELLIGENCE": "8e0c0a52-6a6c-4d40-8370-dd62790dcd70",
    "WINDEFATP": "871d91ec-ec1a-452b-a83f-bd76c7d770ef",
    "ATA": "14ab5db5-e6c4-4b20-b4bc-13e36fd2227f",
    "ADALLOM_S_STANDALONE": "2e2ddb96-6af9-4b1d-a3f0-d6ecfd22edb2",
    "EXCHANGE_S_ENTERPRISE": "efb87545-963c-4e0d-99df-69c6916d9eb0",
    "EXCHANGE_S_STANDARD": "9aaf7827-d63c-4b61-89c3-182f06f82e5c",
    "SHAREPOINTENTERPRISE": "5dbe027f-2339-4123-9542-606e4d348a72",
    "TEAMS1": "57ff2da0-773e-42df-b2af-ffb7a2317929",
    # Workload ID Premium plans ([O] third-party constants, graph-facts §8).
    "AAD_WRKLDID_P1": "84c289f0-efcb-486f-8581-07f44fc9efad",
    "AAD_WRKLDID_P2": "7dc0e92d-bf15-401d-907e-0884efe7c760",
}


@dataclass(frozen=True)
class Sku:
    """One subscribedSku entry: (partNumber, skuId, units, [(plan, provisioningStatus)])."""

    part_number: str
    sku_id: str
    units: int
    plans: tuple[tuple[str, str], ...]
    capability_status: str = "Enabled"


@dataclass(frozen=True)
class Profile:
    """A purchase.  Capabilities are *derived* from the SKUs, so the 403s an endpoint gives and
    what ``/subscribedSkus`` says can never disagree (a plan counts when its SKU is Enabled or
    Warning and the plan is provisioned ``Success``, the rule graph-facts §8 recommends)."""

    name: str
    skus: tuple[Sku, ...]
    retention_days: int  # sign-ins and directory audits (graph-facts §0.8)
    # Application permissions a tenant of this profile has NOT been granted (the rest are);
    # empty = every permission granted.  A licence profile that also models a partial consent.
    withheld_permissions: frozenset[str] = frozenset()
    description: str = ""

    @property
    def capabilities(self) -> frozenset[str]:
        plans = {
            plan
            for sku in self.skus
            if sku.capability_status in ("Enabled", "Warning")
            for plan, status in sku.plans
            if status == "Success"
        }
        return frozenset(cap for cap, wanted in CAPABILITIES.items() if plans.intersection(wanted))


_E5 = Sku(
    "SPE_E5",
    "06ebc4ee-1bb5-47dd-8120-11324bc54e06",
    250,
    tuple(
        (p, "Success")
        for p in (
            "AAD_PREMIUM", "AAD_PREMIUM_P2", "INTUNE_A", "MTP", "WINDEFATP", "ATP_ENTERPRISE",
            "THREAT_INTELLIGENCE", "ATA", "ADALLOM_S_STANDALONE", "EXCHANGE_S_ENTERPRISE",
            "SHAREPOINTENTERPRISE", "TEAMS1",
        )
    ),
)
_E3_O365 = Sku(
    "ENTERPRISEPACK",
    "6fd2c87f-b296-42f0-b197-1e91e994b900",
    250,
    (("EXCHANGE_S_ENTERPRISE", "Success"), ("SHAREPOINTENTERPRISE", "Success"),
     ("TEAMS1", "Success"), ("INTUNE_O365", "PendingActivation")),
)
_P1 = Sku("AAD_PREMIUM", "078d2b04-f1bd-4111-bbd4-b4b1b354cef4", 250, (("AAD_PREMIUM", "Success"),))
_E1_O365 = Sku(
    "STANDARDPACK",
    "18181a46-0d4e-45cd-891e-60aabd171b4e",
    50,
    (("EXCHANGE_S_STANDARD", "Success"), ("TEAMS1", "Success"), ("INTUNE_O365", "PendingActivation")),
)

# Microsoft Entra Workload ID Premium, bought separately (E5 does not include it).  The SKU part
# number is the one third-party licence tables list; its skuId is ASSUMED (not found in a source).
_WORKLOAD_ID = Sku("Workload_Identities_P2", "a5b0e1f0-3c6b-4c1e-9a57-0d1f8f7b9e21", 25,
                   (("AAD_WRKLDID_P2", "Success"),))

_RESTRICTED_WITHHELD = frozenset({
    "SecurityIncident.Read.All", "SecurityIncident.ReadWrite.All",
    "IdentityRiskEvent.Read.All", "IdentityRiskEvent.ReadWrite.All",
})

PROFILES: dict[str, Profile] = {
    "e5": Profile("e5", (_E5,), 30, description="Microsoft 365 E5: Entra ID P1+P2, Intune, Defender XDR; "
                  "not Workload ID Premium (E5 does not include it)"),
    "all": Profile("all", (_E5, _WORKLOAD_ID), 30, description="E5 plus Workload ID Premium: every capability "
                   "(the all-licensed tenant: every catalogue source runs)"),
    "restricted": Profile("restricted", (_E5,), 30, withheld_permissions=_RESTRICTED_WITHHELD,
                          description="E5 licences, but the app was not granted SecurityIncident.Read.All nor "
                          "IdentityRiskEvent.Read.All (nor their ReadWrite variants)"),
    "p1": Profile("p1", (_E3_O365, _P1), 30, description="Office 365 E3 + Entra ID P1: no P2, Defender, Intune"),
    "free": Profile("free", (_E1_O365,), 7, description="Office 365 E1, Entra ID Free: nothing premium"),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown licence profile {name!r}; known: {', '.join(PROFILES)}") from None


def subscribed_skus(profile: Profile, tenant_id: str) -> list[dict]:
    """The ``/subscribedSkus`` value list a tenant with this profile returns (graph-facts §8)."""
    out = []
    for sku in profile.skus:
        out.append(
            {
                "accountName": "sim",
                "accountId": tenant_id,
                "appliesTo": "User",
                "capabilityStatus": sku.capability_status,
                "consumedUnits": max(1, sku.units * 3 // 5),
                "id": f"{tenant_id}_{sku.sku_id}",
                "prepaidUnits": {"enabled": sku.units, "lockedOut": 0, "suspended": 0, "warning": 0},
                "servicePlans": [
                    {
                        "servicePlanId": SERVICE_PLANS.get(plan, "00000000-0000-0000-0000-000000000000"),
                        "servicePlanName": plan,
                        "provisioningStatus": status,
                        "appliesTo": "User",
                    }
                    for plan, status in sku.plans
                ],
                "skuId": sku.sku_id,
                "skuPartNumber": sku.part_number,
                "subscriptionIds": [f"{sku.sku_id[:8]}-0000-4000-8000-{tenant_id[-12:]}"],
            }
        )
    return out
