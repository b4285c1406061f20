"""Benchmark - the cluster (issue 15): 1,000 simulated tenants over 3 ``td-graph run`` replicas.

    python benchmarks/cluster.py            # 1,000 tenants, 3 replicas, lease TTL 10 s (~3 min)
    python benchmarks/cluster.py --quick    # 90 tenants, lease TTL 3 s (~1 min)

A throwaway PostgreSQL server (``tests/pg_support.PgServer``: initdb + pg_ctl in a temporary
folder, as the ``postgres`` user when root) holds the shared state (``state.url``); three
replicas ``r1``, ``r2``, ``r3`` (``td-graph run -c FILE``, distinct ``cluster.replica``, short
``cluster.lease_ttl``) collect one cheap source per tenant (``audit_logs.sign_ins``, a handful of
sign-ins, polled every 5 minutes, pacing lifted) from the simulator in its own process.  The
benchmark reads ``td_graph.leases`` every 0.2 s (``owner``, ``epoch``, ``expires_at > now()``):

(a) start: all three replicas started at once -> time until every tenant is owned by a live
    replica and none owns more than the ceiling (tenants / 3 rounded up);
(b) takeover: SIGKILL of the replica holding most tenants -> time until every tenant it held
    is owned by a live replica.  Target: <= lease TTL + one coordinator tick (TTL / 3);
(c) join: the killed replica starts again (same name) -> time until the three counts differ by
    at most one again, and how many leases moved (owner changed; minimum = what the joiner ends
    up with) and how many acquisitions that took (epoch increments; equal to the moves when
    nothing thrashes).  After each phase the leases are watched for a further ``--settle``
    seconds: any owner change then is thrash.

Every process the benchmark starts (replicas, simulator, PostgreSQL) is ended in ``finally``,
by pid, also on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    ROOT, SimProcess, bench_workdir, child_env, machine_info, new_secret, say, table, td_graph_cmd,
    td_graph_config, verdict, write_result, write_yaml,
)

sys.path.insert(0, os.path.join(ROOT, "tests"))
from pg_support import PgServer  # noqa: E402

SOURCE = "audit_logs.sign_ins"
VOLUMES = {k: 0 for k in (
    "sign_ins_non_interactive", "sign_ins_service_principal", "sign_ins_managed_identity", "provisioning",
    "risky_users", "risk_detections", "risky_service_principals", "service_principal_risk_detections",
    "groups", "devices", "applications", "managed_identities", "app_consent_requests", "managed_devices",
    "intune_audit_events", "alerts", "directory_audits",
)} | {"users": 2, "sign_ins": 5, "secure_score_days": 1}
POLL = 0.2
_TICK = os.sysconf("SC_CLK_TCK")


class Leases:
    """Reads ``td_graph.leases`` from the benchmark's own connection."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True, application_name="bench-cluster")

    def snapshot(self) -> dict[str, tuple[str | None, int]]:
        """tenant -> (owner if the lease is live else None, epoch)."""
        try:
            with self.conn.cursor() as cur:
                cur.execute("SELECT tenant, CASE WHEN owner IS NOT NULL AND expires_at > now() THEN owner END, epoch "
                            "FROM td_graph.leases")
                return {t: (o, int(e)) for t, o, e in cur.fetchall()}
        except Exception as exc:  # the schema is created by the first replica
            if "does not exist" in str(exc):
                return {}
            raise

    def close(self) -> None:
        self.conn.close()


def counts(snap: dict[str, tuple[str | None, int]], live: set[str]) -> Counter:
    return Counter(o for o, _ in snap.values() if o in live)


def all_owned(snap, tenants: list[str], live: set[str]) -> bool:
    return len(snap) >= len(tenants) and all(snap.get(t, (None, 0))[0] in live for t in tenants)


def balanced(snap, tenants: list[str], live: set[str], slack: int) -> bool:
    """Every tenant owned by a live replica, every live replica owns some, max - min <= slack."""
    if not all_owned(snap, tenants, live):
        return False
    c = counts(snap, live)
    return set(c) == live and max(c.values()) - min(c.values()) <= slack


def watch(leases: Leases, cond, timeout: float, what: str) -> tuple[float, dict, list[dict]]:
    """Poll until ``cond(snapshot)``; (seconds, final snapshot, owner-change trace)."""
    t0 = time.monotonic()
    trace: list[dict] = []
    prev = None
    while True:
        snap = leases.snapshot()
        now = time.monotonic() - t0
        if prev is not None:
            changed = sum(1 for t, (o, _) in snap.items() if prev.get(t, (None, 0))[0] != o)
            if changed:
                trace.append({"t": round(now, 2), "owner_changes": changed})
        prev = snap
        if cond(snap):
            return now, snap, trace
        if now > timeout:
            raise TimeoutError(f"{what}: not reached after {timeout:.0f} s; counts {dict(Counter(o for o, _ in snap.values()))}")
        time.sleep(POLL)


