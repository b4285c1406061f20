"""Benchmark 4 - throttle discipline: a backfill against Graph's documented per-service budgets.

    python benchmarks/throttle.py            # ~40 identity-reports and ~80 Identity Protection requests
    python benchmarks/throttle.py --quick    # ~11 and ~20 requests (~30 s)

The simulator enforces the budgets (``sim.enforce_budgets = True``): identity reports 5 requests /
10 s per app per tenant (sign-ins and directory audits share it), Identity Protection 1 request /
s per tenant (429 without Retry-After).  One tenant holds enough data for many pages in each
class and ``td-graph run --once`` backfills it with td-graph's DEFAULT pacing (no ``throttling``
override).  From the simulator's request log (status and time of every request):

* utilisation = the shortest time the budget allows for the successful requests (L at once,
  then L more every W seconds: W x floor((n-1)/L)) / the time td-graph took (first to last):
  1.0 = the fastest legal schedule; target >= 90%;
* 429s: at most one per throttle window (W seconds, sliding); target met when the maximum
  count of 429s in any W-second span is <= 1.

A class whose endpoints the simulator does not serve is reported as not measured.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    SimProcess, bench_workdir, child_env, count_lines, machine_info, new_secret, run_child, say, table,
    td_graph_cmd, td_graph_config, verdict, write_result, write_yaml,
)

# class -> [(source, Graph path, volume key, items per page td-graph gets)]
CLASSES = {
    "identity_reports": [
        ("audit_logs.sign_ins", "/v1.0/auditLogs/signIns", "sign_ins", 1000),
        ("audit_logs.directory_audits", "/v1.0/auditLogs/directoryAudits", "directory_audits", 1000),
    ],
    "identity_protection": [
        ("identity_protection.risk_detections", "/v1.0/identityProtection/riskDetections", "risk_detections", 500),
        ("identity_protection.risky_users", "/v1.0/identityProtection/riskyUsers", "risky_users", 20),
    ],
}
UTILISATION_TARGET = 0.90


def analyse(reqs: list[list], paths: set[str], limit: int, window: float) -> dict:
    rs = sorted((r for r in reqs if r[2] in paths), key=lambda r: r[0])
    ok = [r[0] for r in rs if r[3] == 200]
    throttled = [r[0] for r in rs if r[3] == 429]
    other = sorted({r[3] for r in rs if r[3] not in (200, 429)})
    n = len(ok)
    span = ok[-1] - ok[0] if n >= 2 else 0.0
    t_min = window * math.floor((n - 1) / limit) if n >= 1 else 0.0
    util = t_min / span if span > 0 and t_min > 0 else None

    def max_in(times: list[float], w: float) -> int:
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] <= t - w:
                j += 1
            best = max(best, i - j + 1)
        return best

    t0 = rs[0][0] if rs else 0.0
    timeline = [[round(r[0] - t0, 3), r[3], r[2].rsplit("/", 1)[-1]] for r in rs]
    return {"timeline": timeline, "requests": len(rs), "ok": n, "throttled": len(throttled), "other_statuses": other,
            "span_s": span, "fastest_legal_s": t_min, "utilisation": util,
            "achieved_per_s": (n - 1) / span if span > 0 else None, "allowed_per_s": limit / window,
            "max_ok_in_window": max_in(ok, window), "max_429_in_window": max_in(throttled, window),
            "by_path": {p: sum(1 for r in rs if r[2] == p) for p in sorted(paths)}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run (~30 s)")
    ap.add_argument("--sign-in-pages", type=int, help="pages of 1,000 sign-ins (default 35; quick 10)")
    ap.add_argument("--risk-pages", type=int, help="pages of 500 risk detections (default 70; quick 16)")
    args = ap.parse_args()
    si_pages = args.sign_in_pages or (10 if args.quick else 35)
    rd_pages = args.risk_pages or (16 if args.quick else 70)
    machine = machine_info()
    say(f"throttle discipline: {machine['nproc']} x {machine['cpu_model']}")
    work = bench_workdir("throttle")
    secret = new_secret()
    with SimProcess(work) as sim:
        info = sim.call("endpoints")
        served = {(v, p.lower(), throttle) for p, versions, throttle, _ in info["endpoints"] for v in versions}
        budgets = info["enforced"]
        classes: dict[str, list] = {}
        missing: dict[str, str] = {}
        for cls, rows in CLASSES.items():
            ok_rows = [r for r in rows if ("v1.0", r[1][len("/v1.0"):].lower(), cls) in served]
            if not ok_rows:
                missing[cls] = "the simulator serves none of " + ", ".join(r[1] for r in rows)
            elif cls not in budgets:
                missing[cls] = "the simulator enforces no budget for this class"
            else:
                classes[cls] = ok_rows
        volumes = {"sign_ins": si_pages * 1000, "directory_audits": 1000, "risk_detections": rd_pages * 500,
                   "risky_users": 20}
        volumes = {k: v for k, v in volumes.items() if k in info["volumes"] and k != "sign_ins"}
        tenant = sim.add_tenants(1, secret=secret, volumes=volumes,
                                 sign_ins={"n": si_pages * 1000, "start_ago": 23 * 3600, "end_ago": 600})
        sources = [r[0] for rows in classes.values() for r in rows]
        say(f"simulator: {sim.base_url}; tenant data: " + ", ".join(
            f"{k} {v:,}" for k, v in tenant[0].items() if isinstance(v, int)))
        for cls, why in missing.items():
            say(f"  {cls}: not measured: {why}")
        sim.call("set", enforce_budgets=True)
        before = sim.stats()["requests"]
        out = os.path.join(work, "out.ndjson")
        cfg = td_graph_config(sim, tenant, os.path.join(work, "state.db"), out, sources=sources, default_pacing=True,
                              log_level="info")
        path = write_yaml(cfg, os.path.join(work, "td-graph.yaml"))
        say(f"backfill of {', '.join(sources)} with td-graph's default pacing ...")
        res = run_child(td_graph_cmd(path), env=child_env(secret), timeout=900)
        reqs = sim.requests(before)
        delivered = count_lines(out)
    shutil.rmtree(work, ignore_errors=True)
    if res.returncode != 0:
        say(f"td-graph exited {res.returncode}: {res.stderr_tail[-2000:]}")

    results = {}
    rows = []
    for cls, srcs in classes.items():
        limit, window = int(budgets[cls][0]), float(budgets[cls][1])
        a = analyse(reqs, {r[1] for r in srcs}, limit, window)
        a["budget"] = f"{limit} / {window:g} s"
        a["sources"] = [r[0] for r in srcs]
        a["utilisation_ok"] = a["utilisation"] is not None and a["utilisation"] >= UTILISATION_TARGET
        a["throttle_ok"] = a["max_429_in_window"] <= 1
        results[cls] = a
        rows.append([cls, a["budget"], a["ok"], a["throttled"], a["span_s"], a["fastest_legal_s"],
                     a["achieved_per_s"] or float("nan"), a["allowed_per_s"],
                     f"{a['utilisation']:.2%}" if a["utilisation"] is not None else "-",
                     a["max_ok_in_window"], a["max_429_in_window"]])
    say("")
    say(table(["class", "budget", "200s", "429s", "took s", "fastest legal s", "achieved/s", "allowed/s",
               "utilisation", "max 200s/window", "max 429s/window"], rows))
    say("")
    for cls, a in results.items():
        say(f"{cls}: utilisation {a['utilisation'] if a['utilisation'] is None else format(a['utilisation'], '.2%')}"
            f" target >= {UTILISATION_TARGET:.0%}: {verdict(a['utilisation_ok'])};  "
            f"429s per {a['budget'].split('/ ')[1]} window <= 1: {verdict(a['throttle_ok'])} "
            f"({a['throttled']} in all)")
        if a["other_statuses"]:
            say(f"  other statuses seen: {a['other_statuses']}")
    for cls, why in missing.items():
        say(f"{cls}: not measured ({why})")
    say(f"td-graph: exit {res.returncode}, {res.wall:.1f} s, {delivered:,} records delivered")
    result = {
        "benchmark": "throttle", "quick": args.quick, "machine": machine, "classes": results,
        "not_measured": missing, "td_graph": {**res.summary(), "delivered": delivered},
        "targets": {cls: {"utilisation_ge_90": a["utilisation_ok"], "max_one_429_per_window": a["throttle_ok"]}
                    for cls, a in results.items()},
    }
    say(f"result: {write_result('throttle', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
