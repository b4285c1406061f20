"""Benchmark 1 - throughput: page through N sign-ins three ways, interleaved, median of runs.

    python benchmarks/throughput.py            # N = 200,000, 3 rounds
    python benchmarks/throughput.py --quick    # N = 20,000, smoke run (~30 s)

(a) td-graph end to end: ``td-graph run --once`` (a child process), source
    ``audit_logs.sign_ins``, file output, SQLite checkpoints and dedup keys on every page.
    Pacing is lifted as ``td-graph demo`` does (the simulator is not Microsoft).
(a') the same with every fsync/fdatasync made a no-op (``--fsync both``, the default): an
    LD_PRELOAD shim built with cc into .cache/bench-nosync.  (a)/(a') is what durability costs:
    the output is fdatasynced before each page's checkpoint and SQLite runs synchronous=FULL
    (the WAL synced at every commit).  The shim is for this measurement only.
(b) raw baseline (``_raw_pager.py``): requests + orjson, envelope to /dev/null.
(c) the official Graph SDK (``_sdk_pager.py``, msgraph-sdk's PageIterator) in its own venv.
    It is ~300x slower, so it pages only ``--sdk-pages`` pages; its rate is the steady rate
    after page 1 (page 1 pays the SDK's lazy imports), which favours the SDK.

The simulator serves ~1.8 KB sign-ins, 1,000 per page, over TLS from its own process; its CPU
time over each client run is reported so that a simulator-bound run is visible.
Targets (issue 16): (a)/(b) >= 1.3 (aim 2.0); (a)/(c) >= 200; >= 9 interleaved rounds for the record.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import orjson  # noqa: E402

from _common import (  # noqa: E402
    BENCH, PY, ROOT, SimProcess, bench_workdir, child_env, count_lines, fresh_dir, iso, machine_info, median,
    new_secret, run_child, say, sim_cpu, table, td_graph_cmd, td_graph_config, verdict, write_result, write_yaml,
)

SDK_VENV = os.path.join(ROOT, ".cache", "bench-sdk-venv")
SDK_PY = os.path.join(SDK_VENV, "bin", "python")
SDK_PACKAGES = ["msgraph-sdk", "azure-identity"]
NOSYNC_DIR = os.path.join(ROOT, ".cache", "bench-nosync")
NOSYNC_C = """\
/* td-graph benchmark only: fsync and fdatasync return at once, so (a') measures td-graph
   without its syncs. Never preload this into a real collector: it defeats crash safety. */
