"""Generated Intune objects (graph-facts §5): managed devices, compliance policies, device
configurations, audit events, with their ordinary changes.

Every function takes the tenant's ``random.Random``; nothing here keeps state.
"""

from __future__ import annotations

import random
import time

from .gen_common import ts
from .generators import _LOCATIONS, guid
from .timefmt import format_ts

__all__ = ['make_managed_device', 'make_compliance_policies', 'make_device_configurations', 'make_intune_audit_event', 'change_managed_device', 'change_policy']

# --------------------------------------------------------------------------- Intune

_MD_MODELS = (("Windows", "10.0.22631.4460", "Microsoft Corporation", "Surface Laptop 5", "windows"),
              ("Windows", "10.0.26100.2314", "Dell Inc.", "Latitude 7440", "windows"),
              ("iOS", "18.1.1", "Apple", "iPhone 15", "ios"),
              ("Android", "15", "samsung", "SM-S921B", "android"),
              ("macOS", "14.6.1", "Apple", "MacBook Pro", "macos"))
_COMPLIANCE = ("compliant", "compliant", "compliant", "noncompliant", "inGracePeriod", "unknown")


def make_managed_device(rng: random.Random, user: tuple, now: float) -> dict:
    os_, ver, maker, model, kind = _MD_MODELS[rng.randrange(len(_MD_MODELS))]
    enrolled = now - rng.uniform(5 * 86400, 700 * 86400)
    total = rng.choice((128, 256, 512)) * 1024 ** 3
    mac = ":".join("%02X" % rng.randrange(256) for _ in range(6)).replace(":", "")
    return {
        "id": guid(rng),
        "userId": user[0],
        "deviceName": f"{user[2].split('@')[0].split('.')[0].upper()}-{kind.upper()}-{rng.randrange(1000):03d}",
        "managedDeviceOwnerType": "company" if kind in ("windows", "macos") else rng.choice(("company", "personal")),
        "enrolledDateTime": format_ts(enrolled),
        "lastSyncDateTime": format_ts(now - rng.uniform(300, 5 * 86400)),
        "operatingSystem": os_,
        "complianceState": _COMPLIANCE[rng.randrange(len(_COMPLIANCE))],
        "jailBroken": "False" if kind in ("ios", "android") else "Unknown",
        "managementAgent": "mdm",
        "osVersion": ver,
        "easActivated": kind in ("ios", "android"),
        "easDeviceId": "%032X" % rng.getrandbits(128) if kind in ("ios", "android") else "",
        "easActivationDateTime": "0001-01-01T00:00:00Z",
        "azureADRegistered": True,
        "deviceEnrollmentType": "windowsAzureADJoin" if kind == "windows" else "userEnrollment",
        "activationLockBypassCode": None,
        "emailAddress": user[2],
        "azureADDeviceId": guid(rng),
        "deviceRegistrationState": "registered",
        "deviceCategoryDisplayName": "Unknown",
        "isSupervised": kind == "ios" and rng.random() < 0.5,
        "exchangeLastSuccessfulSyncDateTime": "0001-01-01T00:00:00Z",
        "exchangeAccessState": "none",
        "exchangeAccessStateReason": "none",
        "remoteAssistanceSessionUrl": None,
        "remoteAssistanceSessionErrorDetails": None,
        "isEncrypted": rng.random() > 0.1,
        "userPrincipalName": user[2],
        "model": model,
        "manufacturer": maker,
        "imei": "".join(str(rng.randrange(10)) for _ in range(15)) if kind in ("ios", "android") else "",
        "complianceGracePeriodExpirationDateTime": "9999-12-31T23:59:59Z",
        "serialNumber": "%010X" % rng.getrandbits(40),
        "phoneNumber": "",
        "androidSecurityPatchLevel": "2024-11-01" if kind == "android" else "",
        "userDisplayName": user[1],
        "configurationManagerClientEnabledFeatures": None,
        "wiFiMacAddress": mac,
        "deviceHealthAttestationState": None,
        "subscriberCarrier": "",
        "meid": "",
        "totalStorageSpaceInBytes": total,
        "freeStorageSpaceInBytes": int(total * rng.uniform(0.05, 0.7)),
        "managedDeviceName": f"{user[2].split('@')[0]}_{os_}_{time.strftime('%m/%d/%Y', time.gmtime(enrolled))}",
        "partnerReportedThreatState": "unknown",
        "deviceActionResults": [],
        "ethernetMacAddress": None,
        "visible_at": 0.0,
    }