def settle(leases: Leases, seconds: float) -> dict:
    """Watch the leases for ``seconds``: owner changes (live -> another live owner) and epochs."""
    first = prev = leases.snapshot()
    moves = gaps = 0
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        time.sleep(POLL)
        snap = leases.snapshot()
        for t, (o, _) in snap.items():
            p = prev.get(t, (None, 0))[0]
            if o != p:
                if o is None:
                    gaps += 1
                else:
                    moves += 1
        prev = snap
    epochs = sum(e for _, e in prev.values()) - sum(e for _, e in first.values())
    return {"seconds": seconds, "owner_changes": moves, "unowned_moments": gaps, "acquisitions": epochs}


def proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except OSError:
        return float("nan")


class Replicas:
    def __init__(self, work: str, cfg_for, env: dict[str, str]) -> None:
        self.work, self.cfg_for, self.env = work, cfg_for, env
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: list[str] = []
        self._files: list = []

    def start(self, name: str) -> None:
        log = os.path.join(self.work, f"{name}.{len(self.logs)}.log")
        self.logs.append(log)
        fh = open(log, "wb")
        self._files.append(fh)
        cmd = td_graph_cmd(self.cfg_for(name))[:-1]  # no --once: a service
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=fh,
                                            stdin=subprocess.DEVNULL, cwd=self.work)

    def kill(self, name: str) -> None:
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)

    def check_alive(self, names) -> None:
        for n in names:
            if self.procs[n].poll() is not None:
                raise RuntimeError(f"replica {n} exited {self.procs[n].returncode}; see {self.logs}")

    def stop_all(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for n, p in self.procs.items():
            try:
                codes[n] = p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[n] = p.wait(timeout=30)
        for fh in self._files:
            fh.close()
        return codes

    def log_counts(self) -> dict[str, int]:
        # "lease lost: tenant": the coordinator dropped a lease (renewal failed or local expiry);
        # "lease lost, dropped": the engine ended a job whose page found no valid lease.
        pats = {"takeover": re.compile(r"taken over from replica"),
                "coordinator_lease_lost": re.compile(r"lease lost: tenant"),
                "job_dropped_lease_lost": re.compile(r"lease lost, dropped"),
                "tick_failed": re.compile(r"cluster tick failed"), "errors": re.compile(r"\bERROR\b"),
                "traceback": re.compile(r"Traceback")}
        out = Counter()
        for log in self.logs:
            try:
                text = open(log, encoding="utf-8", errors="replace").read()
            except OSError:
                continue
            for k, rx in pats.items():
                out[k] += len(rx.findall(text))
            name = os.path.basename(log).split(".")[0]
            out[f"job_dropped_lease_lost[{name}]"] += len(pats["job_dropped_lease_lost"].findall(text))
        return dict(out)

    def drop_spans(self) -> dict[str, list[str]]:
        """Per log: [first, last] time of 'lease lost, dropped' (a job that ran without its lease)."""
        out = {}
        for log in self.logs:
            try:
                text = open(log, encoding="utf-8", errors="replace").read()
            except OSError:
                continue
            times = re.findall(r"^(\S+) WARNING \S+: \S+: lease lost, dropped", text, re.M)
            if times:
                out[os.path.basename(log)] = [times[0], times[-1], len(times)]
        return out


def _utc() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _raise_on_term(signum, frame):  # noqa: ARG001 - SIGTERM runs the finally blocks
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 90 tenants, lease TTL 3 s")
    ap.add_argument("--tenants", type=int, help="simulated tenants (default 1000; quick 90)")
    ap.add_argument("--ttl", type=float, help="cluster.lease_ttl in seconds (default 10; quick 3)")
    ap.add_argument("--settle", type=float, help="seconds the leases are watched after each phase (default 2 TTL)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (replica logs)")
    ap.add_argument("--workers", type=int, default=8, help="engine.workers per replica (default 8)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _raise_on_term)
    n = args.tenants or (90 if args.quick else 1000)
    ttl = args.ttl or (3.0 if args.quick else 10.0)
    tick = ttl / 3
    settle_s = args.settle if args.settle is not None else 2 * ttl
    names = ["r1", "r2", "r3"]
    ceiling = math.ceil(n / len(names))
    machine = machine_info()
    say(f"cluster: {n} tenants x 1 source over {len(names)} replicas, lease TTL {ttl:g} s (tick {tick:.2f} s); "
        f"{machine['nproc']} x {machine['cpu_model']}; load average {machine['loadavg_at_start']}")
    work = bench_workdir("cluster")
    secret = new_secret()
    pg = sim = reps = leases = None
    result: dict = {"benchmark": "cluster", "quick": args.quick, "machine": machine, "tenants": n,
                    "replicas": names, "lease_ttl": ttl, "tick": tick, "source": SOURCE, "workers": args.workers}
    loads: dict[str, tuple] = {}
    try:
        t0 = time.monotonic()
        pg = PgServer.start()
        url = pg.new_database()
        say(f"PostgreSQL: {pg.bindir} on port {pg.port}, started in {time.monotonic() - t0:.1f} s")
        sim = SimProcess(work)
        t0 = time.monotonic()
        tenants = sim.add_tenants(n, secret=secret, volumes=VOLUMES)
        say(f"simulator: {sim.base_url}, {n} tenants generated in {time.monotonic() - t0:.1f} s")
        names_t = [f"t{i:04d}" for i in range(n)]

        def cfg_for(replica: str) -> str:
            c = td_graph_config(sim, tenants, "unused", os.path.join(work, f"{replica}.ndjson"), sources=[SOURCE],
                                workers=args.workers, log_level="info",
                                settings={SOURCE: {"interval": "5m", "lookback": "25h"}})
            c["state"] = {"url": url}
            c["cluster"] = {"replica": replica, "lease_ttl": f"{ttl:g}s"}
            return write_yaml(c, os.path.join(work, f"{replica}.yaml"))

        reps = Replicas(work, cfg_for, child_env(secret))
        # The first replica creates the schema; the benchmark's reader connects after it exists.
        leases = Leases(url)

        # (a) start: all three at once.
        loads["start"] = os.getloadavg()
        marks: dict[str, str] = {}
        result["phase_marks_utc"] = marks
        marks["start"] = _utc()
        t_start = time.monotonic()
        for r in names:
            reps.start(r)
        live = set(names)
        t_owned, _, _ = watch(leases, lambda s: all_owned(s, names_t, live), 300 + 10 * ttl, "all owned")
        t_owned += 0.0
        t_bal, snap, trace_a = watch(leases, lambda s: balanced(s, names_t, live, 1)
                                     and max(counts(s, live).values()) <= ceiling, 300 + 20 * ttl, "balanced")
        t_bal = time.monotonic() - t_start
        marks["balanced"] = _utc()
        t_owned_abs = t_owned  # measured from the first poll, which is right after the starts
        reps.check_alive(names)
        acq_a = sum(e for _, e in snap.values())
        c_a = counts(snap, live)
        say(f"(a) start: all owned after {t_owned_abs:.1f} s, balanced {dict(sorted(c_a.items()))} after {t_bal:.1f} s, "
            f"{acq_a} acquisitions for {n} tenants")
        settle_a = settle(leases, settle_s)
        say(f"    then {settle_s:.0f} s watched: {settle_a['owner_changes']} owner changes, "
            f"{settle_a['acquisitions']} acquisitions")

        # (b) takeover: SIGKILL of the replica holding most tenants.
        snap = leases.snapshot()
        c_b0 = counts(snap, live)
        victim = max(sorted(c_b0), key=lambda r: c_b0[r])
        held = [t for t, (o, _) in snap.items() if o == victim]
        cpu_before_kill = {r: proc_cpu(reps.procs[r].pid) for r in names}
        loads["kill"] = os.getloadavg()
        t_kill = time.monotonic()
        marks["kill"] = _utc()
        reps.kill(victim)
        live = set(names) - {victim}
        t_take, snap, trace_b = watch(leases, lambda s: all(s.get(t, (None, 0))[0] in live for t in held),
                                      60 + 10 * ttl, "takeover")
        t_take = time.monotonic() - t_kill
        t_bal_b, snap, _ = watch(leases, lambda s: balanced(s, names_t, live, 1), 60 + 10 * ttl, "balanced after kill")
        t_bal_b = time.monotonic() - t_kill
        c_b = counts(snap, live)
        target_b = ttl + tick
        say(f"(b) SIGKILL {victim} ({len(held)} tenants): all taken over after {t_take:.1f} s "
            f"(target <= TTL + tick = {target_b:.1f} s: {verdict(t_take <= target_b)}), "
            f"balanced {dict(sorted(c_b.items()))} after {t_bal_b:.1f} s")
        settle_b = settle(leases, settle_s)
        say(f"    then {settle_s:.0f} s watched: {settle_b['owner_changes']} owner changes, "
            f"{settle_b['acquisitions']} acquisitions")

        # (c) join: the killed replica starts again.
        before = leases.snapshot()
        loads["join"] = os.getloadavg()
        t_join = time.monotonic()
        marks["join"] = _utc()
        reps.start(victim)
        live = set(names)
        _, snap, trace_c = watch(leases, lambda s: balanced(s, names_t, live, 1), 120 + 20 * ttl, "balanced after join")
        t_bal_c = time.monotonic() - t_join
        c_c = counts(snap, live)
        moved = sum(1 for t in names_t if before.get(t, (None, 0))[0] != snap.get(t, (None, 0))[0])
        acq_c = sum(e for _, e in snap.values()) - sum(e for _, e in before.values())
        minimum = c_c[victim]
        say(f"(c) {victim} joins: balanced {dict(sorted(c_c.items()))} after {t_bal_c:.1f} s; {moved} leases moved "
            f"(minimum {minimum}), {acq_c} acquisitions")
        settle_c = settle(leases, settle_s)
        say(f"    then {settle_s:.0f} s watched: {settle_c['owner_changes']} owner changes, "
            f"{settle_c['acquisitions']} acquisitions")
        reps.check_alive(names)
        cpu_end = {r: proc_cpu(reps.procs[r].pid) for r in names}
        loads["end"] = os.getloadavg()

        rows = [
            ["(a) start -> all owned", t_owned_abs, "", "", "", ""],
            ["(a) start -> balanced", t_bal, "", dict(sorted(c_a.items())), acq_a,
             f"settle: {settle_a['owner_changes']} changes"],
            [f"(b) SIGKILL {victim} -> {len(held)} taken over", t_take, f"<= {target_b:.1f} s {verdict(t_take <= target_b)}",
             "", "", ""],
            ["(b) SIGKILL -> balanced on 2", t_bal_b, "", dict(sorted(c_b.items())), "",
             f"settle: {settle_b['owner_changes']} changes"],
            [f"(c) {victim} joins -> balanced", t_bal_c, "", dict(sorted(c_c.items())), acq_c,
             f"moved {moved} (min {minimum}); settle: {settle_c['owner_changes']} changes"],
        ]
        say("")
        say(table(["phase", "seconds", "target", "counts", "acquisitions", "notes"], rows))
        say(f"load average (1/5/15 min) at start {loads['start']}, kill {loads['kill']}, join {loads['join']}, "
            f"end {loads['end']}")
        no_thrash = (settle_a["owner_changes"] == 0 and settle_b["owner_changes"] == 0
                     and settle_c["owner_changes"] == 0 and moved == minimum)
        say(f"takeover <= TTL + tick: {verdict(t_take <= target_b)}; join moved only the joiner's share and "
            f"nothing moved while settled (no thrash): {verdict(no_thrash)}")
        result.update({
            "start": {"all_owned_s": t_owned_abs, "balanced_s": t_bal, "counts": dict(c_a), "ceiling": ceiling,
                      "acquisitions": acq_a, "trace": trace_a[-50:], "settle": settle_a},
            "takeover": {"victim": victim, "held": len(held), "taken_over_s": t_take, "target_s": target_b,
                         "balanced_s": t_bal_b, "counts": dict(c_b), "trace": trace_b[-50:], "settle": settle_b},
            "join": {"replica": victim, "balanced_s": t_bal_c, "counts": dict(c_c), "moved": moved,
                     "minimum_moves": minimum, "acquisitions": acq_c, "trace": trace_c[-50:], "settle": settle_c},
            "replica_cpu_s": {"at_kill": cpu_before_kill, "at_end": cpu_end},
            "loadavg": loads,
            "targets": {"takeover_within_ttl_plus_tick": t_take <= target_b, "no_thrash": no_thrash},
        })
    finally:
        if leases is not None:
            leases.close()
        if reps is not None:
            result["exit_codes"] = reps.stop_all()
            result["log_counts"] = reps.log_counts()
            result["job_drop_spans"] = reps.drop_spans()
            say(f"jobs dropped for want of a lease (first, last, count per log): {result['job_drop_spans']}")
            say(f"replicas stopped: {result['exit_codes']}; log lines: {result['log_counts']}")
        if sim is not None:
            sim.close()
        if pg is not None:
            pg.close()
        if "targets" in result and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"work files kept in {work}" + ("" if "targets" in result else "; failed, no result written"))
    say(f"result: {write_result('cluster', result)}")
    return 0 if all(result["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