int fsync(int fd) { (void)fd; return 0; }
int fdatasync(int fd) { (void)fd; return 0; }
"""


def ensure_nosync_shim() -> tuple[str | None, str]:
    """Build the no-sync LD_PRELOAD shim on first use; (path or None, note)."""
    so = os.path.join(NOSYNC_DIR, "nosync.so")
    src = os.path.join(NOSYNC_DIR, "nosync.c")
    if os.path.exists(so) and os.path.exists(src) and open(src, encoding="utf-8").read() == NOSYNC_C:
        return so, f"fsync off: LD_PRELOAD={so}"
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None, "no C compiler (cc) to build the no-sync shim: install gcc, or pass --fsync on"
    os.makedirs(NOSYNC_DIR, exist_ok=True)
    with open(src, "w", encoding="utf-8") as fh:
        fh.write(NOSYNC_C)
    r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", so, src], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return None, f"cannot build the no-sync shim: {r.stderr.strip()[-500:]}"
    return so, f"fsync off: LD_PRELOAD={so}"


def ensure_sdk_venv() -> tuple[bool, str]:
    """Make the SDK's own venv on first use (pip from PyPI); (usable, note)."""
    probe = [SDK_PY, "-c", "import msgraph, azure.identity, msgraph_core; "
             "from importlib.metadata import version as v; print(v('msgraph-sdk'), v('azure-identity'))"]
    if os.path.exists(SDK_PY):
        r = subprocess.run(probe, capture_output=True, text=True, timeout=120)
        if r.returncode == 0:
            return True, "msgraph-sdk %s, azure-identity %s" % tuple(r.stdout.split())
    say(f"creating {SDK_VENV} with {' '.join(SDK_PACKAGES)} (first use only) ...")
    try:
        subprocess.run([PY, "-m", "venv", SDK_VENV], check=True, timeout=300)
        subprocess.run([SDK_PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", *SDK_PACKAGES],
                       check=True, timeout=900)
        r = subprocess.run(probe, capture_output=True, text=True, timeout=120, check=True)
        return True, "msgraph-sdk %s, azure-identity %s" % tuple(r.stdout.split())
    except (subprocess.SubprocessError, OSError) as exc:
        return False, f"cannot install the SDK venv: {exc}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 20,000 records, SDK 2 pages once")
    ap.add_argument("--records", type=int, help="sign-ins to page through (default 200,000; quick 20,000)")
    ap.add_argument("--runs", type=int, help="interleaved rounds (default 3)")
    ap.add_argument("--sdk-pages", type=int, help="pages the SDK reads per run (default 4; quick 2)")
    ap.add_argument("--sdk-runs", type=int, help="SDK runs (default = runs; quick 1)")
    ap.add_argument("--no-sdk", action="store_true", help="skip (c)")
    ap.add_argument("--fsync", choices=("both", "on"), default="both",
                    help="both: also run td-graph with fsync/fdatasync as no-ops, (a'), to measure their cost")
    args = ap.parse_args()
    n = args.records or (20_000 if args.quick else 200_000)
    runs = args.runs or 3
    sdk_pages = args.sdk_pages or (2 if args.quick else 4)
    sdk_runs = args.sdk_runs if args.sdk_runs is not None else (1 if args.quick else runs)
    machine = machine_info()
    say(f"throughput: {n:,} sign-ins, {runs} interleaved rounds; {machine['nproc']} x {machine['cpu_model']}, "
        f"Python {machine['python']}")

    sdk_ok, sdk_note = (False, "skipped (--no-sdk)") if args.no_sdk else ensure_sdk_venv()
    say(f"SDK baseline: {sdk_note}")
    nosync, nosync_note = (None, "skipped (--fsync on)") if args.fsync == "on" else ensure_nosync_shim()
    say(f"fsync comparison: {nosync_note}")

    work = bench_workdir("throughput")
    secret = new_secret()
    rows: dict[str, list[dict]] = {"a": [], "a_nosync": [], "b": [], "c": [], "fixed": []}
    with SimProcess(work) as sim:
        t0 = time.monotonic()
        # N sign-ins between 23 h and 10 min ago: inside td-graph's first window (24 h lookback,
        # 2 min delay) whenever the runs happen in the next hour.
        big, empty = sim.add_tenants(1, secret=secret, sign_ins={"n": n, "start_ago": 23 * 3600, "end_ago": 600}), \
            sim.add_tenants(1, secret=secret, sign_ins={"n": 0, "start_ago": 3600, "end_ago": 600})
        say(f"simulator: {sim.base_url}, data generated in {time.monotonic() - t0:.1f} s")
        now = time.time()
        flt = f"createdDateTime ge {iso(now - 24 * 3600)} and createdDateTime le {iso(now - 120)}"
        raw_env = child_env(secret, SIM_BASE=sim.base_url, SIM_CA=sim.ca_path, SIM_TENANT=big[0]["tenant_id"],
                            SIM_CLIENT=big[0]["client_id"], SIM_SECRET=secret, SIM_FILTER=flt,
                            SIM_MAX_PAGES=str(n // 1000 + 10))
        sdk_env = dict(raw_env, SSL_CERT_FILE=sim.ca_path, REQUESTS_CA_BUNDLE=sim.ca_path,
                       SIM_LIMIT=str(sdk_pages * 1000))
        sdk_env.pop("PYTHONPATH", None)

        def run_a(i: int, tenants: list, key: str, preload: str | None = None) -> None:
            d = fresh_dir(work, f"{key}{i}")
            out = os.path.join(d, "out.ndjson")
            cfg = td_graph_config(sim, tenants, os.path.join(d, "state.db"), out, sources=["audit_logs.sign_ins"])
            path = write_yaml(cfg, os.path.join(d, "td-graph.yaml"))
            env = child_env(secret, **({"LD_PRELOAD": preload} if preload else {}))
            res, w = sim_cpu(sim, run_child, td_graph_cmd(path), env=env, timeout=900)
            recs = count_lines(out) if os.path.exists(out) else 0  # none: td-graph failed (said below)
            shutil.rmtree(d, ignore_errors=True)  # 200,000 records are ~450 MB of NDJSON
            if res.returncode != 0:
                say(f"  td-graph exited {res.returncode}: {res.stderr_tail[-1500:]}")
            rows[key].append({**res.summary(), "records": recs, "rate": recs / res.wall,
                              "sim_cpu": w.cpu, "sim_busy": w.busy})

        def run_b(i: int) -> None:
            d = fresh_dir(work, f"b{i}")
            res, w = sim_cpu(sim, run_child, [PY, os.path.join(BENCH, "_raw_pager.py")], env=raw_env, timeout=900,
                             stdout_path=os.path.join(d, "out.json"))
            info = _json_file(os.path.join(d, "out.json"))
            if res.returncode != 0:
                say(f"  raw baseline exited {res.returncode}: {res.stderr_tail[-1500:]}")
            recs = info.get("records", 0)
            rows["b"].append({**res.summary(), "records": recs, "rate": recs / res.wall,
                              "sim_cpu": w.cpu, "sim_busy": w.busy})

        def run_c(i: int) -> None:
            d = fresh_dir(work, f"c{i}")
            res, w = sim_cpu(sim, run_child, [SDK_PY, os.path.join(BENCH, "_sdk_pager.py")], env=sdk_env,
                             timeout=60 + 30 * sdk_pages, stdout_path=os.path.join(d, "out.json"))
            info = _json_file(os.path.join(d, "out.json"))
            if res.returncode != 0:
                say(f"  SDK pager exited {res.returncode}: {res.stderr_tail[-1500:]}")
            rows["c"].append({**res.summary(), **{f"sdk_{k}": v for k, v in info.items()},
                              "records": info.get("records", 0), "rate": info.get("steady") or 0.0,
                              "sim_cpu": w.cpu, "sim_busy": w.busy})

        order = ["a", "b", "c", "fixed"] + (["a_nosync"] if nosync else [])
        for i in range(runs):
            rot = order[i % len(order):] + order[: i % len(order)]
            for key in rot:
                if key == "a":
                    run_a(i, big, "a")
                elif key == "a_nosync":
                    run_a(i, big, "a_nosync", preload=nosync)
                elif key == "fixed":
                    run_a(i, empty, "fixed")
                elif key == "b":
                    run_b(i)
                elif key == "c" and sdk_ok and i < sdk_runs:
                    run_c(i)
            last = {k: v[-1] for k, v in rows.items() if v}
            say(f"  round {i + 1}/{runs}: " + ", ".join(
                f"{k} {v['rate']:,.0f} rec/s" if k != "fixed" else f"fixed cost {v['wall']:.2f} s"
                for k, v in last.items()))

    med = {k: {m: median(r[m] for r in v) for m in ("rate", "wall", "cpu", "maxrss_mb", "sim_busy", "records")}
           for k, v in rows.items() if v}
    # Ratios per round (same conditions), then their median.
    ab = [a["rate"] / b["rate"] for a, b in zip(rows["a"], rows["b"]) if b["rate"]]
    # (a)/(a'): td-graph's rate with its syncs over its rate without them (1.0: free).
    fs = [a["rate"] / x["rate"] for a, x in zip(rows["a"], rows["a_nosync"]) if x["rate"]]
    ratio_fsync = median(fs) if fs else float("nan")
    ac = [rows["a"][i]["rate"] / c["rate"] for i, c in enumerate(rows["c"]) if c["rate"]]
    ratio_ab, ratio_ac = median(ab), median(ac) if ac else float("nan")
    fixed = med.get("fixed", {}).get("wall", 0.0)
    a_net = n / (med["a"]["wall"] - fixed) if med["a"]["wall"] > fixed else float("nan")
    all_ok = all(r["records"] >= n for r in rows["a"]) and all(r["records"] >= n for r in rows["b"])

    say("")
    say(table(
        ["way", "records/s", "wall s", "client CPU s", "CPU/wall", "peak RSS MB", "sim CPU/wall", "records"],
        [[label, med[k]["rate"], med[k]["wall"], med[k]["cpu"], med[k]["cpu"] / med[k]["wall"], med[k]["maxrss_mb"],
          med[k]["sim_busy"], int(med[k]["records"])]
         for k, label in (("a", "(a) td-graph run --once"), ("a_nosync", "(a') td-graph, fsync off (shim)"),
                          ("b", "(b) requests+orjson"),
                          ("c", f"(c) msgraph-sdk ({sdk_pages} pages, steady)"),
                          ("fixed", "td-graph fixed cost (0 records)")) if k in med],
    ))
    sim_bound = [k for k in ("a", "b") if med[k]["sim_busy"] >= 0.85]
    say("")
    say(f"td-graph net of its fixed cost ({fixed:.2f} s: start-up, token, licence discovery): {a_net:,.0f} records/s")
    say(f"(a)/(b) = {ratio_ab:.2f} (median of {len(ab)} rounds; range {min(ab):.2f}-{max(ab):.2f})   "
        f"target >= 1.3 (aim 2.0): {verdict(ratio_ab >= 1.3)}{' (aim met)' if ratio_ab >= 2.0 else ''}")
    if ac:
        say(f"(a)/(c) = {ratio_ac:,.0f}   target >= 200: {verdict(ratio_ac >= 200)}")
    else:
        say(f"(a)/(c): not measured ({sdk_note})")
    if fs:
        say(f"(a)/(a') = {ratio_fsync:.2f}   durability cost (fdatasync per page + SQLite synchronous=FULL): "
            f"td-graph keeps {ratio_fsync:.0%} of its no-sync speed")
    else:
        say(f"(a)/(a'): not measured ({nosync_note})")
    all_ok = all_ok and all(r["records"] >= n for r in rows["a_nosync"])
    say(f"every run delivered all {n:,} records: {verdict(all_ok)}")
    if sim_bound:
        say(f"WARNING: the simulator used >= 85% of a core during {', '.join(sim_bound)}: simulator-bound")
    else:
        say(f"simulator not the bottleneck: it used {med['a']['sim_busy']:.0%} (a) / {med['b']['sim_busy']:.0%} (b) "
            "of its one core")

    result = {
        "benchmark": "throughput", "quick": args.quick, "machine": machine, "records": n, "runs": runs,
        "sdk": {"available": sdk_ok, "note": sdk_note, "pages": sdk_pages, "runs": len(rows["c"])},
        "median": med, "ratio_a_b": ratio_ab, "ratio_a_c": ratio_ac, "ratios_a_b": ab, "ratios_a_c": ac,
        "fsync": {"note": nosync_note, "ratio_a_nosync": ratio_fsync, "ratios": fs},
        "td_graph_fixed_cost_s": fixed, "td_graph_net_rate": a_net,
        "targets": {"a_b_ge_1.3": ratio_ab >= 1.3, "a_b_aim_2.0": ratio_ab >= 2.0,
                    "a_c_ge_200": (ratio_ac >= 200) if ac else None, "all_records": all_ok},
        "simulator_bound": sim_bound, "runs_detail": rows,
    }
    shutil.rmtree(work, ignore_errors=True)
    say(f"result: {write_result('throughput', result)}")
    return 0


def _json_file(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            return orjson.loads(fh.read().strip().splitlines()[-1])
    except (OSError, IndexError, orjson.JSONDecodeError):
        return {}


if __name__ == "__main__":
    raise SystemExit(main())