def make_compliance_policies(rng: random.Random, now: float) -> list[dict]:
    specs = (
        ("#microsoft.graph.windows10CompliancePolicy", "Windows 10/11 baseline compliance",
         {"passwordRequired": True, "passwordMinimumLength": 8, "osMinimumVersion": "10.0.19045", "bitLockerEnabled": True,
          "secureBootEnabled": True, "codeIntegrityEnabled": True, "storageRequireEncryption": True,
          "defenderEnabled": True, "rtpEnabled": True, "antivirusRequired": True, "deviceThreatProtectionEnabled": True,
          "deviceThreatProtectionRequiredSecurityLevel": "medium"}),
        ("#microsoft.graph.iosCompliancePolicy", "iOS compliance",
         {"passcodeRequired": True, "passcodeMinimumLength": 6, "osMinimumVersion": "17.0", "securityBlockJailbrokenDevices": True,
          "deviceThreatProtectionEnabled": False, "managedEmailProfileRequired": False}),
        ("#microsoft.graph.androidWorkProfileCompliancePolicy", "Android Enterprise work profile",
         {"passwordRequired": True, "passwordMinimumLength": 6, "osMinimumVersion": "13.0", "securityBlockJailbrokenDevices": True,
          "securityRequireVerifyApps": True, "storageRequireEncryption": True}),
        ("#microsoft.graph.macOSCompliancePolicy", "macOS compliance",
         {"passwordRequired": True, "osMinimumVersion": "13.0", "systemIntegrityProtectionEnabled": True,
          "storageRequireEncryption": True, "firewallEnabled": True}),
        ("#microsoft.graph.androidCompliancePolicy", "Android device administrator (legacy)",
         {"passwordRequired": True, "passwordMinimumLength": 4, "securityBlockJailbrokenDevices": True}),
        ("#microsoft.graph.windows10CompliancePolicy", "Windows servers (kiosk)",
         {"passwordRequired": False, "osMinimumVersion": "10.0.17763", "bitLockerEnabled": False,
          "secureBootEnabled": True, "defenderEnabled": True}),
    )
    out = []
    for odata_type, name, settings in specs:
        created = now - rng.uniform(60 * 86400, 800 * 86400)
        out.append({
            "@odata.type": odata_type,
            "id": guid(rng),
            "createdDateTime": format_ts(created, frac=True),
            "description": f"{name} (managed by the endpoint team)",
            "lastModifiedDateTime": format_ts(created + rng.uniform(0, 50 * 86400), frac=True),
            "displayName": name,
            "version": rng.randrange(1, 9),
            **settings,
            "visible_at": 0.0,
        })
    return out


def make_device_configurations(rng: random.Random, now: float) -> list[dict]:
    specs = (
        ("#microsoft.graph.windows10GeneralConfiguration", "Windows - Device restrictions",
         {"passwordRequired": True, "passwordMinimumLength": 12, "screenCaptureBlocked": False, "bluetoothBlocked": False,
          "cameraBlocked": False, "defenderRequireRealTimeMonitoring": True, "smartScreenEnableAppInstallControl": True}),
        ("#microsoft.graph.windows10EndpointProtectionConfiguration", "Windows - Endpoint protection",
         {"firewallBlockStatefulFTP": True, "bitLockerEncryptDevice": True, "defenderAttackSurfaceReductionExcludedPaths": [],
          "applicationGuardEnabled": False, "smartScreenBlockOverrideForFiles": True}),
        ("#microsoft.graph.windowsUpdateForBusinessConfiguration", "Windows Update ring - Broad",
         {"deliveryOptimizationMode": "httpWithPeeringNat", "qualityUpdatesDeferralPeriodInDays": 7,
          "featureUpdatesDeferralPeriodInDays": 30, "automaticUpdateMode": "autoInstallAtMaintenanceTime"}),
        ("#microsoft.graph.iosGeneralDeviceConfiguration", "iOS - Device restrictions",
         {"passcodeRequired": True, "passcodeMinimumLength": 6, "cameraBlocked": False, "iCloudBlockBackup": True}),
        ("#microsoft.graph.androidGeneralDeviceConfiguration", "Android - Device restrictions",
         {"passwordRequired": True, "passwordMinimumLength": 6, "cameraBlocked": False, "storageRequireDeviceEncryption": True}),
        ("#microsoft.graph.macOSGeneralDeviceConfiguration", "macOS - Device restrictions",
         {"passwordRequired": True, "passwordMinimumLength": 10, "passwordBlockSimple": True}),
        ("#microsoft.graph.windows10CustomConfiguration", "Windows - Custom OMA-URI (LSA protection)",
         {"omaSettings": [{"@odata.type": "#microsoft.graph.omaSettingInteger", "displayName": "RunAsPPL",
                           "omaUri": "./Device/Vendor/MSFT/Policy/Config/LocalSecurityAuthority/ConfigureLsaProtectedProcess",
                           "value": 1}]}),
        ("#microsoft.graph.iosUpdateConfiguration", "iOS - Update policy",
         {"activeHoursStart": "08:00:00.0000000", "activeHoursEnd": "17:00:00.0000000", "scheduledInstallDays": ["saturday"]}),
    )
    out = []
    for odata_type, name, settings in specs:
        created = now - rng.uniform(60 * 86400, 800 * 86400)
        out.append({
            "@odata.type": odata_type,
            "id": guid(rng),
            "lastModifiedDateTime": format_ts(created + rng.uniform(0, 50 * 86400), frac=True),
            "createdDateTime": format_ts(created, frac=True),
            "description": f"{name}",
            "displayName": name,
            "version": rng.randrange(1, 9),
            **settings,
            "visible_at": 0.0,
        })
    return out


