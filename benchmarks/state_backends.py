"""Benchmark - state backends (issue 15): per-page commit cost, PostgreSQL vs SQLite.

    python benchmarks/state_backends.py            # 100,000 sign-ins, 3 interleaved rounds (~3 min)
    python benchmarks/state_backends.py --quick    # 20,000 sign-ins, 3 rounds (~1 min)

(1) End to end: one tenant's backfill, ``td-graph run --once`` (source ``audit_logs.sign_ins``,
    1,000 records per page, file output, pacing lifted as ``td-graph demo`` does) with its state
    (checkpoint + 1,000 dedup keys per page, one transaction per page) on
    * ``sqlite``: ``state.path``, SQLite WAL, synchronous=FULL (td-graph's default);
    * ``pg``: ``state.url`` on a throwaway local PostgreSQL 15 (``tests/pg_support.PgServer``)
      with ``fsync = on`` (durable, like the SQLite run; the test helper's default is off);
    * ``pg-nofsync``: the same server with ``fsync = off`` (``ALTER SYSTEM`` + reload between
      runs), to show what the server's own WAL flush costs.
    Each round runs every way once (the order rotates), each run on a fresh state (a new SQLite
    file, a new PostgreSQL database).  Reported: records/s (median of the rounds) and the
    per-round ratio pg/sqlite (median).  Target: PostgreSQL within 1.5x of SQLite's records/s,
    i.e. ratio >= 0.667.
(2) Micro: ``StateStore.commit`` vs ``PostgresStore.commit`` of a typical page (a cursor and
    ``--keys`` new dedup keys), in this process, blocks of 50 commits interleaved; median ms per
    commit.  Both with fsync on.

The machine is shared: the load average is printed and recorded; only same-run ratios count.
Every process started here (simulator, PostgreSQL, td-graph children) is ended in ``finally``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    ROOT, SimProcess, bench_workdir, child_env, count_lines, fresh_dir, machine_info, median, new_secret, run_child,
    say, sim_cpu, table, td_graph_cmd, td_graph_config, verdict, write_result, write_yaml,
)

sys.path.insert(0, os.path.join(ROOT, "tests"))
from pg_support import PgServer  # noqa: E402

SOURCE = "audit_logs.sign_ins"
WAYS = ["sqlite", "pg", "pg-nofsync"]
TARGET = 1.5


def _raise_on_term(signum, frame):  # noqa: ARG001 - SIGTERM runs the finally blocks
    raise KeyboardInterrupt(f"signal {signum}")


def set_fsync(pg: PgServer, on: bool) -> None:
    pg.psql(f"ALTER SYSTEM SET fsync = {'on' if on else 'off'}")
    pg.psql("SELECT pg_reload_conf()")
    for _ in range(50):  # the reload is asynchronous
        if pg.psql("SHOW fsync") == ("on" if on else "off"):
            return
        time.sleep(0.1)
    raise RuntimeError("fsync setting not applied")


def micro(pg: PgServer, work: str, keys: int, blocks: int, per_block: int) -> dict:
    from td_graph_plugin.state.postgres import PostgresStore
    from td_graph_plugin.state.store import Commit, StateStore

    set_fsync(pg, True)
    sq = StateStore(os.path.join(work, "micro.db"))
    pgs = PostgresStore(pg.new_database(), replica="bench-micro")
    times: dict[str, list[float]] = {"sqlite": [], "pg": []}
    seq = [0]

    def page(store) -> None:
        i = seq[0]
        seq[0] += 1
        t = 1.7e9 + i
        store.commit(Commit(tenant="t0000", source=SOURCE,
                            cursor={"window_end": t, "next": f"https://graph/page/{i}?$skiptoken=" + "x" * 200},
                            seen=[(f"{i:08d}-{k:04d}-5f0c2a1e-8d3b-4c55-9a1e-{k:012d}", t + k / 1000) for k in range(keys)],
                            newest_event=t, success=True))

    try:
        for store in (sq, pgs):  # warm-up (stream rows, prepared statements)
            for _ in range(5):
                page(store)
        for b in range(blocks):
            for name in (["sqlite", "pg"] if b % 2 == 0 else ["pg", "sqlite"]):
                store = sq if name == "sqlite" else pgs
                t0 = time.perf_counter()
                for _ in range(per_block):
                    page(store)
                times[name].append((time.perf_counter() - t0) / per_block * 1000)
    finally:
        sq.close()
        pgs.close()
    ms = {k: median(v) for k, v in times.items()}
    return {"keys_per_commit": keys, "blocks": blocks, "commits_per_block": per_block, "ms_per_commit": ms,
            "blocks_ms": times, "ratio_pg_over_sqlite": ms["pg"] / ms["sqlite"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 20,000 sign-ins")
    ap.add_argument("-n", type=int, help="sign-ins of the tenant (default 100,000; quick 20,000)")
    ap.add_argument("--runs", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--keys", type=int, default=500, help="dedup keys per commit in the micro-benchmark (default 500)")
    ap.add_argument("--no-micro", action="store_true", help="skip the in-process commit micro-benchmark")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _raise_on_term)
    n = args.n or (20_000 if args.quick else 100_000)
    machine = machine_info()
    say(f"state backends: one tenant, {n:,} sign-ins, {args.runs} rounds of {', '.join(WAYS)}; "
        f"{machine['nproc']} x {machine['cpu_model']}; load average {machine['loadavg_at_start']}")
    work = bench_workdir("state-backends")
    secret = new_secret()
    rows: dict[str, list[dict]] = {w: [] for w in WAYS}
    pg = sim = None
    result: dict = {"benchmark": "state_backends", "quick": args.quick, "machine": machine, "sign_ins": n,
                    "runs": args.runs, "source": SOURCE}
    ok = False
    try:
        pg = PgServer.start()
        say(f"PostgreSQL: {pg.bindir} on port {pg.port}")
        sim = SimProcess(work)
        t0 = time.monotonic()
        tenant = sim.add_tenants(1, secret=secret, sign_ins={"n": n, "start_ago": 23 * 3600, "end_ago": 600})
        say(f"simulator: {sim.base_url}, data generated in {time.monotonic() - t0:.1f} s")

        def run(i: int, way: str) -> None:
            d = fresh_dir(work, f"{way}{i}")
            out = os.path.join(d, "out.ndjson")
            cfg = td_graph_config(sim, tenant, os.path.join(d, "state.db"), out, sources=[SOURCE])
            if way != "sqlite":
                set_fsync(pg, way == "pg")
                cfg["state"] = {"url": pg.new_database()}
                cfg["cluster"] = {"replica": f"bench-{way}-{i}"}
            path = write_yaml(cfg, os.path.join(d, "td-graph.yaml"))
            load = os.getloadavg()
            res, w = sim_cpu(sim, run_child, td_graph_cmd(path), env=child_env(secret), timeout=900)
            recs = count_lines(out) if os.path.exists(out) else 0
            shutil.rmtree(d, ignore_errors=True)
            if res.returncode != 0:
                say(f"  {way}: td-graph exited {res.returncode}: {res.stderr_tail[-1500:]}")
            rows[way].append({**res.summary(), "records": recs, "rate": recs / res.wall, "sim_cpu": w.cpu,
                              "sim_busy": w.busy, "loadavg": load})
            say(f"  round {i + 1} {way:10s}: {recs:,} records in {res.wall:.1f} s = {recs / res.wall:,.0f}/s, "
                f"td-graph CPU {res.cpu:.1f} s, sim CPU/wall {w.busy:.2f}, load {load[0]:.2f}")

        for i in range(args.runs):
            rot = WAYS[i % len(WAYS):] + WAYS[: i % len(WAYS)]
            for way in rot:
                run(i, way)
        micro_res = None
        if not args.no_micro:
            micro_res = micro(pg, work, args.keys, blocks=6, per_block=50 if not args.quick else 20)
        ok = True
    finally:
        if sim is not None:
            sim.close()
        if pg is not None:
            pg.close()
        shutil.rmtree(work, ignore_errors=True)
    if not ok:
        return 1

    med = {w: median(r["rate"] for r in rows[w]) for w in WAYS}
    ratios = {w: median(rows[w][i]["rate"] / rows["sqlite"][i]["rate"] for i in range(args.runs)) for w in WAYS[1:]}
    trs = [[w, med[w], min(r["rate"] for r in rows[w]), max(r["rate"] for r in rows[w]),
            median(r["wall"] for r in rows[w]), median(r["cpu"] for r in rows[w]),
            median(r["records"] for r in rows[w]), ratios.get(w, 1.0), median(r["sim_busy"] for r in rows[w])]
           for w in WAYS]
    say("")
    say(table(["state", "records/s (median)", "min", "max", "wall s", "CPU s", "records", "x sqlite (per round)",
               "sim CPU/wall"], trs))
    complete = all(r["records"] >= n * 0.99 and r["returncode"] == 0 for w in WAYS for r in rows[w])
    target_ok = ratios["pg"] >= 1 / TARGET
    say(f"PostgreSQL (fsync on) at {ratios['pg']:.2f}x SQLite's records/s (target >= {1 / TARGET:.3f}, i.e. within "
        f"{TARGET}x): {verdict(target_ok)}; every run complete and exit 0: {verdict(complete)}")
    if micro_res:
        ms = micro_res["ms_per_commit"]
        say(f"micro: one commit of {args.keys} dedup keys: SQLite {ms['sqlite']:.2f} ms, PostgreSQL {ms['pg']:.2f} ms "
            f"({micro_res['ratio_pg_over_sqlite']:.2f}x)")
    load_end = os.getloadavg()
    say(f"load average at start {machine['loadavg_at_start']}, at end {load_end}")
    result.update({"runs_by_way": rows, "median_rate": med, "ratio_to_sqlite": ratios, "micro": micro_res,
                   "loadavg_end": load_end,
                   "targets": {"pg_within_1_5x_of_sqlite": target_ok, "complete": complete}})
    say(f"result: {write_result('state_backends', result)}")
    return 0 if target_ok and complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
