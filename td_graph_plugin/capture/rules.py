"""What ``td-graph capture`` replaces, by field name and by pattern.

Key rules name the Graph properties whose whole value is personal or free text (matched
case-insensitively, wherever they appear); the patterns catch identifiers anywhere else
(GUIDs, mail addresses and UPNs, IP and MAC addresses, Windows SIDs, tenant domains).  A name
replaced once is also replaced wherever else it appears in the capture (``Scrubber`` keeps
them), so a user's name quoted inside another object's text does not survive either.
"""

from __future__ import annotations

import re

__all__ = [
    "CATEGORIES",
    "NAME_KEYS",
    "NAME_SUFFIXES",
    "PERSON_KEYS",
    "PHONE_KEYS",
    "SERIAL_KEYS",
    "MAC_KEYS",
    "TEXT_KEYS",
    "JSON_TEXT_KEYS",
    "TEXT_CONTAINERS",
    "GEO_KEYS",
    "KEEP_KEYS",
    "PUBLIC_GUIDS",
    "KEEP_PAIRS",
    "GUID",
    "HEX32",
    "EMAIL",
    "TENANT_DOMAIN",
    "IPV4",
    "IPV6_CANDIDATE",
    "MAC",
    "SID",
    "CONTINUATION_PARAMS",
    "REQUEST_HEADERS",
    "RESPONSE_HEADERS",
    "CSV_COLUMNS",
]

# Placeholder categories (the scrub report counts replacements per field and category).
CATEGORIES = ("guid", "email", "domain", "ipv4", "ipv6", "mac", "sid", "name", "phone", "serial",
              "text", "token", "geo")

# Names of people, devices, apps, groups, places: replaced whole ("name-<hash>").
NAME_KEYS = frozenset(k.lower() for k in (
    "displayName", "givenName", "surname", "userDisplayName", "accountName", "userName",
    "mailNickname", "onPremisesSamAccountName", "samAccountName", "jobTitle", "department",
    "companyName", "officeLocation", "streetAddress", "postalCode", "city", "ntDomain",
    "loggedOnUser", "deviceName", "managedDeviceName", "publisherDomain", "name",
))
NAME_SUFFIXES = ("displayname", "dnsname", "hostname", "devicename", "domainname", "tenantname",
                 "principalname")
# A person: a mail address/UPN when it looks like one (pattern, so it matches other places),
# otherwise a name.
PERSON_KEYS = frozenset(k.lower() for k in (
    "userPrincipalName", "mail", "emailAddress", "assignedTo", "createdBy", "updatedBy",
    "lastModifiedBy", "initiatedBy", "otherMails", "proxyAddresses", "imAddresses",
    "sender", "recipient", "p1Sender", "p2Sender",
))
PHONE_KEYS = frozenset(k.lower() for k in ("businessPhones", "mobilePhone", "phoneNumber", "faxNumber", "phone"))
SERIAL_KEYS = frozenset(k.lower() for k in (
    "serialNumber", "imei", "meid", "udid", "iccid", "easDeviceId", "mdeDeviceId", "employeeId",
    "onPremisesImmutableId", "subscriberCarrier", "hardwareSerial",
))
MAC_KEYS = frozenset(k.lower() for k in ("wiFiMacAddress", "ethernetMacAddress", "macAddress"))
# Free text that may quote anyone: replaced whole ("text-<hash>").
TEXT_KEYS = frozenset(k.lower() for k in (
    "description", "comment", "title", "recommendedActions", "reason", "resultReason",
    "failureReason", "additionalDetails", "processCommandLine", "commandLine", "filePath",
    "fileName", "registryKey", "registryValue", "registryValueName", "url", "urls", "subject",
    "notes", "userAgent", "customData", "resolvingComment", "summary", "justification",
    "remediationStatusDetails", "statusDetails", "errorMessage",
))
# Free text that is often a JSON document: scrubbed as JSON when it parses, else as text.
JSON_TEXT_KEYS = frozenset(k.lower() for k in ("additionalInfo", "oldValue", "newValue"))
# Every string inside these objects/lists is free text (e.g. directoryAudit additionalDetails).
TEXT_CONTAINERS = frozenset(k.lower() for k in ("additionalDetails", "details", "modifiedProperties"))
# Coordinates: replaced by 0.0 (a sign-in's location).
GEO_KEYS = frozenset(("latitude", "longitude", "altitude"))
# Left exactly as they are: what td-graph's licence and permission discovery reads.
KEEP_KEYS = frozenset(k.lower() for k in (
    "@odata.type", "capabilityStatus", "provisioningStatus", "servicePlanName", "skuPartNumber",
    "appliesTo", "@odata.count",
))

# (parent key, key) pairs left as they are: a delta removal's reason, a permission's name.
# Microsoft Graph's own app roles and consent scopes are public permission names, not data.
KEEP_PAIRS = frozenset({("@removed", "reason"), ("approles", "value"), ("approles", "displayname"),
                        ("approles", "description"), ("pendingscopes", "displayname")})

# Identifiers that are Microsoft's own and the same in every tenant (never personal data):
# Microsoft Graph's appId, which td-graph's discovery names in its request.
PUBLIC_GUIDS = frozenset({"00000003-0000-0000-c000-000000000000"})

GUID = re.compile(r"(?i)(?<![0-9a-f])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9a-f])")
# A GUID written without dashes (provisioning job ids embed the tenant id so).
HEX32 = re.compile(r"(?i)(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
EMAIL = re.compile(r"(?i)(?<![\w.%+#'!&-])[\w.%+#'!&-]+@(?:[a-z0-9-]+\.)+[a-z]{2,}(?![\w-])")
TENANT_DOMAIN = re.compile(r"(?i)(?<![\w.-])[a-z0-9-]+\.onmicrosoft\.(?:com|us|cn|de)(?![\w-])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\d.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)")
IPV6_CANDIDATE = re.compile(r"(?i)(?<![\w:.])[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?![\w:])")
MAC = re.compile(r"(?i)(?<![0-9a-f:-])(?:[0-9a-f]{2}[:-]){5}[0-9a-f]{2}(?![0-9a-f:-])")
# Domain and Entra object SIDs (well-known SIDs such as S-1-5-18 are nobody's).
SID = re.compile(r"S-1-(?:5-21|12-1)(?:-\d+){3,4}")

# Server-issued paging state: opaque, and it may encode object ids or names (hashed whole).
CONTINUATION_PARAMS = frozenset(("$skiptoken", "$deltatoken", "skiptoken", "deltatoken"))

# The request headers a cassette keeps (Authorization, cookies, telemetry never).
REQUEST_HEADERS = frozenset(h.lower() for h in ("Accept", "Prefer", "ConsistencyLevel", "Content-Type", "User-Agent"))
# The response headers that matter to td-graph (throttling, paging, redirects, diagnostics).
RESPONSE_HEADERS = frozenset(h.lower() for h in (
    "request-id", "client-request-id", "Date", "Retry-After", "Location", "Content-Type",
    "OData-Version", "Preference-Applied", "Warning", "x-ms-throttle-limit-percentage",
    "x-ms-throttle-scope", "x-ms-throttle-information", "x-ms-resource-unit",
))

# Usage-report CSV columns that name a person (others get the pattern pass).
CSV_COLUMNS = {"user principal name": "person", "display name": "name"}