# (activity, activityType, activityOperationType, componentName, category, resource type)
_INTUNE_ACTIVITIES = (
    ("Wipe ManagedDevice", "Wipe ManagedDevice", "Action", "DeviceManagement", "Device", "ManagedDevice"),
    ("Sync ManagedDevice", "Sync ManagedDevice", "Action", "DeviceManagement", "Device", "ManagedDevice"),
    ("Patch DeviceCompliancePolicy", "Patch DeviceCompliancePolicy", "Patch", "DeviceCompliance", "Compliance", "DeviceCompliancePolicy"),
    ("Create DeviceConfiguration", "Create DeviceConfiguration", "Create", "DeviceConfiguration", "DeviceConfiguration", "DeviceConfiguration"),
    ("Assign MobileApp", "Assign MobileApp", "Create", "MobileApps", "Application", "MobileApp"),
    ("Delete ManagedDevice", "Delete ManagedDevice", "Delete", "DeviceManagement", "Device", "ManagedDevice"),
    ("Retire ManagedDevice", "Retire ManagedDevice", "Action", "DeviceManagement", "Device", "ManagedDevice"),
)


def make_intune_audit_event(rng: random.Random, when: float, user: tuple) -> dict:
    act = _INTUNE_ACTIVITIES[rng.randrange(len(_INTUNE_ACTIVITIES))]
    ok = rng.random() > 0.05
    return {
        "id": guid(rng),
        "displayName": act[0],
        "componentName": act[3],
        "actor": {
            "type": "ItPro", "auditActorType": "ItPro", "userPermissions": ["*"], "applicationId": "0000000a-0000-0000-c000-000000000000",
            "applicationDisplayName": "Microsoft Intune portal extension", "userPrincipalName": user[2],
            "servicePrincipalName": None, "ipAddress": f"{_LOCATIONS[rng.randrange(len(_LOCATIONS))][5]}.{rng.randrange(256)}",
            "userId": user[0], "remoteTenantId": None, "remoteUserId": None,
        },
        "activity": act[0],
        "activityDateTime": ts(when),
        "activityType": act[1],
        "activityOperationType": act[2],
        "activityResult": "Success" if ok else "Failure",
        "correlationId": guid(rng),
        "resources": [{"displayName": act[5], "modifiedProperties": [
            {"displayName": "Version", "oldValue": str(rng.randrange(1, 5)), "newValue": str(rng.randrange(5, 9))}],
            "type": act[5], "auditResourceType": act[5], "resourceId": guid(rng)}],
        "category": act[4],
        "visible_at": 0.0,
    }


# --------------------------------------------------------------------------- changes

def change_managed_device(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    new["lastSyncDateTime"] = format_ts(now - rng.uniform(0, 300))
    new["complianceState"] = _COMPLIANCE[rng.randrange(len(_COMPLIANCE))]
    return new


def change_policy(rng: random.Random, o: dict, now: float) -> dict:
    new = dict(o)
    new["version"] = int(o.get("version") or 1) + 1
    new["lastModifiedDateTime"] = format_ts(now, frac=True)
    return new
