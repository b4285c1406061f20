"""Benchmark 2 - memory: peak RSS of ``td-graph run --once`` for a small and a large backfill.

    python benchmarks/memory.py            # 200,000 and 1,000,000 sign-ins, 2 rounds
    python benchmarks/memory.py --quick    # 50,000 and 150,000, 1 round (~30 s)

Same setup as throughput (a): one simulated tenant per size, source ``audit_logs.sign_ins``,
file output, checkpoints on, pacing lifted.  Peak RSS is the td-graph child's own ``ru_maxrss``
(``wait4``), the sizes interleaved.  Targets: the larger within 10% of the smaller (flat: records
stream page by page) and both under 120 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    SimProcess, bench_workdir, child_env, count_lines, fresh_dir, machine_info, median, new_secret, run_child, say,
    sim_cpu, table, td_graph_cmd, td_graph_config, verdict, write_result, write_yaml,
)

LIMIT_MB = 120.0
FLAT = 0.10


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 50,000 and 150,000 records, 1 round")
    ap.add_argument("--small", type=int, help="records of the small run (default 200,000)")
    ap.add_argument("--large", type=int, help="records of the large run (default 1,000,000)")
    ap.add_argument("--runs", type=int, help="rounds (default 2; quick 1)")
    args = ap.parse_args()
    small = args.small or (50_000 if args.quick else 200_000)
    large = args.large or (150_000 if args.quick else 1_000_000)
    runs = args.runs or (1 if args.quick else 2)
    machine = machine_info()
    say(f"memory: {small:,} vs {large:,} sign-ins, {runs} round(s); {machine['nproc']} x {machine['cpu_model']}")

    work = bench_workdir("memory")
    secret = new_secret()
    rows: dict[int, list[dict]] = {small: [], large: []}
    with SimProcess(work) as sim:
        t0 = time.monotonic()
        tenants = {n: sim.add_tenants(1, secret=secret, sign_ins={"n": n, "start_ago": 23 * 3600, "end_ago": 600})
                   for n in (small, large)}
        say(f"simulator: {sim.base_url}, data generated in {time.monotonic() - t0:.1f} s")
        for i in range(runs):
            for n in ((small, large) if i % 2 == 0 else (large, small)):
                d = fresh_dir(work, f"r{i}-{n}")
                out = os.path.join(d, "out.ndjson")
                cfg = td_graph_config(sim, tenants[n], os.path.join(d, "state.db"), out, sources=["audit_logs.sign_ins"])
                path = write_yaml(cfg, os.path.join(d, "td-graph.yaml"))
                res, w = sim_cpu(sim, run_child, td_graph_cmd(path), env=child_env(secret), timeout=1800)
                recs = count_lines(out)
                shutil.rmtree(d, ignore_errors=True)
                if res.returncode != 0:
                    say(f"  td-graph exited {res.returncode}: {res.stderr_tail[-1500:]}")
                rows[n].append({**res.summary(), "records": recs, "rate": recs / res.wall, "sim_busy": w.busy})
                say(f"  round {i + 1}: {n:,} records: peak RSS {res.maxrss_mb:.1f} MB, {res.wall:.1f} s, "
                    f"{recs:,} delivered")
    shutil.rmtree(work, ignore_errors=True)

    med = {n: {m: median(r[m] for r in v) for m in ("maxrss_mb", "wall", "cpu", "rate", "records")}
           for n, v in rows.items()}
    growth = med[large]["maxrss_mb"] / med[small]["maxrss_mb"] - 1.0
    flat_ok = growth <= FLAT
    limit_ok = all(r["maxrss_mb"] < LIMIT_MB for v in rows.values() for r in v)
    all_ok = all(r["records"] >= n for n, v in rows.items() for r in v)
    say("")
    say(table(["records", "peak RSS MB (median)", "max of runs", "wall s", "CPU s", "records/s", "delivered"],
              [[n, med[n]["maxrss_mb"], max(r["maxrss_mb"] for r in rows[n]), med[n]["wall"], med[n]["cpu"],
                med[n]["rate"], int(med[n]["records"])] for n in (small, large)]))
    say("")
    say(f"growth {small:,} -> {large:,}: {growth:+.1%}   target <= +10% (flat): {verdict(flat_ok)}")
    say(f"peak RSS < {LIMIT_MB:.0f} MB in every run: {verdict(limit_ok)}")
    say(f"every run delivered all records: {verdict(all_ok)}")
    result = {
        "benchmark": "memory", "quick": args.quick, "machine": machine, "small": small, "large": large,
        "runs": runs, "median": {str(k): v for k, v in med.items()}, "growth": growth,
        "targets": {"flat_within_10pct": flat_ok, "under_120mb": limit_ok, "all_records": all_ok},
        "runs_detail": {str(k): v for k, v in rows.items()},
    }
    say(f"result: {write_result('memory', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
