"""Diagnostic - where td-graph's per-record CPU goes on the window path, stage by stage.

    python benchmarks/stages.py            # 100 pages of 1,000 sign-ins
    python benchmarks/stages.py --quick    # 30 pages

Fetches real pages from the simulator once (requests, TLS), then replays them in this process
through td-graph's own functions in the order ``collector.window`` uses them and times each
stage with ``time.process_time`` (CPU of this process, including SQLite's).  No network, no
threads: this is the CPU floor of the per-record path.  Three td-graph paths, same pages, rounds
interleaved (the machine is shared):

* **dict** (before issue 16): ``loads_page`` with orjson, every object a dict; the fields read
  with ``dict.get``; the envelope re-encodes the object;
* **raw** (issue 16, per item): ``loads_page`` with ``RAW_FIELDS`` set -
  msgspec keeps each object's bytes plus the fields the collector reads; the envelope splices
  the bytes back (``encoding.encode_record``).
* **per-page** (issue 16, the default for window sources): ``loads_page`` gives ``RawItems``
  (the fields as strings, decoded by msgspec in C) and ``window.page_lines_writer`` builds the
  page's dedup keys and lines from those lists: no per-record dict, no per-record orjson of
  the envelope.

Both share ``parse_time`` (its canonical fast path), ``window_key``, ``StateStore.seen_keys``,
``make_record``, ``FileOutput.write`` (with its fdatasync), ``StateStore.commit`` and the
window-end prune.  The raw baseline's own work (orjson decode, envelope, encode) is timed too.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import orjson  # noqa: E402
import requests  # noqa: E402

from _common import (  # noqa: E402
    SimProcess, bench_workdir, iso, machine_info, median, new_secret, say, table, write_result,
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


def page_path(bodies: list[bytes], workdir: str) -> tuple[dict[str, float], int]:
    """The window collector's per-page path (the default for window sources since the second
    part of issue 16): ``loads_page`` gives ``RawItems``, ``window.page_lines_writer`` builds the
    page's lines and dedup keys from the decoded lists (its ``seen_keys`` call timed apart)."""
    from td_graph_plugin.collector.window import page_lines_writer
    from td_graph_plugin.config.model import TenantConfig
    from td_graph_plugin.graph.jsonbody import RAW_FIELDS, loads_page
    from td_graph_plugin.outputs.file import FileOutput
    from td_graph_plugin.plugins import create_plugin_manager, load_catalogue
    from td_graph_plugin.state import Commit, StateStore
    from td_graph_plugin.timeutil import to_epoch

    spec = load_catalogue(create_plugin_manager(load_entrypoints=False))[SOURCE]
    tenant = TenantConfig(name="t0000", tenant_id="00000000-0000-0000-0000-000000000000",
                          client_id="00000000-0000-0000-0000-000000000001")
    state = StateStore(os.path.join(workdir, "state.db"))
    out = FileOutput(os.path.join(workdir, "out.ndjson"))
    out.open(None)
    cost = dict.fromkeys(STAGES, 0.0)
    clock = time.process_time
    cursor = {"done": None, "active": {"lower": "2026-01-01T00:00:00Z", "upper": "2026-01-02T00:00:00Z"}}
    write = page_lines_writer(tenant, spec, "2026-01-01T00:00:00.000Z", 1767312000.0, None)
    lookup = [0.0]

    def seen_keys(*a):
        t = clock()
        try:
            return state.seen_keys(*a)
        finally:
            lookup[0] += clock() - t

    token = RAW_FIELDS.set(("@removed", "createdDateTime", "id"))
    n = 0
    try:
        for body in bodies:
            t0 = clock()
            items = loads_page(body)["value"]
            t1 = clock()
            lookup[0] = 0.0
            lines, seen, newest = write(items, seen_keys)
            t2 = clock()
            pos = out.write(lines)
            t3 = clock()
            state.commit(Commit(tenant.name, SOURCE, cursor=cursor, seen=seen, newest_event=to_epoch(newest)),
                         output=(out.name, pos, out.file_id))
            t4 = clock()
            cost["decode (loads_page)"] += t1 - t0
            cost["seen_keys lookup"] += lookup[0]
            cost["per-page lines (page_lines_writer)"] += t2 - t1 - lookup[0]
            cost["file write + fdatasync"] += t3 - t2
            cost["state commit (keys, cursor, offset)"] += t4 - t3
            n += len(lines)
        t0 = clock()
        state.commit(Commit(tenant.name, SOURCE, cursor={"done": "x", "active": None},
                            prune_seen_before=time.time() - 900, success=True))
        cost["window-end prune"] += clock() - t0
    finally:
        RAW_FIELDS.reset(token)
        out.close()
        state.close()
    return cost, n


