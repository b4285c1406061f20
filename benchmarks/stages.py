"""Diagnostic - where td-graph's per-record CPU goes on the window path, stage by stage.

    python benchmarks/stages.py            # 100 pages of 1,000 sign-ins
    python benchmarks/stages.py --quick    # 30 pages

Fetches real pages from the simulator once (requests, TLS), then replays them in this process
through td-graph's own functions in the order ``collector.window`` uses them (orjson decode,
``parse_time`` and the dedup key, ``StateStore.seen_keys``, ``make_record`` + ``format_time``,
``orjson.dumps`` of the envelope, ``FileOutput.write``, ``StateStore.commit`` and the window-end
prune) and times each stage with ``time.process_time`` (CPU of this process, all threads,
including SQLite's).  No network, no threads: this is the CPU floor of the per-record path.

Then the same pages through the raw baseline's work (decode, envelope, encode), and through
three alternatives that need no new dependency, to size the fixes proposed in
docs/benchmarks.md:

* time fast path: ``datetime.fromisoformat`` (C) for Graph's usual ``...:ssZ`` text and the
  original string reused as ``event_time`` (it is already canonical);
* dedup keys clustered by time: ``seen2(stream INTEGER, event_time, key)`` as the primary key
  (WITHOUT ROWID, no second index): a page's keys land on neighbouring B-tree pages, the lookup
  is a range scan, and the window-end prune deletes a contiguous range;
* GC: the same replay with the collector's gen-0 threshold raised to 50,000.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import orjson  # noqa: E402
import requests  # noqa: E402

from _common import (  # noqa: E402
    SimProcess, bench_workdir, iso, machine_info, new_secret, say, table, write_result,
)

SOURCE = "audit_logs.sign_ins"


def fetch_pages(sim: SimProcess, tenant: dict, secret: str, pages: int) -> list[bytes]:
    s = requests.Session()
    s.trust_env = False
    s.verify = sim.ca_path
    tok = s.post(f"{sim.base_url}/{tenant['tenant_id']}/oauth2/v2.0/token", timeout=30, data={
        "grant_type": "client_credentials", "client_id": tenant["client_id"], "client_secret": secret,
        "scope": "https://graph.microsoft.com/.default"}).json()["access_token"]
    now = time.time()
    url: str | None = f"{sim.base_url}/v1.0/auditLogs/signIns"
    params: dict | None = {"$top": "1000",
                           "$filter": f"createdDateTime ge {iso(now - 86400)} and createdDateTime le {iso(now - 120)}"}
    bodies = []
    while url and len(bodies) < pages:
        r = s.get(url, params=params, headers={"Authorization": "Bearer " + tok}, timeout=60)
        r.raise_for_status()
        bodies.append(r.content)
        url, params = orjson.loads(r.content).get("@odata.nextLink"), None
    return bodies


def td_graph_path(bodies: list[bytes], workdir: str) -> tuple[dict[str, float], int]:
    """The window path as ``collector.window._collect_one`` runs it, one stage at a time."""
    from td_graph_plugin.collector.context import make_record
    from td_graph_plugin.config.model import TenantConfig
    from td_graph_plugin.outputs.file import FileOutput
    from td_graph_plugin.state import Commit, StateStore
    from td_graph_plugin.timeutil import format_time, parse_time, to_epoch

    tenant = TenantConfig(name="t0000", tenant_id="00000000-0000-0000-0000-000000000000",
                          client_id="00000000-0000-0000-0000-000000000001")
    state = StateStore(os.path.join(workdir, "state.db"))
    out = FileOutput(os.path.join(workdir, "out.ndjson"))
    out.open(None)
    stages = ["decode (orjson.loads)", "parse_time + dedup key", "seen_keys lookup", "make_record + format_time",
              "encode (orjson.dumps)", "file write", "state commit (keys, cursor, offset)", "window-end prune"]
    cost = dict.fromkeys(stages, 0.0)
    clock = time.process_time
    collected_at = "2026-01-01T00:00:00.000Z"
    cursor = {"done": None, "active": {"lower": "2026-01-01T00:00:00Z", "upper": "2026-01-02T00:00:00Z"}}
    n = 0
    try:
        for body in bodies:
            t0 = clock()
            items = orjson.loads(body)["value"]
            t1 = clock()
            keyed = []
            for item in items:
                obj_id = item.get("id")
                if not isinstance(obj_id, str) or not obj_id:
                    continue
                keyed.append((obj_id, item, parse_time(item.get("createdDateTime"))))
            t2 = clock()
            already = state.seen_keys(tenant.name, SOURCE, {k for k, _, _ in keyed})
            t3 = clock()
            records, seen, batch = [], [], set()
            for key, item, ts in keyed:
                if key in already or key in batch:
                    continue
                batch.add(key)
                seen.append((key, to_epoch(ts)))
                records.append(make_record(tenant, SOURCE, item["id"], format_time(ts), collected_at, item))
            t4 = clock()
            lines = [orjson.dumps(r) + b"\n" for r in records]
            t5 = clock()
            pos = out.write(lines)
            t6 = clock()
            state.commit(Commit(tenant.name, SOURCE, cursor=cursor, seen=seen), output=(out.name, pos))
            t7 = clock()
            for name, a, b in zip(stages, (t0, t1, t2, t3, t4, t5, t6), (t1, t2, t3, t4, t5, t6, t7)):
                cost[name] += b - a
            n += len(records)
        t0 = clock()
        state.commit(Commit(tenant.name, SOURCE, cursor={"done": "x", "active": None},
                            prune_seen_before=time.time() - 900, success=True))
        cost["window-end prune"] += clock() - t0
    finally:
        out.close()
        state.close()
    return cost, n


def baseline_path(bodies: list[bytes]) -> tuple[dict[str, float], int]:
    cost = {"decode (orjson.loads)": 0.0, "envelope + encode + /dev/null": 0.0}
    clock = time.process_time
    n = 0
    with open(os.devnull, "wb") as dn:
        for body in bodies:
            t0 = clock()
            items = orjson.loads(body)["value"]
            t1 = clock()
            for item in items:
                dn.write(orjson.dumps({"tenant": "t0000", "tenant_id": "x", "source": SOURCE, "id": item["id"],
                                       "event_time": item["createdDateTime"], "collected_at": "c", "data": item})
                         + b"\n")
            cost["decode (orjson.loads)"] += t1 - t0
            cost["envelope + encode + /dev/null"] += clock() - t1
            n += len(items)
    return cost, n


def alt_time(bodies: list[bytes]) -> tuple[float, float, int]:
    """parse_time + format_time + to_epoch vs a fromisoformat fast path (CPU s, CPU s, items)."""
    from td_graph_plugin.timeutil import format_time, parse_time, to_epoch

    values = [it["createdDateTime"] for b in bodies for it in orjson.loads(b)["value"]]
    clock = time.process_time
    t0 = clock()
    for v in values:
        ts = parse_time(v)
        format_time(ts), to_epoch(ts)
    t1 = clock()
    fromiso = datetime.fromisoformat
    for v in values:
        if len(v) == 20 and v[19] == "Z":  # 2026-11-26T10:00:00Z: already canonical
            v, fromiso(v).timestamp()
        else:
            ts = parse_time(v)
            format_time(ts), to_epoch(ts)
    t2 = clock()
    return t1 - t0, t2 - t1, len(values)


def alt_seen(bodies: list[bytes], workdir: str) -> tuple[dict[str, float], dict[str, float]]:
    """Dedup-key bookkeeping: today's schema vs keys clustered by (stream, event_time)."""
    from td_graph_plugin.timeutil import parse_time

    pages = []
    for b in bodies:
        pages.append([(it["id"], parse_time(it["createdDateTime"]).timestamp()) for it in orjson.loads(b)["value"]])
    out = {}
    for name, ddl, lookup, insert, prune in (
        ("today: PK (tenant, source, key) + index (tenant, source, event_time)",
         "CREATE TABLE seen (tenant TEXT NOT NULL, source TEXT NOT NULL, key TEXT NOT NULL, event_time REAL NOT NULL,"
         " PRIMARY KEY (tenant, source, key)) WITHOUT ROWID;"
         "CREATE INDEX seen_by_time ON seen (tenant, source, event_time);",
         "SELECT key FROM seen WHERE tenant=? AND source=? AND key IN ({marks})",
         "INSERT OR IGNORE INTO seen(tenant, source, key, event_time) VALUES ('t0000', '" + SOURCE + "', ?, ?)",
         "DELETE FROM seen WHERE tenant='t0000' AND source='" + SOURCE + "' AND event_time<?"),
        ("clustered: PK (stream, event_time, key), no index",
         "CREATE TABLE seen2 (stream INTEGER NOT NULL, event_time REAL NOT NULL, key TEXT NOT NULL,"
         " PRIMARY KEY (stream, event_time, key)) WITHOUT ROWID;",
         "SELECT key FROM seen2 WHERE stream=1 AND event_time BETWEEN ? AND ? AND key IN ({marks})",
         "INSERT OR IGNORE INTO seen2(stream, event_time, key) VALUES (1, ?, ?)",
         "DELETE FROM seen2 WHERE stream=1 AND event_time<?"),
    ):
        path = os.path.join(workdir, f"seen-{len(out)}.db")
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")  # keep every frame: the WAL size = bytes written
        db.executescript(ddl)
        clock = time.process_time
        wall0, t0 = time.perf_counter(), clock()
        for page in pages:
            keys = [k for k, _ in page]
            marks = ",".join("?" * len(keys))
            if "seen2" in lookup:
                lo, hi = min(t for _, t in page), max(t for _, t in page)
                db.execute(lookup.format(marks=marks), (lo, hi, *keys)).fetchall()
                rows = [(t, k) for k, t in page]
            else:
                db.execute(lookup.format(marks=marks), ("t0000", SOURCE, *keys)).fetchall()
                rows = page
            db.execute("BEGIN IMMEDIATE")
            db.executemany(insert, rows)
            db.execute("COMMIT")
        t1 = clock()
        db.execute("BEGIN IMMEDIATE")
        db.execute(prune, (time.time() - 900,))
        db.execute("COMMIT")
        t2 = clock()
        wall = time.perf_counter() - wall0
        wal_mb = os.path.getsize(path + "-wal") / 1e6
        db.close()
        out[name] = {"per_page": t1 - t0, "prune": t2 - t1, "wall": wall, "wal_mb_per_page": wal_mb / (len(pages) + 1)}
    return out["today: PK (tenant, source, key) + index (tenant, source, event_time)"], \
        out["clustered: PK (stream, event_time, key), no index"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="30 pages")
    ap.add_argument("--pages", type=int, help="pages of 1,000 sign-ins (default 100; quick 30)")
    args = ap.parse_args()
    pages = args.pages or (30 if args.quick else 100)
    machine = machine_info()
    work = bench_workdir("stages")
    secret = new_secret()
    try:
        with SimProcess(work) as sim:
            tenant = sim.add_tenants(1, secret=secret, sign_ins={"n": pages * 1000, "start_ago": 23 * 3600,
                                                                 "end_ago": 600})[0]
            bodies = fetch_pages(sim, tenant, secret, pages)
        say(f"stages: {len(bodies)} pages, {sum(map(len, bodies)) / len(bodies) / 1e6:.2f} MB each, replayed in-process")
        td_dir = tempfile.mkdtemp(dir=work)
        cost, n = td_graph_path(bodies, td_dir)
        base, nb = baseline_path(bodies)
        gc.set_threshold(50_000, 10, 10)
        cost_gc, _ = td_graph_path(bodies, tempfile.mkdtemp(dir=work))
        gc.set_threshold(700, 10, 10)
        t_now, t_fast, nt = alt_time(bodies)
        seen_now, seen_alt = alt_seen(bodies, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    us = lambda s, k: s / k * 1e6  # noqa: E731
    total = sum(cost.values())
    rows = [[f"td-graph: {k}", us(v, n), v / total] for k, v in cost.items()]
    rows.append(["td-graph: total", us(total, n), 1.0])
    btotal = sum(base.values())
    rows += [[f"baseline: {k}", us(v, nb), v / btotal] for k, v in base.items()]
    rows.append(["baseline: total", us(btotal, nb), 1.0])
    say(table(["stage", "CPU us/record", "share"], rows))
    say("")
    gtotal = sum(cost_gc.values())
    say(f"with gc.set_threshold(50000, 10, 10): td-graph total {us(gtotal, n):.1f} us/record "
        f"({gtotal / total - 1:+.0%})")
    say(f"time handling: parse_time+format_time+to_epoch {us(t_now, nt):.2f} us/record; "
        f"fromisoformat fast path {us(t_fast, nt):.2f} us/record")
    for label, s in (("today:    ", seen_now), ("clustered:", seen_alt)):
        say(f"dedup keys, {label} {us(s['per_page'], n):.2f} us/record per page + prune {us(s['prune'], n):.2f} "
            f"us/record; WAL written {s['wal_mb_per_page']:.2f} MB per 1,000-key commit (wall {s['wall']:.2f} s)")
    result = {
        "benchmark": "stages", "quick": args.quick, "machine": machine, "pages": len(bodies), "records": n,
        "td_graph_us_per_record": {k: us(v, n) for k, v in cost.items()},
        "td_graph_total_us": us(total, n), "baseline_us_per_record": {k: us(v, nb) for k, v in base.items()},
        "baseline_total_us": us(btotal, nb), "td_graph_total_us_gc_threshold_50000": us(gtotal, n),
        "time_handling_us": {"today": us(t_now, nt), "fromisoformat_fast_path": us(t_fast, nt)},
        "dedup_keys": {"today": {k: us(v, n) if k in ("per_page", "prune") else v for k, v in seen_now.items()},
                       "clustered_by_time": {k: us(v, n) if k in ("per_page", "prune") else v
                                             for k, v in seen_alt.items()}},
    }
    say(f"result: {write_result('stages', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
