"""The Microsoft Graph service principal's application roles (app permissions) the simulator knows.

``GET /servicePrincipals(appId='00000003-0000-0000-c000-000000000000')?$select=id,appRoles`` answers
with these, and ``GET /servicePrincipals/{id}/appRoleAssignments`` refers to them by ``appRoleId``,
which is how td-graph learns what an app was granted (td_graph_plugin/discovery.py).

The ids are Microsoft's real appRole GUIDs (the same in every tenant), checked against several
independent public listings of the Microsoft Graph service principal's appRoles.  A permission
the simulator meets that is not in this table (a third-party source's made-up permission, a
test's own) gets a deterministic uuid5 id instead (``role_id``).  The full list of names the
Graph service principal exposes is ``role_catalogue.role_names``.

Every permission named by td-graph's catalogue, by the onboarding guide
(/work/shared/seed/ms-graph-onboarding-guide.md) and by the simulator's endpoint rows is here,
plus Organization.Read.All, User.ReadWrite.All and Directory.ReadWrite.All.
"""

from __future__ import annotations

import uuid

__all__ = ["GRAPH_APP_ID", "GRAPH_APP_ROLES", "role_id", "app_role"]

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

# value -> (appRole id, displayName)
GRAPH_APP_ROLES: dict[str, tuple[str, str]] = {
    "Application.Read.All": ("9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30", "Read all applications"),
    "Application.ReadWrite.All": ("1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9", "Read and write all applications"),
    "AuditLog.Read.All": ("b0afded3-3588-46d8-8b3d-9842eff778da", "Read all audit log data"),
    "ConsentRequest.Read.All": ("1260ad83-98fb-4785-abbb-d6cc1806fd41", "Read all consent requests"),
    "ConsentRequest.ReadWrite.All": ("9f1b81a7-0223-4428-bfa4-0bcb5535f27d", "Read and write all consent requests"),
    "Device.Read.All": ("7438b122-aefc-4978-80ed-43db9fcc7715", "Read all devices"),
    "Device.ReadWrite.All": ("1138cb37-bd11-4084-a2b7-9f71582aeddb", "Read and write devices"),
    "DeviceManagementApps.Read.All": ("7a6ee1e7-141e-4cec-ae74-d9db155731ff", "Read Microsoft Intune apps"),
    "DeviceManagementApps.ReadWrite.All": ("78145de6-330d-4800-a6ce-494ff2d33d07", "Read and write Microsoft Intune apps"),
    "DeviceManagementConfiguration.Read.All": ("dc377aa6-52d8-4e23-b271-2a7ae04cedf3", "Read Microsoft Intune device configuration and policies"),
    "DeviceManagementConfiguration.ReadWrite.All": ("9241abd9-d0e6-425a-bd4f-47ba86e767a4", "Read and write Microsoft Intune device configuration and policies"),
    "DeviceManagementManagedDevices.Read.All": ("2f51be20-0bb4-4fed-bf7b-db946066c75e", "Read Microsoft Intune devices"),
    "DeviceManagementManagedDevices.ReadWrite.All": ("243333ab-4d21-40cb-a475-36241daa0842", "Read and write Microsoft Intune devices"),
    "Directory.Read.All": ("7ab1d382-f21e-4acd-a863-ba3e13f7da61", "Read directory data"),
    "Directory.ReadWrite.All": ("19dbc75e-c2e2-444c-a770-ec69d8559fc7", "Read and write directory data"),
    "Group.Read.All": ("5b567255-7703-4780-807c-7be8301ae99b", "Read all groups"),
    "Group.ReadWrite.All": ("62a82d76-70ea-41e2-9197-370581804d09", "Read and write all groups"),
    "GroupMember.Read.All": ("98830695-27a2-44f7-8c18-0c3ebc9698f6", "Read all group memberships"),
    "GroupMember.ReadWrite.All": ("dbaae8cf-10b5-4b86-a4a1-f871c94c6695", "Read and write all group memberships"),
    "IdentityRiskEvent.Read.All": ("6e472fd1-ad78-48da-a0f0-97ab2c6b769e", "Read all identity risk event information"),
    "IdentityRiskEvent.ReadWrite.All": ("db06fb33-1953-4b7b-a2ac-f1e2c854f7ae", "Read and write all risk detection information"),
    "IdentityRiskyServicePrincipal.Read.All": ("607c7344-0eed-41e5-823a-9695ebe1b7b0", "Read all identity risky service principal information"),
    "IdentityRiskyServicePrincipal.ReadWrite.All": ("cb8d6980-6bcb-4507-afec-ed6de3a2d798", "Read and write all identity risky service principal information"),
    "IdentityRiskyUser.Read.All": ("dc5007c0-2d7d-4c42-879c-2dab87571379", "Read all identity risky user information"),
    "IdentityRiskyUser.ReadWrite.All": ("656f6061-f9fe-4807-9708-6a2e0934df76", "Read and write all risky user information"),
    "Organization.Read.All": ("498476ce-e0fe-48b0-b801-37ba7e2685c6", "Read organization information"),
    "Organization.ReadWrite.All": ("292d869f-3427-49a8-9dab-8c70152b74e9", "Read and write organization information"),
    "Reports.Read.All": ("230c1aed-a721-4c5d-9cb4-a90514e508ef", "Read all usage reports"),
    "SecurityAlert.Read.All": ("472e4a4d-bb4a-4026-98d1-0b0d74cb74a5", "Read all security alerts"),
    "SecurityAlert.ReadWrite.All": ("ed4fca05-be46-441f-9803-1873825f8fdb", "Read and write to all security alerts"),
    "SecurityEvents.Read.All": ("bf394140-e372-4bf9-a898-299cfc7564e5", "Read your organization's security events"),
    "SecurityEvents.ReadWrite.All": ("d903a879-88e0-4c09-b0c9-82f6a1333f84", "Read and update your organization's security events"),
    "SecurityIncident.Read.All": ("45cc0394-e837-488b-a098-1918f48d186c", "Read all security incidents"),
    "SecurityIncident.ReadWrite.All": ("34bf0e97-1971-4929-b999-9e2442d941d7", "Read and write to all security incidents"),
    "User.EnableDisableAccount.All": ("3011c876-62b7-4ada-afa2-506cbbecc68c", "Enable and disable user accounts"),
    "User.Read.All": ("df021288-bdef-4463-88db-98f22de89214", "Read all users' full profiles"),
    "User.ReadWrite.All": ("741f803b-c850-494e-b5df-cde7c675a1ca", "Read and write all users' full profiles"),
    "User.RevokeSessions.All": ("77f3a031-c388-4f99-b373-dc68676a979e", "Revoke all sign in sessions for a user"),
    "User-PasswordProfile.ReadWrite.All": ("cc117bb9-00cf-4eb8-b580-ea2a878fe8f7", "Read and write all password profiles and reset user passwords"),
    "UserAuthenticationMethod.Read.All": ("38d9df27-64da-44fd-b7c5-a6fbac20248f", "Read all users' authentication methods"),
}

_NAMESPACE = uuid.UUID("5d1f6a52-8a0b-4c55-9d57-0e4c0b7a1d10")


def role_id(name: str) -> str:
    """The appRole id of a permission: Microsoft's real one, else a stable uuid5 (simulator-only)."""
    known = GRAPH_APP_ROLES.get(name)
    return known[0] if known else str(uuid.uuid5(_NAMESPACE, "graph-app-role:" + name))


def app_role(name: str) -> dict:
    """One ``appRole`` object of the Microsoft Graph service principal."""
    display = GRAPH_APP_ROLES.get(name, ("", name))[1]
    return {
        "allowedMemberTypes": ["Application"],
        "description": f"Allows the app to {display[0].lower() + display[1:] if display else name} without a signed-in user.",
        "displayName": display,
        "id": role_id(name),
        "isEnabled": True,
        "origin": "Application",
        "value": name,
    }