def td_graph_path(bodies: list[bytes], workdir: str, raw: bool) -> tuple[dict[str, float], int]:
    """The window path as ``collector.window._collect_one`` runs it, one stage at a time."""
    from td_graph_plugin.collector.context import make_record
    from td_graph_plugin.collector.encoding import encode_record
    from td_graph_plugin.collector.keys import window_key
    from td_graph_plugin.config.model import TenantConfig
    from td_graph_plugin.graph.jsonbody import RAW_FIELDS, loads_page
    from td_graph_plugin.outputs.file import FileOutput
    from td_graph_plugin.state import Commit, StateStore
    from td_graph_plugin.timeutil import CANONICAL, format_time, parse_time, to_epoch

    tenant = TenantConfig(name="t0000", tenant_id="00000000-0000-0000-0000-000000000000",
                          client_id="00000000-0000-0000-0000-000000000001")
    state = StateStore(os.path.join(workdir, "state.db"))
    out = FileOutput(os.path.join(workdir, "out.ndjson"))
    out.open(None)
    cost = dict.fromkeys(STAGES, 0.0)
    clock = time.process_time
    collected_at = "2026-01-01T00:00:00.000Z"
    cursor = {"done": None, "active": {"lower": "2026-01-01T00:00:00Z", "upper": "2026-01-02T00:00:00Z"}}
    token = RAW_FIELDS.set(("@removed", "createdDateTime", "id") if raw else None)
    n = 0
    try:
        for body in bodies:
            t0 = clock()
            items = loads_page(body)["value"]
            t1 = clock()
            keyed = []
            for item in items:
                obj_id = item.get("id")
                if not isinstance(obj_id, str) or not obj_id:
                    continue
                raw_ts = item.get("createdDateTime")
                ts = parse_time(raw_ts)
                keyed.append((window_key(obj_id, None), ts.timestamp(), item, ts, raw_ts))
            t2 = clock()
            already = state.seen_keys(tenant.name, SOURCE, [(k, t) for k, t, _, _, _ in keyed])
            t3 = clock()
            records, seen, batch = [], [], set()
            for key, epoch, item, ts, raw_ts in keyed:
                if key in already or key in batch:
                    continue
                batch.add(key)
                seen.append((key, epoch))
                event_time = raw_ts if CANONICAL.match(raw_ts) else format_time(ts)
                records.append(make_record(tenant, SOURCE, item["id"], event_time, collected_at, item))
            t4 = clock()
            lines = [encode_record(r) + b"\n" for r in records]
            t5 = clock()
            pos = out.write(lines)
            t6 = clock()
            state.commit(Commit(tenant.name, SOURCE, cursor=cursor, seen=seen, newest_event=to_epoch(ts)),
                         output=(out.name, pos, out.file_id))
            t7 = clock()
            for name, a, b in zip([k for k in STAGES if not k.startswith("per-page")], (t0, t1, t2, t3, t4, t5, t6),
                                  (t1, t2, t3, t4, t5, t6, t7)):
                cost[name] += b - a
            n += len(records)
        t0 = clock()
        state.commit(Commit(tenant.name, SOURCE, cursor={"done": "x", "active": None},
                            prune_seen_before=time.time() - 900, success=True))
        cost["window-end prune"] += clock() - t0
    finally:
        RAW_FIELDS.reset(token)
        out.close()
        state.close()
    return cost, n


