"""The onboarding guide's permission table, as data (shared/seed/ms-graph-onboarding-guide.md).

``doctor`` prints it with granted check marks; a missing *Required* permission makes doctor
exit 1.  The guide's Intune row says "deviceAppManagement"; the permission that reads Intune
audit events is ``DeviceManagementApps.Read.All``, listed here under that name.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GuidePermission", "GUIDE_PERMISSIONS", "REQUIRED", "OPTIONAL", "ISOLATOR"]

REQUIRED, OPTIONAL, ISOLATOR = "Required", "Optional", "Isolator"


@dataclass(frozen=True)
class GuidePermission:
    name: str
    reads: str
    requirement: str


GUIDE_PERMISSIONS: tuple[GuidePermission, ...] = (
    GuidePermission("Application.Read.All", "Application details and registrations", REQUIRED),
    GuidePermission("ConsentRequest.Read.All", "Consent requests and approvals", REQUIRED),
    GuidePermission("Directory.Read.All", "Directory data (users, groups, apps, licences)", REQUIRED),
    GuidePermission("DeviceManagementApps.Read.All", "Intune audit events (the guide's deviceAppManagement)", OPTIONAL),
    GuidePermission("DeviceManagementConfiguration.Read.All", "Intune configuration and compliance policies", OPTIONAL),
    GuidePermission("DeviceManagementManagedDevices.Read.All", "Intune-managed devices", OPTIONAL),
    GuidePermission("SecurityAlert.Read.All", "Defender XDR security alerts", REQUIRED),
    GuidePermission("SecurityIncident.Read.All", "Defender XDR security incidents", REQUIRED),
    GuidePermission("IdentityRiskyUser.Read.All", "Risky users", REQUIRED),
    GuidePermission("IdentityRiskyServicePrincipal.Read.All", "Risky service principals", REQUIRED),
    GuidePermission("IdentityRiskEvent.Read.All", "Risk detections", REQUIRED),
    GuidePermission("User.Read.All", "User profiles", REQUIRED),
    GuidePermission("Device.Read.All", "Entra device objects", REQUIRED),
    GuidePermission("Reports.Read.All", "Microsoft 365 usage reports", REQUIRED),
    GuidePermission("SecurityEvents.Read.All", "Secure Score and legacy security events", REQUIRED),
    GuidePermission("AuditLog.Read.All", "Sign-ins, directory audits, provisioning, registration reports", REQUIRED),
    GuidePermission("User.EnableDisableAccount.All", "User isolation: disable and re-enable accounts", ISOLATOR),
    GuidePermission("User.RevokeSessions.All", "User isolation: revoke sign-in sessions", ISOLATOR),
    GuidePermission("User-PasswordProfile.ReadWrite.All", "User isolation: force a password change", ISOLATOR),
)
