"""``td-graph doctor``: ``td-graph check``'s offline checks, then per tenant the token, granted
permissions against the guide, licences and the plan.

Exit 0 when the offline checks pass and every tenant has every *Required* permission of the
onboarding guide, 1 otherwise (or when a token cannot be had), 2 for a configuration error.
A collector running with this config is not a failed check here (it is for ``check``, which
runs before ``run`` starts).  ``--format json`` adds ``check`` ({ok, exit, checks: [{name,
status, detail}]}) beside ``tenants``; ``ok`` covers both.  With ``isolation.protected_users``
set, each tenant's report resolves them (``protected_users``: {entries, unresolvable}); an
unresolvable entry is reported, not a failed exit (it stops isolate/release, not collection).
Nothing secret is printed.
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
from ..spec import DEFAULT_SHAPE
from ..status import OK
from ..catalogue import Catalogue
from .check_cmd import CheckReport, render_checks, run_checks

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

    # `td-graph check` first (offline); a collector already running with this config is the
    # normal state of a live system here, not a problem (it is for check before run starts).
    check = run_checks(args.config, collector_running_ok=True)
    if check.exit_code == 2 or check.failed("hooks"):  # nothing to diagnose without them
        _print(args.format, check, [])
        if check.error is not None:
            raise check.error  # one line on stderr and exit 2, as every command does
        return check.exit_code
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
    ok = _print(args.format, check, reports)
    return 0 if ok else 1


def _print(fmt: str, check: CheckReport, reports: list[dict[str, Any]]) -> bool:
    """Print check's lines (``check`` in json), then the tenants; True when all is well."""
    ok = check.ok and all(r["ok"] for r in reports)
    if fmt == "json":
        print(json.dumps({"check": check.as_json(), "tenants": reports, "ok": ok}, indent=2, sort_keys=True))
    else:
        print("Offline checks (td-graph check):")
        print("".join(f"  {line}\n" for line in render_checks(check).splitlines()))
        if reports:
            print(render_table(reports), end="")
    return ok


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
    shapes = query_shapes(config, tenant.name)
    for spec in selected:
        v = verdict_for(spec, tenant.cloud, d)
        row = {"source": spec.name, "status": v.status, "reason": v.reason}
        if spec.mode == "window":
            row.update(_shape_row(spec, shapes.get(spec.name)))
        plan.append(row)
    report["plan"] = plan
    if config.protected_users:  # what isolate/release resolve before any write (they refuse on a miss)
        from ..isolation.protected import unresolvable_protected_entries

        report["protected_users"] = {
            "entries": len(config.protected_users),
            "unresolvable": unresolvable_protected_entries(config, tenant, client),
        }
    report["isolation"] = _isolation_section(config, tenant, client, d.permissions)
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
            if p.get("query_shape") and (p["query_shape"] != DEFAULT_SHAPE or p.get("query_shape_remembered")):
                verdict += f"  [query shape {p['query_shape']}: {p.get('query_shape_reason') or 'default'}]"
            out.append(f"    {p['source']:<{w}}  {verdict}")
        protected = r.get("protected_users")
        if protected is not None and protected["unresolvable"]:
            out.append(f"  protected  UNRESOLVED: {', '.join(protected['unresolvable'])}: isolate/release refuse "
                       "in this tenant until each names a user (fix isolation.protected_users)")
        elif protected is not None:
            out.append(f"  protected  {protected['entries']} protected_users entries resolved")
        out.extend(_render_isolation_section(r.get("isolation")))
        if r["missing_required"]:
            out.append(f"  MISSING REQUIRED PERMISSIONS: {', '.join(r['missing_required'])}")
            out.append(f"  grant admin consent: {r['admin_consent_url']}")
        elif r.get("missing_required_unknown"):
            out.append("  granted permissions could not be read (Application.Read.All missing?)")
            out.append(f"  grant admin consent: {r['admin_consent_url']}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def query_shapes(config: Config, tenant: str) -> dict[str, tuple[str, str | None]]:
    """source -> (query shape, why) the state remembers for ``tenant`` (read-only; empty when
    the state cannot be read: doctor runs before the first ``run`` too)."""
    from ..errors import StateError
    from ..state import read_state

    try:
        snapshot = read_state(config)
    except (StateError, OSError, ValueError):
        return {}
    if snapshot is None:
        return {}
    reasons = _shape_reasons(config, tenant)
    return {
        source: (row.query_shape, reasons.get(source))
        for (t, source), row in snapshot.rows.items()
        if t == tenant and getattr(row, "query_shape", None)
    }


def _shape_reasons(config: Config, tenant: str) -> dict[str, str]:
    """Why each shape was adopted (the 400 Graph answered), from a SQLite state; {} otherwise."""
    import os
    import sqlite3

    path = getattr(config, "state_path", None)
    if getattr(config, "state_url", None) or not path or not os.path.exists(path):
        return {}
    try:
        from ..state.reader import _connect

        db = _connect(path)
        try:
            rows = db.execute("SELECT source, reason FROM query_shapes WHERE tenant=?", (tenant,)).fetchall()
        finally:
            db.close()
    except Exception:  # an older state without the table, a locked file: the why of the spec will do
        return {}
    return {source: reason for source, reason in rows if reason}


def _shape_row(spec: Any, stored: tuple[str, str | None] | None) -> dict[str, Any]:
    """``query_shape`` (the shape the source reads with) and ``query_shape_reason`` (why)."""
    names = [sh.name for sh in spec.shapes]
    name, why = stored if stored is not None and stored[0] in names else (names[0], None)
    shape = spec.shapes[names.index(name)]
    return {"query_shape": name, "query_shape_reason": why or shape.why or None,
            "query_shape_remembered": stored is not None}


def _isolation_section(config: Config, tenant: TenantConfig, client: Any, granted: set[str] | None) -> dict[str, Any]:
    """Which app isolate/release act as, and a warning when the collector's own app holds a
    permission that can disable users (isolation/doctor.py)."""
    from ..isolation.doctor import isolation_checks

    return isolation_checks(config, tenant, client, granted)


def _render_isolation_section(section: dict[str, Any] | None) -> list[str]:
    from ..isolation.doctor import render_isolation

    return render_isolation(section) if section is not None else []