STAGES = ["decode (loads_page)", "fields + parse_time + dedup key", "seen_keys lookup", "make_record + event_time",
          "encode (encode_record)", "per-page lines (page_lines_writer)", "file write + fdatasync",
          "state commit (keys, cursor, offset)", "window-end prune"]


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="30 pages, 3 rounds")
    ap.add_argument("--pages", type=int, help="pages of 1,000 sign-ins (default 100; quick 30)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 5; quick 3)")
    args = ap.parse_args()
    pages = args.pages or (30 if args.quick else 100)
    rounds = args.rounds or (3 if args.quick else 5)
    machine = machine_info()
    work = bench_workdir("stages")
    secret = new_secret()
    gc.set_threshold(50_000, 10, 10)  # as `td-graph run` sets it
    runs: dict[str, list[tuple[dict[str, float], int]]] = {"dict": [], "raw": [], "page": [], "baseline": []}
    try:
        with SimProcess(work) as sim:
            tenant = sim.add_tenants(1, secret=secret, sign_ins={"n": pages * 1000, "start_ago": 23 * 3600,
                                                                 "end_ago": 600})[0]
            bodies = fetch_pages(sim, tenant, secret, pages)
        say(f"stages: {len(bodies)} pages, {sum(map(len, bodies)) / len(bodies) / 1e6:.2f} MB each, replayed in-process, "
            f"{rounds} interleaved rounds")
        for r in range(rounds):
            order = ["dict", "raw", "page", "baseline"]
            order = order[r % 4:] + order[: r % 4]
            for way in order:
                if way == "baseline":
                    runs[way].append(baseline_path(bodies))
                elif way == "page":
                    runs[way].append(page_path(bodies, tempfile.mkdtemp(dir=work)))
                else:
                    runs[way].append(td_graph_path(bodies, tempfile.mkdtemp(dir=work), raw=(way == "raw")))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med_us(way: str) -> dict[str, float]:
        keys = runs[way][0][0].keys()
        return {k: median(c[k] / n * 1e6 for c, n in runs[way]) for k in keys}

    d, r, p, b = med_us("dict"), med_us("raw"), med_us("page"), med_us("baseline")
    dt, rt, pt, bt = (median(sum(c.values()) / n * 1e6 for c, n in runs[w]) for w in ("dict", "raw", "page", "baseline"))
    rows = [[k, d[k], r[k], p[k], p[k] / r[k] if r[k] else float("nan")] for k in STAGES]
    rows.append(["td-graph total", dt, rt, pt, pt / rt])
    say(table(["stage (median of rounds)", "dict us/record", "raw us/record", "per-page us/record", "page/raw"], rows))
    say("")
    say(table(["baseline stage", "us/record"], [[k, v] for k, v in b.items()] + [["baseline total", bt]]))
    say("")
    say(f"td-graph per-page path (window.py's default): {pt:.1f} us/record CPU vs raw per-item path {rt:.1f} "
        f"({pt / rt - 1:+.0%}) and dict path {dt:.1f} ({pt / dt - 1:+.0%}); baseline (decode + envelope + encode) {bt:.1f}")
    result = {
        "benchmark": "stages", "quick": args.quick, "machine": machine, "pages": len(bodies), "rounds": rounds,
        "dict_us_per_record": d, "raw_us_per_record": r, "page_us_per_record": p, "baseline_us_per_record": b,
        "dict_total_us": dt, "raw_total_us": rt, "page_total_us": pt, "baseline_total_us": bt,
        "runs": {w: [{"us": {k: v / n * 1e6 for k, v in c.items()}, "records": n} for c, n in runs[w]] for w in runs},
    }
    say(f"result: {write_result('stages', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
