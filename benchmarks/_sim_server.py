"""The Graph simulator in its own process, driven by JSON lines on stdin (one answer per line).

The benchmarks run the simulator here, not in their own process, so that it does not share a
GIL with the client being measured and so that its CPU time can be read on its own (to show
whether it, rather than the client, was the bottleneck).  Not a public interface: see
``_common.SimProcess``.  Requests (one JSON object per line)::

    {"cmd": "add_tenants", "count": 2, "profile": "e5", "volumes": {...}, "secret": "...",
     "sign_ins": {"n": 200000, "start_ago": 82800, "end_ago": 600}}
    {"cmd": "activity", "sign_ins": 3, "directory_audits": 2, "update_alerts": 2, "change_users": 2}
    {"cmd": "set", "enforce_budgets": true, "page_delay": 0.0}
    {"cmd": "stats"}            -> cpu seconds (user+sys), maxrss, request count
    {"cmd": "requests", "since": 0}  -> [[time, method, path, status, tenant_id, next_page], ...]
    {"cmd": "clear_requests"}
    {"cmd": "endpoints"}        -> the endpoint rows, volume keys and enforced budgets
    {"cmd": "stop"}
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

sys.path.insert(0, os.environ.get("TD_GRAPH_BENCH_SRC") or os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from td_graph_plugin.simulator import GraphSimulator  # noqa: E402


def _cpu() -> dict:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"user": ru.ru_utime, "sys": ru.ru_stime, "cpu": ru.ru_utime + ru.ru_stime,
            "maxrss_kb": ru.ru_maxrss, "time": time.time(), "monotonic": time.monotonic()}


def main() -> int:
    workdir = sys.argv[1] if len(sys.argv) > 1 else None
    out = sys.stdout
    sim = GraphSimulator(workdir=workdir).start()
    tenants = []
    out.write(json.dumps({"ok": True, "base_url": sim.base_url, "ca_path": sim.ca_path, "pid": os.getpid()}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            req = json.loads(line)
            cmd = req.get("cmd")
            try:
                if cmd == "stop":
                    out.write(json.dumps({"ok": True}) + "\n")
                    out.flush()
                    break
                answer = _handle(sim, tenants, cmd, req)
                answer["ok"] = True
            except Exception as exc:  # report, keep serving
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(answer) + "\n")
            out.flush()
    finally:
        sim.stop()
    return 0


def _handle(sim: GraphSimulator, tenants: list, cmd: str, req: dict) -> dict:
    now = time.time()
    if cmd == "add_tenants":
        made = []
        volumes = dict(req.get("volumes") or {})
        window = req.get("sign_ins")
        if window:
            volumes["sign_ins"] = 0
        t0 = time.monotonic()
        for _ in range(int(req.get("count", 1))):
            t = sim.add_tenant(profile=req.get("profile", "e5"), client_secret=req.get("secret"),
                               seed=len(tenants), volumes=volumes)
            if window:
                n, start_ago, end_ago = int(window["n"]), float(window["start_ago"]), float(window["end_ago"])
                chunk = 100_000  # bounded memory per call while generating
                done = 0
                while done < n:
                    k = min(chunk, n - done)
                    t.add_sign_ins(k, start=now - start_ago, end=now - end_ago)
                    done += k
            tenants.append(t)
            made.append({"tenant_id": t.tenant_id, "client_id": t.client_id,
                         "sign_ins": len(t.sign_ins), "directory_audits": len(t.directory_audits),
                         "alerts": len(t.alerts), "users": len(t.users)})
        return {"tenants": made, "seconds": time.monotonic() - t0}
    if cmd == "activity":
        # New events a few minutes old (inside td-graph's window, past its 2-minute delay).
        n_si, n_da = int(req.get("sign_ins", 0)), int(req.get("directory_audits", 0))
        n_al, n_us = int(req.get("update_alerts", 0)), int(req.get("change_users", 0))
        for t in tenants:
            if n_si:
                t.add_sign_ins(n_si, start=now - 240, end=now - 180)
            if n_da:
                t.add_directory_audits(n_da, start=now - 240, end=now - 180)
            if n_al:
                t.update_alerts(n_al)
            if n_us:
                t.change_users(n_us)
        return {"tenants": len(tenants)}
    if cmd == "set":
        if "enforce_budgets" in req:
            sim.enforce_budgets = bool(req["enforce_budgets"])
        if "page_delay" in req:
            sim.page_delay = float(req["page_delay"])
        return {}
    if cmd == "stats":
        return {**_cpu(), "requests": len(sim.requests), "threads": _threads()}
    if cmd == "requests":
        since = int(req.get("since", 0))
        recs = sim.requests[since:]
        return {"requests": [[r.time, r.method, r.path, r.status, r.tenant_id, "$skiptoken" in r.query] for r in recs]}
    if cmd == "clear_requests":
        sim.clear_requests()
        return {}
    if cmd == "endpoints":
        from td_graph_plugin.simulator.endpoints import rows

        from td_graph_plugin.simulator import DEFAULT_VOLUMES

        return {"endpoints": [[ep.path, list(ep.versions), ep.throttle, ep.mode] for ep in rows()],
                "volumes": sorted(DEFAULT_VOLUMES), "enforced": _budgets()}
    raise ValueError(f"unknown command {cmd!r}")


def _budgets() -> dict:
    from td_graph_plugin.simulator.faults import BUDGETS

    return {k: [b.limit, b.window, b.retry_after, b.per_app] for k, b in BUDGETS.items()}


def _threads() -> int:
    import threading

    return threading.active_count()


if __name__ == "__main__":
    raise SystemExit(main())
