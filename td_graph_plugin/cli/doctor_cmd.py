"""``td-graph doctor``: config, token, granted permissions against the guide, licences, the plan.

Exit 0 when every tenant has every *Required* permission of the onboarding guide, 1 otherwise
(or when a token cannot be had), 2 for a configuration error.  Nothing secret is printed.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..config import Config, TenantConfig
from ..discovery import discover
from ..errors import TdGraphError
from ..guide import GUIDE_PERMISSIONS, REQUIRED
from ..licensing import CAPABILITIES
from ..plan import missing_permissions, verdict_for
from ..status import OK
from ..catalogue import Catalogue

__all__ = ["register", "diagnose_tenant", "render_table"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check config, token, permissions, licences and the plan")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--tenant", help="only this tenant")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=_cmd_doctor)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from ..graph.client import GraphClient
    from ..metrics import Metrics
    from ..runtime import load_validated

    config, _pm, catalogue = load_validated(args.config)
    tenants = [t for t in config.tenants if not args.tenant or t.name == args.tenant]
    if args.tenant and not tenants:
        from ..errors import ConfigError

        raise ConfigError(f"unknown tenant {args.tenant!r}", key="--tenant")
    reports = []
    for tenant in tenants:
        client = GraphClient(tenant, config.http, Metrics())
        try:
            reports.append(diagnose_tenant(config, catalogue, tenant, client))
        finally:
            client.close()
    if args.format == "json":
        print(json.dumps({"tenants": reports, "ok": all(r["ok"] for r in reports)}, indent=2, sort_keys=True))
    else:
        print(render_table(reports))
    return 0 if all(r["ok"] for r in reports) else 1


def diagnose_tenant(config: Config, catalogue: Catalogue, tenant: TenantConfig, client: Any) -> dict[str, Any]:
    endpoints = client.endpoints
    report: dict[str, Any] = {
        "tenant": tenant.name,
        "tenant_id": tenant.tenant_id,
        "client_id": tenant.client_id,
        "cloud": tenant.cloud,
        "login": endpoints.login_base,
        "graph": endpoints.graph_base,
        "config": "ok",
        "admin_consent_url": f"{endpoints.login_base}/{tenant.tenant_id}/adminconsent?client_id={tenant.client_id}",
    }
    try:
        client.tokens.token()
        report["token"] = {"ok": True, "credential": "certificate" if tenant.certificate else "client secret"}
    except TdGraphError as exc:
        report["token"] = {"ok": False, "error": str(exc)}
        report["ok"] = False
        report["permissions"], report["licences"], report["plan"] = [], None, []
        return report
    d = discover(client, tenant.client_id, tokens=client.tokens)
    report["discovery_errors"] = d.errors
    report["permissions_from"] = d.permissions_from
    selected = catalogue.select(config.sources.include, config.sources.exclude)
    rows = []
    for perm in GUIDE_PERMISSIONS:
        granted = None if d.permissions is None else perm.name in d.permissions
        blocks = []
        if d.permissions is not None and not granted:
            blocks = [
                s.name for s in selected
                if any(perm.name in req.split("|") for req in missing_permissions(s, d.permissions))
            ]
        rows.append({"permission": perm.name, "reads": perm.reads, "requirement": perm.requirement, "granted": granted, "blocks": blocks})
    report["permissions"] = rows
    report["licences"] = None if d.capabilities is None else {
        "skus": d.skus,
        "capabilities": sorted(d.capabilities),
    }
    plan = []
    for spec in selected:
        v = verdict_for(spec, tenant.cloud, d)
        plan.append({"source": spec.name, "status": v.status, "reason": v.reason})
    report["plan"] = plan
    missing_required = [r["permission"] for r in rows if r["requirement"] == REQUIRED and r["granted"] is False]
    report["missing_required"] = missing_required
    report["ok"] = not missing_required and d.permissions is not None
    if d.permissions is None:
        report["missing_required_unknown"] = True
    return report


def render_table(reports: list[dict[str, Any]]) -> str:
    out: list[str] = []
    mark = {True: "✓", False: "✗", None: "?"}
    for r in reports:
        out.append(f"Tenant {r['tenant']} ({r['tenant_id']}), app {r['client_id']}")
        out.append(f"  cloud      {r['cloud']}  (login {r['login']}, graph {r['graph']})")
        out.append("  config     ok")
        tok = r["token"]
        out.append(f"  token      {'ok (' + tok['credential'] + ')' if tok['ok'] else 'FAILED: ' + tok['error']}")
        if not tok["ok"]:
            out.append("")
            continue
        src = r.get("permissions_from")
        how = "from the app's role assignments" if src == "graph" else "from the token's roles claim (diagnostic only)" if src == "token" else "could not be read"
        out.append(f"  permissions (onboarding guide; {how}):")
        width = max(len(p["permission"]) for p in r["permissions"])
        for p in r["permissions"]:
            blocks = f"  blocks: {', '.join(p['blocks'])}" if p["blocks"] else ""
            out.append(f"    {mark[p['granted']]} {p['permission']:<{width}}  {p['requirement']:<8}  {p['reads']}{blocks}")
        lic = r["licences"]
        if lic is None:
            out.append(f"  licences   unknown ({r['discovery_errors'].get('licences', 'not read')})")
        else:
            names = ", ".join(CAPABILITIES[c].split(" (")[0] for c in lic["capabilities"]) or "no premium capability"
            out.append(f"  licences   {names}  (SKUs: {', '.join(lic['skus']) or 'none'})")
        out.append("  plan:")
        w = max((len(p["source"]) for p in r["plan"]), default=10)
        for p in r["plan"]:
            verdict = "will run" if p["status"] == OK else f"skipped ({p['status']}): {p['reason']}"
            out.append(f"    {p['source']:<{w}}  {verdict}")
        if r["missing_required"]:
            out.append(f"  MISSING REQUIRED PERMISSIONS: {', '.join(r['missing_required'])}")
            out.append(f"  grant admin consent: {r['admin_consent_url']}")
        elif r.get("missing_required_unknown"):
            out.append("  granted permissions could not be read (Application.Read.All missing?)")
            out.append(f"  grant admin consent: {r['admin_consent_url']}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
