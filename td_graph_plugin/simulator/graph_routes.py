"""Built-in routes (routes.py API): service principal discovery, incident sub-resources, usage reports.

* ``GET /servicePrincipals(appId='{appId}')`` and ``GET /servicePrincipals/{id}`` (``$select``):
  td-graph's own service principal (appId = the tenant's client id), Microsoft Graph's (appId
  ``00000003-0000-0000-c000-000000000000``, with ``appRoles``), or any other in the tenant.
* ``GET /servicePrincipals/{id}/appRoleAssignments``: one assignment per granted permission
  (``t.permissions``; None = all), paged.  With the two above, this is how td-graph discovers
  what it was granted (td_graph_plugin/discovery.py).  Reading them needs Application.Read.All
  (or Directory.Read.All, or a ReadWrite variant); else 403 ``Authorization_RequestDenied``.
* ``GET /security/incidents/{id}`` (``$expand=alerts``) and ``GET /security/incidents/{id}/alerts``.
* ``GET /reports/getOffice365ActiveUserDetail(period='D7'|'D30'|'D90'|'D180')`` or ``(date=YYYY-MM-DD)``:
  ``302 Found`` to a short-lived, pre-authenticated CSV download on the simulator
  (``{base_url}/_download/reports/<token>.csv``, served by ``download``), as Microsoft's does.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Mapping

from .core import SimCore
from .downloads import DOWNLOAD_PREFIX, REPORT_LINK_TTL
from .gen_reports import office365_active_user_csv
from .graph_roles import GRAPH_APP_ID, app_role, role_id
from .request_base import render_related
from .responses import Response, json_response
from .role_catalogue import role_names
from .routes import SimRequest, SimResponse, graph_error, page_response, register_route
from .timefmt import format_ts

__all__ = ["DOWNLOAD_PREFIX", "REPORT_LINK_TTL", "download", "register_builtin_routes"]

_APP_READ = ("Application.Read.All|Application.ReadWrite.All|Directory.Read.All|Directory.ReadWrite.All",)
_SP_FIELDS = frozenset({
    "id", "deletedDateTime", "accountEnabled", "appDisplayName", "appId", "appOwnerOrganizationId",
    "appRoleAssignmentRequired", "appRoles", "displayName", "servicePrincipalNames", "servicePrincipalType",
    "signInAudience", "tags", "alternativeNames",
})


def _not_found(obj_id: str) -> SimResponse:
    return graph_error(404, "Request_ResourceNotFound",
                       f"Resource '{obj_id}' does not exist or one of its queried reference-property objects are not present.")


def _select(req: SimRequest, obj: dict, entity: str, known: frozenset[str]) -> tuple[dict, str] | SimResponse:
    text = req.query.get("$select")
    if not text:
        out = {k: v for k, v in obj.items() if k != "visible_at"}
        return out, ""
    fields = [f.strip() for f in text.split(",") if f.strip()]
    for f in fields:
        if f not in known:
            return graph_error(400, "Request_BadRequest", f"Could not find a property named '{f}' on type '{entity}'.")
    return {f: obj.get(f) for f in fields}, "(" + ",".join(fields) + ")"


def _service_principal(req: SimRequest, sp: dict | None, key: str) -> SimResponse:
    if sp is None:
        return _not_found(key)
    if sp.get("appId") == GRAPH_APP_ID:
        # The Microsoft Graph service principal's appRoles: every permission the simulator knows,
        # including any granted to this tenant that is not in the catalogue (tests' own).
        sp = {**sp, "appRoles": [app_role(r) for r in role_names(req.tenant.permissions or ())]}
    picked = _select(req, sp, "microsoft.graph.servicePrincipal", _SP_FIELDS)
    if isinstance(picked, SimResponse):
        return picked
    body, sel = picked
    ctx = f"{req.sim.base_url}/{req.version}/$metadata#servicePrincipals{sel}/$entity"
    return SimResponse(200, {"@odata.context": ctx, **body})


def _sp_by_app_id(req: SimRequest) -> SimResponse:
    app_id = req.match.group(1)
    return _service_principal(req, req.tenant.find_object("service_principals", app_id, key_field="appId"),
                              f"appId='{app_id}'")


def _sp_by_id(req: SimRequest) -> SimResponse:
    sp_id = req.match.group(1)
    return _service_principal(req, req.tenant.find_object("service_principals", sp_id), sp_id)


def _assignment_id(tenant_id: str, principal: str, role: str) -> str:
    raw = hashlib.sha256(f"{tenant_id}:{principal}:{role}".encode()).digest()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")[:43]


def _app_role_assignments(req: SimRequest) -> SimResponse:
    t = req.tenant
    sp_id = req.match.group(1)
    sp = t.find_object("service_principals", sp_id)
    if sp is None:
        return _not_found(sp_id)
    if sp["id"] == t.sp_id:
        granted = sorted(t.permissions) if t.permissions is not None else role_names()
    else:
        granted = []  # other service principals: no Graph app roles granted in the simulator
    created = format_ts(req.sim.now() - 30 * 86400)
    items = [
        {
            "id": _assignment_id(t.tenant_id, sp["id"], name),
            "deletedDateTime": None,
            "appRoleId": role_id(name),
            "createdDateTime": created,
            "principalDisplayName": sp["displayName"],
            "principalId": sp["id"],
            "principalType": "ServicePrincipal",
            "resourceDisplayName": "Microsoft Graph",
            "resourceId": t.graph_sp_id,
        }
        for name in granted
    ]
    return page_response(req, items, context=f"servicePrincipals('{sp['id']}')/appRoleAssignments",
                         size_key="/servicePrincipals/appRoleAssignments")


# ----------------------------------------------------------------------------- incidents

_DEFENDER_UNLICENSED = (
    403, "Forbidden",
    "The tenant is not licensed for Microsoft Defender XDR: no Microsoft 365 Defender service plan "
    "is provisioned, so alerts are not licensed for this tenant.",
)
_SECURITY_ROLES_MISSING = (
    403, "Forbidden",
    "Missing application roles. API required roles: SecurityAlert.Read.All,SecurityAlert.ReadWrite.All,"
    "SecurityIncident.Read.All,SecurityIncident.ReadWrite.All, application roles: .",
)
_INCIDENT_READ = ("SecurityIncident.Read.All|SecurityIncident.ReadWrite.All",)


@dataclass
class _Related:  # the tiny slice of handlers.GraphRequest that render_related() reads
    include_unknown_enums: bool


def _incident(req: SimRequest) -> dict | None:
    inc = req.tenant.find_object("incidents", req.match.group(1))
    if inc is None or inc["visible_at"] > req.sim.now():
        return None
    return inc


def _incident_alerts_list(req: SimRequest, incident_id: str) -> list[dict]:
    now = req.sim.now()
    alerts = [a for a in req.tenant.collection("alerts").items if a.get("incidentId") == incident_id and a["visible_at"] <= now]
    alerts.sort(key=lambda a: (a["createdDateTime"], a["id"]))
    prefer = req.headers.get("prefer", "").lower()
    return render_related(_Related("include-unknown-enum-members" in prefer), alerts)  # type: ignore[arg-type]


def _get_incident(req: SimRequest) -> SimResponse:
    inc = _incident(req)
    if inc is None:
        return graph_error(404, "NotFound", "Entity not found")  # ASSUMED body
    body = {k: v for k, v in inc.items() if k != "visible_at"}
    expand = req.query.get("$expand")
    if expand is not None:
        if expand.strip() != "alerts":
            return graph_error(400, "BadRequest", f"Could not find a property named '{expand}' on type "
                                                  "'microsoft.graph.security.incident'.")
        body["alerts"] = _incident_alerts_list(req, inc["id"])
    ctx = f"{req.sim.base_url}/{req.version}/$metadata#security/incidents/$entity"
    return SimResponse(200, {"@odata.context": ctx, **body})


def _list_incident_alerts(req: SimRequest) -> SimResponse:
    inc = _incident(req)
    if inc is None:
        return graph_error(404, "NotFound", "Entity not found")  # ASSUMED body
    return page_response(req, _incident_alerts_list(req, inc["id"]), context=f"security/incidents('{inc['id']}')/alerts",
                         page_size=100, max_top=1000, size_key="/security/incidents/alerts")


# ----------------------------------------------------------------------------- usage reports

_PERIODS = {"D7": 7, "D30": 30, "D90": 90, "D180": 180}
_REPORT = r"/reports/getOffice365ActiveUserDetail\(([^)]*)\)"


def _report(req: SimRequest) -> SimResponse:
    """302 to a pre-authenticated CSV; invalid parameters are 400 (message ASSUMED)."""
    arg = req.match.group(1).strip()
    m = re.fullmatch(r"period\s*=\s*'([^']*)'", arg)
    days = None
    if m:
        days = _PERIODS.get(m.group(1))
        if days is None:
            return graph_error(400, "BadRequest", f"Invalid value '{m.group(1)}' for the period parameter. "
                                                  "Supported values: D7, D30, D90, D180.")
    else:
        d = re.fullmatch(r"date\s*=\s*(\d{4}-\d{2}-\d{2})", arg)
        if not d:
            return graph_error(400, "BadRequest", "The function getOffice365ActiveUserDetail requires one parameter: "
                                                  "period='D7|D30|D90|D180' or date=YYYY-MM-DD.")
        try:
            day = calendar.timegm(time.strptime(d.group(1), "%Y-%m-%d"))
        except ValueError:
            return graph_error(400, "BadRequest", f"Invalid value '{d.group(1)}' for the date parameter.")
        now = req.sim.now()
        if not (now - 31 * 86400 <= day <= now):
            return graph_error(400, "BadRequest", "The date parameter must be within the last 30 days.")
        days = 1
    t = req.tenant
    users = [u for u in t.users if u["visible_at"] <= req.sim.now()]
    data = office365_active_user_csv(users, req.sim.now(), t.seed, days)
    token = secrets.token_urlsafe(24)
    req.sim._downloads.put(token, t.tenant_id, data, req.sim.now() + REPORT_LINK_TTL)
    location = f"{req.sim.base_url}{DOWNLOAD_PREFIX}{token}.csv"
    return SimResponse(302, None, {"Location": location})


def download(sim: SimCore, path: str, headers: Mapping[str, str]) -> Response:
    """``GET {base_url}/_download/reports/<token>.csv``: the pre-authenticated report file.

    No Authorization needed (the URL is the credential).  ASSUMED, to make a token leak
    testable: a request that DOES carry ``Authorization: Bearer ...`` is refused with 400.
    An unknown or expired link answers 403 the way an expired pre-signed storage URL does.
    """
    token = path[len(DOWNLOAD_PREFIX):]
    if token.endswith(".csv"):
        token = token[:-4]
    authz = headers.get("Authorization") or ""
    if authz.lower().startswith("bearer"):
        return json_response(400, {"error": {"code": "BadRequest", "message": (
            "An Authorization header must not be sent to a pre-authenticated report download URL: "
            "the link carries its own authorization.")}})
    hit = sim._downloads.get(token)
    if hit is None or hit[2] <= sim.now():
        body = (b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>'
                b"<Message>Server failed to authenticate the request. Signature not valid in the specified time "
                b"frame.</Message></Error>")
        return Response(403, body, {}, "application/xml")
    tenant_id, data, _ = hit
    return Response(200, data, {"Content-Disposition": 'attachment; filename="Office365ActiveUserDetail.csv"'},
                    "text/csv", tenant_id)


# ----------------------------------------------------------------------------- registration

def register_builtin_routes() -> None:
    register_route("GET", r"/servicePrincipals\(appId='([^']*)'\)", _sp_by_app_id, permissions=_APP_READ)
    register_route("GET", r"/servicePrincipals/(?!delta$)([^/()]+)", _sp_by_id, permissions=_APP_READ)
    register_route("GET", r"/servicePrincipals/([^/()]+)/appRoleAssignments", _app_role_assignments,
                   permissions=_APP_READ)
    register_route("GET", r"/security/incidents/([^/]+)", _get_incident, permissions=_INCIDENT_READ,
                   missing_permission=_SECURITY_ROLES_MISSING, capability="defender_xdr",
                   unlicensed=_DEFENDER_UNLICENSED, throttle="security")
    register_route("GET", r"/security/incidents/([^/]+)/alerts", _list_incident_alerts, permissions=_INCIDENT_READ,
                   missing_permission=_SECURITY_ROLES_MISSING, capability="defender_xdr",
                   unlicensed=_DEFENDER_UNLICENSED, throttle="security")
    # Usage reports: Reports.Read.All; 14 requests / 10 min per app per tenant, per report.
    register_route("GET", _REPORT, _report, permissions=("Reports.Read.All",), versions=("v1.0", "beta"),
                   throttle="usage_reports", throttle_scope=lambda m: "getOffice365ActiveUserDetail")


register_builtin_routes()
