"""Writes cassettes/{sources,errors,auth}/*.yaml from Microsoft's documented responses.

Run from the repository root: python scripts/cassettes/build.py
(docdata.py beside it holds the objects transcribed from Microsoft's documentation.)
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import uuid
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote_plus

import requests
import yaml
from vcr.request import Request as VcrRequest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE))

import docdata as D  # noqa: E402
from td_graph_plugin.collector.window import build_time_filter  # noqa: E402
from td_graph_plugin.graph.http import user_agent  # noqa: E402
from tests import vcr_support as V  # noqa: E402

ROOT = HERE.parent.parent / "cassettes"
NS = uuid.UUID("6f1f3c1e-7d52-4a53-9d1f-2b2c5a4e9a11")
GRAPH = V.GRAPH
TID = V.TENANT_ID
CAT = V.catalogue()
UA = user_agent()
CT_ODATA = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


def uid(*parts) -> str:
    return str(uuid.uuid5(NS, "/".join(str(p) for p in parts)))


def http_date(offset_s: int = 0) -> str:
    return format_datetime(V.NOW + timedelta(seconds=offset_s), usegmt=True)


_VCR = V.graph_vcr()
_FILTER = _VCR._build_before_record_request({})


class Literal(str):
    pass


def _literal(dumper, data):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")


yaml.add_representer(Literal, _literal)


def pretty(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


class Cassette:
    def __init__(self, name: str, comment: str):
        self.name = name
        self.comment = comment
        self.interactions: list[dict] = []

    # --- requests ------------------------------------------------------------------
    def _add(self, method, uri, req_headers, body, status, message, resp_headers, resp_body):
        req = VcrRequest(method, uri, body, {k: v for k, v in req_headers.items()})
        req = _FILTER(req)
        rbody = req.body
        if isinstance(rbody, bytes):
            rbody = rbody.decode()
        response = {
            "status": {"code": status, "message": message},
            "headers": {k: [v] for k, v in resp_headers.items()},
            "body": {"string": resp_body},
        }
        response = V.scrub_token_response(response)
        sb = response["body"]["string"]
        self.interactions.append(
            {
                "request": {
                    "method": method,
                    "uri": req.uri,
                    "body": rbody,
                    "headers": {k: [v] for k, v in req.headers.items()},
                },
                "response": {
                    "status": response["status"],
                    "headers": response["headers"],
                    "body": {"string": Literal(sb) if ("\n" in sb) else sb},
                },
            }
        )

    def msal(self, token_posts: int = 1):
        n = len(self.interactions)
        self._add(
            "GET",
            f"{V.LOGIN}/{TID}/v2.0/.well-known/openid-configuration",
            {"User-Agent": UA, "Accept-Encoding": "gzip, deflate", "Accept": "*/*", "Connection": "keep-alive"},
            None,
            200,
            "OK",
            {
                "Cache-Control": "max-age=86400, private",
                "Content-Type": "application/json; charset=utf-8",
                "Access-Control-Allow-Origin": "*",
                "Date": http_date(),
            },
            pretty(D.openid_configuration(TID)),
        )
        for i in range(token_posts):
            self.token(i)

    def token(self, i=0):
        body = (
            f"client_id={V.CLIENT_ID}&grant_type=client_credentials&client_info=1"
            f"&client_secret={quote_plus(V.CLIENT_SECRET)}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
        )
        # A JWT-shaped token goes in; scrub_token_response must turn it into REDACTED.
        fake_jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + "eyJhdWQiOiJodHRwczovL2dyYXBoLm1pY3Jvc29mdC5jb20ifQ" + ".c2ln"
        self._add(
            "POST",
            f"{V.LOGIN}/{TID}/oauth2/v2.0/token",
            {
                "User-Agent": UA,
                "Accept-Encoding": "gzip, deflate",
                "Accept": "application/json",
                "Connection": "keep-alive",
                "x-client-sku": "MSAL.Python",
                "x-client-ver": "1.39.0",
                "x-client-os": "linux",
                "x-ms-lib-capability": "retry-after, h429",
                "client-request-id": uid(self.name, "token", i),
                "x-client-current-telemetry": "4|730,2|",
                "x-client-last-telemetry": "4|0|||",
                "Content-Length": str(len(body)),
                "Content-Type": "application/x-www-form-urlencoded",
            },
            body.encode(),
            200,
            "OK",
            {
                "Cache-Control": "no-store, no-cache",
                "Pragma": "no-cache",
                "Content-Type": "application/json; charset=utf-8",
                "Expires": "-1",
                "x-ms-request-id": uid(self.name, "token-reqid", i),
                "client-request-id": uid(self.name, "token", i),
                "Date": http_date(i),
            },
            json.dumps({"token_type": "Bearer", "expires_in": 3599, "access_token": fake_jwt}),
        )

    def graph(self, uri, status=200, body=None, *, prefer=None, auth=True, accept_json=True,
              message="OK", resp_headers=None, content_type=CT_ODATA, text=None):
        i = len(self.interactions)
        crid = uid(self.name, i, "client-request-id")
        h = {"User-Agent": UA, "Accept-Encoding": "gzip, deflate"}
        h["Accept"] = "application/json" if accept_json else "*/*"
        h["Connection"] = "keep-alive"
        if prefer:
            h["Prefer"] = prefer
        h["client-request-id"] = crid
        if auth:
            h["Authorization"] = "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.c2ln"  # filtered away
        rh = {"Cache-Control": "no-cache"}
        if content_type:
            rh["Content-Type"] = content_type
        if auth:
            rh["request-id"] = uid(self.name, i, "request-id")
            rh["client-request-id"] = crid
        rh["Strict-Transport-Security"] = "max-age=31536000"
        rh["Date"] = http_date(i)
        if status < 300 and content_type == CT_ODATA:
            rh["OData-Version"] = "4.0"
        inner = (body or {}).get("error", {}).get("innerError") if isinstance(body, dict) else None
        if auth and inner and inner.get("request-id"):
            rh["request-id"] = inner["request-id"]  # Graph's header and innerError agree
        rh.update(resp_headers or {})
        if text is None:
            text = pretty(body) if body is not None else ""
        self._add("GET", uri, h, None, status, message, rh, text)

    def write(self, sub: str):
        path = ROOT / sub / f"{self.name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        header = "".join(f"# {line}\n" if line else "#\n" for line in self.comment.strip("\n").splitlines())
        text = yaml.dump(
            {"interactions": self.interactions, "version": 1},
            allow_unicode=True,
            sort_keys=False,
            width=100000,
            default_flow_style=False,
        )
        path.write_text(header + text, encoding="utf-8")
        return path


# --- URL helpers -------------------------------------------------------------------
def prepared(url: str, params: dict | None = None) -> str:
    """The URL exactly as requests + urllib3 put it on the wire."""
    import urllib3

    return urllib3.util.parse_url(requests.Request("GET", url, params=params).prepare().url).url


def _q(value: str) -> str:
    # Graph echoes query values in nextLinks with '+' for spaces and lower-case escapes
    # (e.g. "activityDateTime+ge+2018-07-16T15%3a48%3a00"; "%2c%27" in the signIns doc).
    out = quote_plus(value, safe="()/$-_.~")
    import re

    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), out)


def next_link(url: str, params: dict | None, token: str) -> str:
    parts = [f"{k}={_q(v)}" for k, v in (params or {}).items()]
    parts.append(f"$skiptoken={token}")
    return url + "?" + "&".join(parts)


def token_for(name: str, n: int = 1) -> str:
    return hashlib.sha256(f"{name}/{n}".encode()).hexdigest()[:48]


def first_params(spec, lower, upper) -> dict:
    params = dict(spec.params)
    if spec.page_size is not None:
        params["$top"] = str(spec.page_size)
    if spec.select:
        params["$select"] = ",".join(spec.select)
    if spec.mode == "window":
        params["$filter"] = build_time_filter(spec.time_field, spec.filter_ops, lower, upper, spec.extra_filter)
    return params


def base_url(spec) -> str:
    return f"{GRAPH}/{spec.version}{spec.path}"


def context(spec, suffix: str | None = None) -> str:
    return f"{GRAPH}/{spec.version}/$metadata#{suffix or spec.path.lstrip('/')}"


PROVENANCE = "Built from Microsoft's documented example responses (microsoftgraph/microsoft-graph-docs-contrib);\nrequests are exactly those td-graph sends at NOW = 2026-11-26T12:00:00Z (tests/vcr_support.py).\nSecrets: Authorization is 'Bearer REDACTED', client_secret is removed, the issued token reads REDACTED."


# --- window sources ------------------------------------------------------------------
def window_cassette(name, doc, page1, page2, *, context_suffix=None, extra_p1=None, extra_p2=None,
                    skiptoken=None, notes=""):
    spec = CAT[name]
    prefer = spec.headers.get("Prefer")
    wins = V.planned_windows(spec, V.NOW)
    c = Cassette(name, f"{name}: GET /{spec.version}{spec.path}\nSource: {doc}\n{notes}\n{PROVENANCE}")
    c.msal()
    url = base_url(spec)
    for n, (lo, hi) in enumerate(wins):
        params = first_params(spec, lo, hi)
        uri = prepared(url, params)
        if n == 0:
            nl = next_link(url, params, skiptoken or token_for(name))
            b1 = {"@odata.context": context(spec, context_suffix)}
            b1.update(extra_p1 or {})
            b1["@odata.nextLink"] = nl
            b1["value"] = page1
            c.graph(uri, body=b1, prefer=prefer)
            b2 = {"@odata.context": context(spec, context_suffix)}
            b2.update(extra_p2 or {})
            b2["value"] = page2
            c.graph(prepared(nl), body=b2, prefer=prefer)
        else:
            c.graph(uri, body={"@odata.context": context(spec, context_suffix), "value": []}, prefer=prefer)
    return c


def snapshot_cassette(name, doc, page1, page2, *, context_suffix=None, extra_p1=None, notes=""):
    spec = CAT[name]
    prefer = spec.headers.get("Prefer")
    c = Cassette(name, f"{name}: GET /{spec.version}{spec.path}\nSource: {doc}\n{notes}\n{PROVENANCE}")
    c.msal()
    url = base_url(spec)
    params = first_params(spec, None, None) or None
    nl = next_link(url, params, token_for(name))
    b1 = {"@odata.context": context(spec, context_suffix)}
    b1.update(extra_p1 or {})
    b1["@odata.nextLink"] = nl
    b1["value"] = page1
    c.graph(prepared(url, params), body=b1, prefer=prefer)
    c.graph(prepared(nl), body={"@odata.context": context(spec, context_suffix), "value": page2}, prefer=prefer)
    return c


def delta_cassette(name, doc, pages, *, round2=None, notes=""):
    """pages: response bodies of the first full round (the last carries the deltaLink)."""
    spec = CAT[name]
    c = Cassette(name, f"{name}: GET /{spec.version}{spec.path}\nSource: {doc}\n{notes}\n{PROVENANCE}")
    c.msal()
    url = base_url(spec)
    params = first_params(spec, None, None) or None
    c.graph(prepared(url, params), body=pages[0])
    for prev, body in zip(pages, pages[1:]):
        c.graph(prepared(prev["@odata.nextLink"]), body=body)
    if round2 is not None:
        c.graph(prepared(pages[-1]["@odata.deltaLink"]), body=round2)
    return c


def build_sources():
    out = []
    doc = D.DOCS + ":api-reference/v1.0/api/"
    replay_note = ("Page 2 (the nextLink) returns the same documented object again: the docs give one\n"
                   "object only, and a replay across pages is what the collector must de-duplicate.")
    out.append(window_cassette(
        "security.alerts_v2", doc + "security-list-alerts_v2.md", [D.ALERT], [D.ALERT],
        context_suffix="security/alerts_v2",
        notes=replay_note + "\nThe nextLink's $skiptoken value is synthetic (opaque; not given by the docs)."))
    out.append(window_cassette(
        "security.incidents", doc + "security-list-incidents.md (Example 1)", [D.INCIDENT], [D.INCIDENT],
        context_suffix="security/incidents",
        notes=replay_note + "\nThe nextLink's $skiptoken value is synthetic (opaque; not given by the docs)."))
    out.append(window_cassette(
        "security.secure_scores", doc + "security-list-securescores.md", [D.SECURE_SCORE], [D.SECURE_SCORE],
        context_suffix="security/secureScores",
        notes=replay_note + "\nThe nextLink's $skiptoken value is synthetic (opaque; not given by the docs)."))
    out.append(snapshot_cassette(
        "security.secure_score_control_profiles", doc + "security-list-securescorecontrolprofiles.md",
        [D.CONTROL_PROFILE], [], context_suffix="security/secureScoreControlProfiles",
        notes="Doc JSON fix: trailing comma after certificationControls[0].url removed.\n"
              "Page 2 is an empty last page (\"a page of results may contain zero or more results\", concepts/paging.md);\n"
              "the nextLink's $skiptoken value is synthetic."))
    out.append(window_cassette(
        "identity_protection.risky_users",
        doc + "riskyuser-list.md (page 1, verbatim: the v1.0 doc's schema-placeholder object) and\n"
        "  api-reference/beta/api/riskyusers-list.md Response 2 (page 2; trailing comma and stray braces removed)",
        [D.RISKY_USER_V1_PLACEHOLDER], [D.RISKY_USER_JON], context_suffix="identityProtection/riskyUsers",
        notes="lookback 7d in 1d chunks: six more windows follow, each an empty page.\n"
              "The nextLink's $skiptoken value is synthetic."))
    out.append(window_cassette(
        "identity_protection.risk_detections", doc + "riskdetection-list.md", [D.RISK_DETECTION], [D.RISK_DETECTION],
        context_suffix="identityProtection/riskDetections",
        notes=replay_note + "\nlookback 7d in 1d chunks: six more windows follow, each an empty page.\n"
              "additionalInfo is a JSON-encoded string in the docs and stays one."))
    out.append(window_cassette(
        "identity_protection.risky_service_principals", doc + "identityprotectionroot-list-riskyserviceprincipals.md",
        [D.RISKY_SP], [D.RISKY_SP], context_suffix="riskyServicePrincipal",
        notes=replay_note + "\nlookback 7d in 1d chunks: six more windows follow, each an empty page."))
    out.append(window_cassette(
        "identity_protection.service_principal_risk_detections",
        doc + "identityprotectionroot-list-serviceprincipalriskdetections.md (Example 1)",
        [D.SP_RISK_DETECTION], [D.SP_RISK_DETECTION], context_suffix="identityProtection/servicePrincipalRiskDetections",
        notes=replay_note + "\nlookback 7d in 1d chunks: six more windows follow, each an empty page.\n"
              "lastUpdatedDateTime keeps the doc's malformed '...8202975Z)'."))
    out.append(window_cassette(
        "audit_logs.sign_ins", doc + "signin-list.md (Example 1)", [D.SIGN_IN], [D.SIGN_IN],
        context_suffix="auditLogs/signIns", skiptoken="9177f2e3532fcd4c4d225f68f7b9bdf7_1",
        notes=replay_note + "\nDoc JSON fix: trailing comma after the last appliedConditionalAccessPolicies entry removed.\n"
              "The $skiptoken is the documented one."))
    for suffix in ("non_interactive", "service_principal", "managed_identity"):
        out.append(window_cassette(
            f"audit_logs.sign_ins_{suffix}",
            D.DOCS + ":api-reference/beta/api/signin-list.md (Example 1; Example 2 gives the nextLink's $skiptoken)",
            [D.SIGN_IN_BETA], [D.SIGN_IN_BETA], context_suffix="auditLogs/signIns",
            skiptoken="3cff228c89605cc89b0dc753668deef4153e8644caa6d83ed1bb5f711b21cba4",
            notes=replay_note + "\nThe docs give no example for this signInEventTypes value: the documented beta\n"
                  "sign-in (signInEventTypes [interactiveUser]) is reused unchanged.\n"
                  "The doc repeats three keys; the value a JSON parser keeps (the last) is written."))
    out.append(window_cassette(
        "audit_logs.directory_audits", doc + "directoryaudit-list.md (Example 1 on page 1, Example 2 on page 2)",
        [D.DIRECTORY_AUDIT_1], [D.DIRECTORY_AUDIT_2], context_suffix="auditLogs/directoryAudits",
        extra_p2={"@microsoft.graph.tips": D.DIRECTORY_AUDIT_TIPS},
        notes="The nextLink's $skiptoken value is synthetic."))
    out.append(window_cassette(
        "audit_logs.provisioning", doc + "provisioningobjectsummary-list.md (Example 1 on page 1, Example 2 on page 2)",
        [D.PROVISIONING_1], [D.PROVISIONING_2], context_suffix="auditLogs/provisioning",
        notes="Doc JSON fix: trailing comma after the last modifiedProperties entry of Example 1 removed.\n"
              "The nextLink's $skiptoken value is synthetic."))
    out.append(window_cassette(
        "intune.audit_events", doc + "intune-auditing-auditevent-list.md", [D.AUDIT_EVENT], [D.AUDIT_EVENT],
        context_suffix="deviceManagement/auditEvents",
        notes=replay_note + "\nThe nextLink's $skiptoken value is synthetic."))
    # --- delta ---------------------------------------------------------------------------
    out.append(delta_cassette(
        "directory.users", D.DOCS + ":concepts/delta-query-users.md (initial, nextLink, final nextLink, deltaLink round)",
        D.USERS_DELTA, round2=D.USERS_DELTA_ROUND2,
        notes="td-graph sends its own $select (the security-relevant properties; the documented initial\n"
              "request selected displayName,givenName,jobTitle,mobilePhone), so page 1's @odata.context names\n"
              "the documented selection; bodies are verbatim."))
    out.append(delta_cassette(
        "directory.groups", D.DOCS + ":concepts/delta-query-groups.md (initial, nextLink, final nextLink, deltaLink round)",
        D.GROUPS_DELTA, round2=D.GROUPS_DELTA_ROUND2,
        notes="td-graph sends its own $select and no $expand (the documented initial request had both); bodies verbatim.\n"
              "The third request follows the documented nextLink value (the doc's request line shows a typo 'ppqw...')."))
    dev = CAT["directory.devices"]
    out.append(delta_cassette(
        "directory.devices",
        doc + "device-delta.md (page 1) and device-get.md Example 1 (page 2)",
        [
            {"@odata.context": context(dev, "devices"),
             "@odata.nextLink": f"{GRAPH}/v1.0/devices/delta?$skiptoken={D.DELTA_SKIPTOKEN}",
             "value": [D.DEVICE_DELTA]},
            {"@odata.context": context(dev, "devices"),
             "@odata.deltaLink": f"{GRAPH}/v1.0/devices/delta?$deltatoken={token_for('directory.devices', 'delta')}",
             "value": [D.DEVICE_GET]},
        ],
        notes="The deltaLink's $deltatoken value is synthetic (opaque; the device docs give none)."))
    out.append(delta_cassette(
        "directory.applications",
        doc + "application-delta.md (envelope and nextLink) with the application objects of\n"
        "  application-list.md Example 5 (the delta example object is truncated: it has no id)",
        [
            {"@odata.context": f"{GRAPH}/v1.0/$metadata#applications",
             "@odata.nextLink": f"{GRAPH}/v1.0/applications/delta?$skiptoken={D.DELTA_SKIPTOKEN}",
             "value": D.APPS[:2]},
            {"@odata.context": f"{GRAPH}/v1.0/$metadata#applications",
             "@odata.deltaLink": f"{GRAPH}/v1.0/applications/delta?$deltatoken={token_for('directory.applications', 'delta')}",
             "value": D.APPS[2:]},
        ],
        notes="The deltaLink's $deltatoken value is synthetic."))
    out.append(delta_cassette(
        "directory.service_principals",
        doc + "serviceprincipal-delta.md (envelope and nextLink) with the objects of serviceprincipal-list.md\n"
        "  (page 1) and serviceprincipal-get.md Example 1 (page 2) (the delta example object has no id)",
        [
            {"@odata.context": f"{GRAPH}/v1.0/$metadata#servicePrincipals",
             "@odata.nextLink": f"{GRAPH}/v1.0/servicePrincipals/delta?$skiptoken={D.DELTA_SKIPTOKEN}",
             "value": [D.SP_LIST]},
            {"@odata.context": f"{GRAPH}/v1.0/$metadata#servicePrincipals",
             "@odata.deltaLink": f"{GRAPH}/v1.0/servicePrincipals/delta?$deltatoken={token_for('directory.service_principals', 'delta')}",
             "value": [D.SP_GET]},
        ],
        notes="The deltaLink's $deltatoken value is synthetic."))
    # --- snapshot ------------------------------------------------------------------------
    empty_note = ("Page 2 is an empty last page (\"a page of results may contain zero or more results\",\n"
                  "concepts/paging.md); the nextLink's $skiptoken value is synthetic.")
    out.append(snapshot_cassette(
        "governance.app_consent_requests", doc + "appconsentrequest-list.md", [D.APP_CONSENT], [],
        context_suffix="identityGovernance/appConsent/appConsentRequests", extra_p1={"@odata.count": 1},
        notes=empty_note))
    out.append(snapshot_cassette(
        "intune.managed_devices", doc + "intune-devices-manageddevice-list.md", [D.MANAGED_DEVICE], [],
        context_suffix="deviceManagement/managedDevices", notes=empty_note))
    out.append(snapshot_cassette(
        "intune.compliance_policies", doc + "intune-deviceconfig-devicecompliancepolicy-list.md", [D.COMPLIANCE_POLICY], [],
        context_suffix="deviceManagement/deviceCompliancePolicies", notes=empty_note))
    out.append(snapshot_cassette(
        "intune.device_configurations", doc + "intune-deviceconfig-deviceconfiguration-list.md", [D.DEVICE_CONFIGURATION], [],
        context_suffix="deviceManagement/deviceConfigurations", notes=empty_note))
    out.append(snapshot_cassette(
        "reports.user_registration_details", doc + "authenticationmethodsroot-list-userregistrationdetails.md",
        D.USER_REGISTRATION[:2], D.USER_REGISTRATION[2:],
        context_suffix="reports/authenticationMethods/userRegistrationDetails",
        notes="The documented three objects split over two pages; the nextLink's $skiptoken value is synthetic."))
    # --- the usage report: 302 then a pre-authenticated CSV ------------------------------
    spec = CAT["reports.office365_active_users"]
    c = Cassette(
        spec.name,
        f"{spec.name}: GET /v1.0{spec.path}\nSource: {doc}reportroot-getoffice365activeuserdetail.md\n"
        "302 Found with the documented Location (a pre-authenticated download URL), then the CSV.\n"
        "The CSV's header line is the documented one; its data row transcribes the documented JSON example\n"
        "of the same report (api-reference/beta/api/reportroot-getoffice365activeuserdetail.md).\n"
        "The download request carries no Authorization header (test_cassettes_sources checks the played request).\n"
        + PROVENANCE,
    )
    c.msal()
    c.graph(base_url(spec), status=302, message="Found", accept_json=False, content_type="text/plain",
            resp_headers={"Location": D.O365_LOCATION}, text="")
    csv_text = D.O365_CSV_HEADER + "\n" + D.O365_CSV_ROW + "\n"
    c.graph(D.O365_LOCATION, auth=False, accept_json=False, content_type="application/octet-stream", text=csv_text)
    out.append(c)
    for cas in out:
        cas.write("sources")
    return out


def err(code, message, date, rid, extra_inner=None, details=None):
    inner = {"date": date, "request-id": rid, "client-request-id": rid}
    inner.update(extra_inner or {})
    e = {"code": code, "message": message}
    if details is not None:
        e["details"] = details
    e["innerError"] = inner
    return {"error": e}


def build_errors():
    out = []
    # 1. incidents $top=100 -> 400 with an empty code; the compliant $top=50 request -> 200.
    spec = CAT["security.incidents"]
    (lo, hi), = V.planned_windows(spec, V.NOW)
    c = Cassette("incidents_top_over_50",
                 "security.incidents: $top above 50 is refused with HTTP 400 and an empty error.code.\n"
                 "The forbidden request ($top=100) is answered with the body observed in wazuh/wazuh#28070 (graph-facts 0.3);\n"
                 "the last interaction is the request td-graph actually sends ($top=50, no $expand) with the documented\n"
                 "incident (security-list-incidents.md). innerError ids are illustrative.\n" + PROVENANCE)
    c.msal()
    p_bad = first_params(spec, lo, hi)
    p_bad["$top"] = "100"
    c.graph(prepared(base_url(spec), p_bad), status=400, message="Bad Request", prefer="include-unknown-enum-members",
            content_type="application/json",
            body=err("", "The query specified in the URI is not valid. The limit of '50' for Top query has been exceeded. The value from the incoming request is '100'.",
                     "2026-11-26T12:00:01", uid("incidents_top_over_50", "rid"), details=[]))
    c.graph(prepared(base_url(spec), first_params(spec, lo, hi)), prefer="include-unknown-enum-members",
            body={"@odata.context": context(spec, "security/incidents"), "value": [D.INCIDENT]})
    out.append(c)

    # 2. riskDetections $top=501 -> 400; the compliant run ($top=500, seven windows) -> 200.
    spec = CAT["identity_protection.risk_detections"]
    wins = V.planned_windows(spec, V.NOW)
    c = Cassette("risk_detections_top_over_500",
                 "identity_protection.risk_detections: the documented maximum $top is 500 (riskdetection-list.md);\n"
                 "$top=501 fails (microsoftgraph/microsoft-graph-docs-contrib#8886, shown there only as a screenshot).\n"
                 "The 400 body is the OData top-limit message Graph returns for incidents (wazuh/wazuh#28070) with\n"
                 "'500'/'501' -- an inference, not a transcription. The compliant run follows: $top=500 in each of\n"
                 "the seven 1-day windows, the documented riskDetection in the first.\n" + PROVENANCE)
    c.msal()
    p_bad = first_params(spec, *wins[0])
    p_bad["$top"] = "501"
    c.graph(prepared(base_url(spec), p_bad), status=400, message="Bad Request", content_type="application/json",
            body=err("", "The query specified in the URI is not valid. The limit of '500' for Top query has been exceeded. The value from the incoming request is '501'.",
                     "2026-11-26T12:00:01", uid("risk_detections_top_over_500", "rid"), details=[]))
    for n, (lo, hi) in enumerate(wins):
        c.graph(prepared(base_url(spec), first_params(spec, lo, hi)),
                body={"@odata.context": context(spec, "identityProtection/riskDetections"),
                      "value": [D.RISK_DETECTION] if n == 0 else []})
    out.append(c)

    # 3. sign-ins with gt/lt -> 400 Invalid filter clause; the compliant ge/le -> 200.
    spec = CAT["audit_logs.sign_ins"]
    (lo, hi), = V.planned_windows(spec, V.NOW)
    c = Cassette("sign_ins_gt_filter",
                 "audit_logs.sign_ins: createdDateTime supports eq, le and ge only (signIn resource doc). A gt/lt filter\n"
                 "is answered 400 BadRequest 'Invalid filter clause' (body from microsoftgraph/microsoft-graph-docs#14173).\n"
                 "The last interaction is td-graph's own ge/le request with the documented sign-in (signin-list.md).\n" + PROVENANCE)
    c.msal()
    p_bad = dict(first_params(spec, lo, hi))
    p_bad["$filter"] = f"createdDateTime gt {lo:%Y-%m-%dT%H:%M:%SZ} and createdDateTime lt {hi:%Y-%m-%dT%H:%M:%SZ}"
    c.graph(prepared(base_url(spec), p_bad), status=400, message="Bad Request", content_type="application/json",
            body=err("BadRequest", "Invalid filter clause", "2021-09-07T07:11:46", "65525901-18fb-453f-b80a-beb8b2202811"))
    c.graph(prepared(base_url(spec), first_params(spec, lo, hi)),
            body={"@odata.context": context(spec, "auditLogs/signIns"), "value": [D.SIGN_IN]})
    out.append(c)

    # 4. 429 with Retry-After: 2.128, then success.
    c = Cassette("sign_ins_throttled",
                 "audit_logs.sign_ins: the first request is throttled with the documented sample (concepts/throttling.md,\n"
                 "older revision: 'Retry-After: 2.128', a fractional value); the retry succeeds with the documented sign-in.\n" + PROVENANCE)
    c.msal()
    uri = prepared(base_url(spec), first_params(spec, lo, hi))
    c.graph(uri, status=429, message="Too Many Requests", content_type="application/json",
            resp_headers={"Retry-After": "2.128"},
            body={"error": {"code": "TooManyRequests",
                            "innerError": {"code": "429", "date": "2020-08-18T12:51:51", "message": "Please retry after",
                                           "request-id": "94fb3b52-452a-4535-a601-69e0a90e3aa2", "status": "429"},
                            "message": "Please retry again later."}})
    c.graph(uri, body={"@odata.context": context(spec, "auditLogs/signIns"), "value": [D.SIGN_IN]})
    out.append(c)

    # 5. 403 licence: sign-ins without Entra ID P1/P2.
    c = Cassette("sign_ins_non_premium",
                 "audit_logs.sign_ins in a tenant without Entra ID P1/P2: 403 Authentication_RequestFromNonPremiumTenantOrB2CTenant\n"
                 "(body from microsoftgraph/microsoft-graph-docs#14118; the message is documented in the Entra reporting\n"
                 "prerequisites, graph-facts 0.3).\n" + PROVENANCE)
    c.msal()
    c.graph(uri, status=403, message="Forbidden", content_type="application/json",
            body=err("Authentication_RequestFromNonPremiumTenantOrB2CTenant", "Neither tenant is B2C or tenant doesn't have premium license",
                     "2021-09-02T14:32:39", "2501535b-2fd7-43e3-87db-c12cbe31fca0"))
    out.append(c)

    # 6. 403 Forbidden "Missing application roles" on alerts_v2.
    spec = CAT["security.alerts_v2"]
    (lo, hi), = V.planned_windows(spec, V.NOW)
    c = Cassette("alerts_missing_roles",
                 "security.alerts_v2 without SecurityAlert.Read.All: 403 Forbidden 'Missing application roles...'\n"
                 "(body from wazuh/wazuh-documentation#7300, whose request-ids were redacted: illustrative here).\n" + PROVENANCE)
    c.msal()
    c.graph(prepared(base_url(spec), first_params(spec, lo, hi)), status=403, message="Forbidden", content_type="application/json",
            prefer="include-unknown-enum-members",
            body=err("Forbidden", "Missing application roles. API required roles: SecurityAlert.Read.All,SecurityAlert.ReadWrite.All,SecurityIncident.Read.All,SecurityIncident.ReadWrite.All, application roles: .",
                     "2024-05-08T08:26:35", uid("alerts_missing_roles", "rid")))
    out.append(c)

    # 7. 403 Authentication_MSGraphPermissionMissing on provisioning.
    spec = CAT["audit_logs.provisioning"]
    (lo, hi), = V.planned_windows(spec, V.NOW)
    c = Cassette("provisioning_permission_missing",
                 "audit_logs.provisioning without AuditLog.Read.All: 403 Authentication_MSGraphPermissionMissing\n"
                 "(reported for /auditLogs/provisioning in microsoftgraph/microsoft-graph-explorer-v4#3165; full body with ids\n"
                 "from microsoftgraph/microsoft-graph-docs-contrib#8997).\n" + PROVENANCE)
    c.msal()
    c.graph(prepared(base_url(spec), first_params(spec, lo, hi)), status=403, message="Forbidden", content_type="application/json",
            body=err("Authentication_MSGraphPermissionMissing", "Calling principal does not have required MSGraph permissions AuditLog.Read.All",
                     "2024-01-08T09:15:19", "dabfb89f-d8ac-43e1-8f39-f15818a9f306"))
    out.append(c)

    # 8. 400 "Request not applicable to target tenant." on Intune.
    spec = CAT["intune.managed_devices"]
    c = Cassette("intune_not_applicable",
                 "intune.managed_devices in a tenant without an Intune licence: 400 BadRequest 'Request not applicable to\n"
                 "target tenant.' (body from microsoftgraph/msgraph-beta-sdk-go#198, whose innerError was elided:\n"
                 "illustrative here; reported for Intune reads, graph-facts 0.3).\n" + PROVENANCE)
    c.msal()
    c.graph(base_url(spec), status=400, message="Bad Request", content_type="application/json",
            body=err("BadRequest", "Request not applicable to target tenant.", "2023-01-04T10:00:00", uid("intune_not_applicable", "rid")))
    out.append(c)

    # 9. 410 Gone on a deltaLink, Location with an empty $deltatoken; then the full resync.
    spec = CAT["directory.users"]
    c = Cassette("users_delta_gone",
                 "directory.users: a full round (concepts/delta-query-users.md), then the stored deltaLink is answered\n"
                 "410 Gone with a Location header holding the initial query with an empty $deltaToken\n"
                 "(delta-query-overview.md, 'Synchronization reset'; no body is documented). td-graph starts over:\n"
                 "the documented full round again.\n" + PROVENANCE)
    c.msal()
    url = base_url(spec)
    for rnd in range(2):
        if rnd == 1:
            c.graph(prepared(D.USERS_DELTA[-1]["@odata.deltaLink"]), status=410, message="Gone",
                    content_type=None, resp_headers={"Location": f"{GRAPH}/v1.0/users/delta?$deltatoken="}, text="")
        c.graph(prepared(url, first_params(spec, None, None) or None), body=D.USERS_DELTA[0])
        for prev, body in zip(D.USERS_DELTA, D.USERS_DELTA[1:]):
            c.graph(prepared(prev["@odata.nextLink"]), body=body)
    out.append(c)

    # 10. 401 InvalidAuthenticationToken mid-paging, a new token, then success.
    spec = CAT["audit_logs.directory_audits"]
    (lo, hi), = V.planned_windows(spec, V.NOW)
    c = Cassette("directory_audits_token_expired",
                 "audit_logs.directory_audits: page 1 succeeds; the nextLink is refused 401 InvalidAuthenticationToken\n"
                 "'Access token has expired or is not yet valid.' (body from besscroft/diyfile#1, headers incl.\n"
                 "WWW-Authenticate from microsofthackathons/tdi#24); td-graph drops the token, MSAL posts to the token\n"
                 "endpoint again, and the retried nextLink succeeds. Pages: directoryaudit-list.md Examples 1 and 2.\n" + PROVENANCE)
    c.msal()
    params = first_params(spec, lo, hi)
    nl = next_link(base_url(spec), params, token_for(spec.name))
    c.graph(prepared(base_url(spec), params),
            body={"@odata.context": context(spec, "auditLogs/directoryAudits"), "@odata.nextLink": nl, "value": [D.DIRECTORY_AUDIT_1]})
    c.graph(prepared(nl), status=401, message="Unauthorized", content_type="application/json",
            resp_headers={"WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'},
            body=err("InvalidAuthenticationToken", "Access token has expired or is not yet valid.", "2023-02-20T05:06:48", "b04ace1e-13a0-4940-b489-f86dcca10985"))
    c.token(1)
    c.graph(prepared(nl),
            body={"@odata.context": context(spec, "auditLogs/directoryAudits"),
                  "@microsoft.graph.tips": D.DIRECTORY_AUDIT_TIPS, "value": [D.DIRECTORY_AUDIT_2]})
    out.append(c)
    for cas in out:
        cas.write("errors")
    return out


def build_auth():
    out = []
    c = Cassette("client_credentials",
                 "MSAL client credentials with cloud: global. MSAL GETs the tenant's OpenID configuration (no instance\n"
                 "discovery: login.microsoftonline.com is a known authority) and POSTs the token request\n"
                 "(v2-oauth2-client-creds-grant-flow.md, MicrosoftDocs/entra-docs). The recorded body has no client_secret;\n"
                 "the documented token response carries the token REDACTED.\n" + PROVENANCE)
    c.msal()
    out.append(c)
    c = Cassette("invalid_scope",
                 "The documented token error response (v2-oauth2-client-creds-grant-flow.md, 'Error response'):\n"
                 "400 invalid_scope with AADSTS70011. MSAL then GETs the instance discovery endpoint (its response as\n"
                 "recorded by Azure SDK test suites, e.g. nock recordings with /common/discovery/instance).\n" + PROVENANCE)
    c.msal(token_posts=0)
    body = (f"client_id={V.CLIENT_ID}&grant_type=client_credentials&client_info=1"
            f"&client_secret={quote_plus(V.CLIENT_SECRET)}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default")
    c._add("POST", f"{V.LOGIN}/{TID}/oauth2/v2.0/token",
           {"User-Agent": UA, "Accept-Encoding": "gzip, deflate", "Accept": "application/json", "Connection": "keep-alive",
            "x-client-sku": "MSAL.Python", "x-client-ver": "1.39.0", "x-client-os": "linux",
            "x-ms-lib-capability": "retry-after, h429", "client-request-id": uid("invalid_scope", "token"),
            "x-client-current-telemetry": "4|730,2|", "x-client-last-telemetry": "4|0|||",
            "Content-Length": str(len(body)), "Content-Type": "application/x-www-form-urlencoded"},
           body.encode(), 400, "Bad Request",
           {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache", "Content-Type": "application/json; charset=utf-8",
            "Expires": "-1", "Date": http_date()},
           json.dumps({
               "error": "invalid_scope",
               "error_description": "AADSTS70011: The provided value for the input parameter 'scope' is not valid. The scope https://foo.microsoft.com/.default is not valid.\r\nTrace ID: 255d1aef-8c98-452f-ac51-23d051240864\r\nCorrelation ID: fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7\r\nTimestamp: 2016-01-09 02:02:12Z",
               "error_codes": [70011],
               "timestamp": "YYYY-MM-DD HH:MM:SSZ",
               "trace_id": "255d1aef-8c98-452f-ac51-23d051240864",
               "correlation_id": "fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7",
           }))
    # After a token error MSAL 1.39 asks the instance discovery endpoint about the authority.
    c._add("GET",
           f"{V.LOGIN}/common/discovery/instance?api-version=1.1&authorization_endpoint=https%3A%2F%2Flogin.microsoftonline.com%2Fcommon%2Foauth2%2Fauthorize",
           {"User-Agent": UA, "Accept-Encoding": "gzip, deflate", "Accept": "application/json", "Connection": "keep-alive"},
           None, 200, "OK",
           {"Cache-Control": "max-age=86400, private", "Content-Type": "application/json; charset=utf-8",
            "Strict-Transport-Security": "max-age=31536000; includeSubDomains", "Access-Control-Allow-Origin": "*",
            "Date": http_date(1)},
           json.dumps({
               "tenant_discovery_endpoint": "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration",
               "api-version": "1.1",
               "metadata": [
                   {"preferred_network": "login.microsoftonline.com", "preferred_cache": "login.windows.net",
                    "aliases": ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"]},
                   {"preferred_network": "login.partner.microsoftonline.cn", "preferred_cache": "login.partner.microsoftonline.cn",
                    "aliases": ["login.partner.microsoftonline.cn", "login.chinacloudapi.cn"]},
                   {"preferred_network": "login.microsoftonline.de", "preferred_cache": "login.microsoftonline.de",
                    "aliases": ["login.microsoftonline.de"]},
                   {"preferred_network": "login.microsoftonline.us", "preferred_cache": "login.microsoftonline.us",
                    "aliases": ["login.microsoftonline.us", "login.usgovcloudapi.net"]},
                   {"preferred_network": "login-us.microsoftonline.com", "preferred_cache": "login-us.microsoftonline.com",
                    "aliases": ["login-us.microsoftonline.com"]},
               ],
           }))
    out.append(c)
    for cas in out:
        cas.write("auth")
    return out


if __name__ == "__main__":
    for f in build_sources() + build_errors() + build_auth():
        print(f.name, len(f.interactions))
