"""Issue 2 end to end: the real td-graph process against the TLS Graph simulator."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from td_graph_plugin.simulator import GraphSimulator
from td_graph_plugin.timeutil import utcnow
from tests.integration_support import FOUNDATION, env_for, parse_stdout, read_records, td_graph, write_config


@pytest.fixture
def sim(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as s:
        yield s


def by_source(records):
    out = collections.defaultdict(list)
    for r in records:
        out[r["source"]].append(r)
    return out


def test_run_once_collects_the_four_sources_then_exactly_the_changes(sim, tmp_path):
    tenant = sim.add_tenant(profile="e5")
    cfg = write_config(sim, tenant, tmp_path)
    first = td_graph("run", "-c", cfg, "--once", env=env_for(tenant))
    assert first.returncode == 0, first.stderr.decode()
    got = by_source(parse_stdout(first.stdout))
    assert sorted(got) == sorted(FOUNDATION)
    assert {r["id"] for r in got["audit_logs.sign_ins"]} == {s["id"] for s in tenant.sign_ins}
    assert {r["id"] for r in got["audit_logs.directory_audits"]} == {a["id"] for a in tenant.directory_audits}
    assert {r["id"] for r in got["security.alerts_v2"]} == {a["id"] for a in tenant.alerts}
    assert {r["id"] for r in got["directory.users"]} == {u["id"] for u in tenant.users}
    for records in got.values():
        assert len(records) == len({r["id"] for r in records}), "no record twice"
    rec = got["audit_logs.sign_ins"][0]
    assert rec["tenant"] == "demo" and rec["tenant_id"] == tenant.tenant_id and rec["event_time"].endswith("Z")

    # The tenant lives on: new events, a late one (inside the overlap), updated alerts, user changes.
    now = utcnow()
    new = tenant.add_sign_ins(3, start=now - timedelta(minutes=5), end=now - timedelta(minutes=3))
    late = tenant.add_sign_ins(1, start=now - timedelta(minutes=12), end=now - timedelta(minutes=11))
    audits = tenant.add_directory_audits(2, start=now - timedelta(minutes=5), end=now - timedelta(minutes=3))
    updated = tenant.update_alerts(2)
    tenant.change_users(2)
    second = td_graph("run", "-c", cfg, "--once", env=env_for(tenant))
    assert second.returncode == 0, second.stderr.decode()
    got2 = by_source(parse_stdout(second.stdout))
    assert sorted(r["id"] for r in got2["audit_logs.sign_ins"]) == sorted(s["id"] for s in new + late)
    assert sorted(r["id"] for r in got2["audit_logs.directory_audits"]) == sorted(a["id"] for a in audits)
    assert sorted(r["id"] for r in got2["security.alerts_v2"]) == sorted(a["id"] for a in updated)
    assert {r["data"]["lastUpdateDateTime"] for r in got2["security.alerts_v2"]} == {a["lastUpdateDateTime"] for a in updated}
    assert len(got2["directory.users"]) == 2

    # Nothing changed: nothing is emitted.
    third = td_graph("run", "-c", cfg, "--once", env=env_for(tenant))
    assert third.returncode == 0 and parse_stdout(third.stdout) == []


def test_kill_9_during_backfill_loses_nothing_and_duplicates_nothing(sim, tmp_path):
    """SIGKILL a running `td-graph run` several times during a 50,000-event backfill."""
    tenant = sim.add_tenant(profile="e5", volumes={"sign_ins": 50000, "directory_audits": 2000, "alerts": 500, "users": 3000})
    sim.page_delay = 0.01
    out = tmp_path / "records.ndjson"
    cfg = write_config(sim, tenant, tmp_path, output=str(out), settings={
        "audit_logs.sign_ins": {"lookback": "30h", "window_chunk": "3h"},
        "audit_logs.directory_audits": {"lookback": "30h"},
        "security.alerts_v2": {"lookback": "30h"},
    })
    rng = random.Random(7)
    kills = 0
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-m", "td_graph_plugin.cli.main", "run", "-c", cfg, "--once"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_for(tenant))
        start_size = out.stat().st_size if out.exists() else 0
        deadline = time.monotonic() + 60
        # Let it write something first, then kill at a random moment.
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.stat().st_size > start_size:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.05, 0.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    assert kills >= 3, "the backfill finished too fast to be interrupted"
    final = td_graph("run", "-c", cfg, "--once", env=env_for(tenant), timeout=300)
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    records = read_records(out)
    counts = collections.Counter((r["source"], r["id"]) for r in records)
    dupes = [k for k, n in counts.items() if n > 1]
    assert not dupes, f"{len(dupes)} records twice, e.g. {dupes[:3]}"
    got = by_source(records)
    assert {r["id"] for r in got["audit_logs.sign_ins"]} == {s["id"] for s in tenant.sign_ins}
    assert len(got["audit_logs.sign_ins"]) == 50000
    assert {r["id"] for r in got["audit_logs.directory_audits"]} == {a["id"] for a in tenant.directory_audits}
    assert {r["id"] for r in got["security.alerts_v2"]} == {a["id"] for a in tenant.alerts}
    assert {r["id"] for r in got["directory.users"]} == {u["id"] for u in tenant.users}


def test_sigterm_stops_cleanly_with_state_saved(sim, tmp_path):
    tenant = sim.add_tenant(profile="e5", volumes={"sign_ins": 20000})
    sim.page_delay = 0.25  # 20 pages: ~5 s, so SIGTERM lands mid-backfill even on a loaded machine
    out = tmp_path / "records.ndjson"
    # lookback beyond the generated 24 h: events at the far edge must not age out between runs
    cfg = write_config(sim, tenant, tmp_path, output=str(out), sources=["audit_logs.sign_ins"],
                       settings={"audit_logs.sign_ins": {"lookback": "25h"}})
    proc = subprocess.Popen([sys.executable, "-m", "td_graph_plugin.cli.main", "run", "-c", cfg],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(tenant))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.exists() and out.stat().st_size > 0):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"state saved" in err
    partial = len(read_records(out))
    assert 0 < partial < 20000
    done = td_graph("run", "-c", cfg, "--once", env=env_for(tenant))
    assert done.returncode == 0
    assert len(read_records(out)) == 20000


def test_secret_never_in_output_logs_state_or_cassettes(sim, tmp_path):
    tenant = sim.add_tenant(profile="e5")
    out = tmp_path / "records.ndjson"
    cfg = write_config(sim, tenant, tmp_path, output=str(out))
    run = td_graph("--log-level", "debug", "run", "-c", cfg, "--once", env=env_for(tenant))
    assert run.returncode == 0, run.stderr.decode()
    doctor = td_graph("doctor", "-c", cfg, env=env_for(tenant))
    secret = tenant.client_secret.encode()
    assert len(secret) >= 16
    blobs = {"stdout": run.stdout, "stderr": run.stderr, "doctor": doctor.stdout + doctor.stderr, "output": out.read_bytes()}
    for f in tmp_path.iterdir():
        if f.name.startswith("state.db"):
            blobs[f.name] = f.read_bytes()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for folder, _, files in os.walk(os.path.join(root, "cassettes")):
        for name in files:
            with open(os.path.join(folder, name), "rb") as fh:
                blobs[name] = fh.read()
    assert len(blobs["output"]) > 1000 and len(blobs["stderr"]) > 500, "the check must look at real output"
    import re

    token_value = re.compile(rb'"access_token"\s*:\s*"(?!REDACTED")[^"]+"|Bearer (?!REDACTED)[A-Za-z0-9._~+/=-]{8,}')
    for where, blob in blobs.items():
        assert secret not in blob, f"client secret found in {where}"
        assert not token_value.search(blob), f"a token value found in {where}"


def test_demo_prints_ndjson(tmp_path):
    proc = td_graph("demo", "--rounds", "2", timeout=180, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    records = parse_stdout(proc.stdout)
    sources = {r["source"] for r in records}
    assert {"audit_logs.sign_ins", "security.alerts_v2", "directory.users"} <= sources
    assert b"pass 2" in proc.stderr
