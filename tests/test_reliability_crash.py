"""Issue 8 crash suite: 20 random SIGKILLs during a 50,000-record multi-source backfill to the
file output, then completion: no record lost, none twice."""

from __future__ import annotations

import collections
import random
import signal
import subprocess
import sys
import time

import pytest

from td_graph_plugin.simulator import GraphSimulator
from tests.integration_support import env_for, read_records, td_graph, write_config

pytestmark = pytest.mark.slow


def test_twenty_random_sigkills(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as sim:
        tenant = sim.add_tenant(profile="e5", volumes={"sign_ins": 40000, "directory_audits": 6000, "alerts": 1500, "users": 2500})
        sim.page_delay = 0.05
        out = tmp_path / "records.ndjson"
        cfg = write_config(sim, tenant, tmp_path, output=str(out), settings={
            "audit_logs.sign_ins": {"lookback": "30h", "window_chunk": "2h", "page_size": 250},
            "audit_logs.directory_audits": {"lookback": "30h", "window_chunk": "4h"},
            "security.alerts_v2": {"lookback": "30h"},
        })
        rng = random.Random(20261126)
        kills, sizes = 0, []
        for _ in range(20):
            proc = subprocess.Popen([sys.executable, "-m", "td_graph_plugin.cli.main", "run", "-c", cfg, "--once"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_for(tenant))
            before = out.stat().st_size if out.exists() else 0
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:  # wait for progress
                if out.exists() and out.stat().st_size > before:
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))  # then a random moment inside the backfill
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
            sizes.append(out.stat().st_size if out.exists() else 0)
        assert kills >= 18, f"only {kills} kills landed while td-graph was running"
        assert sizes[-1] > sizes[0], "the backfill made progress across kills"
        final = td_graph("run", "-c", cfg, "--once", env=env_for(tenant), timeout=300)
        assert final.returncode == 0, final.stderr.decode()[-2000:]
        records = read_records(out)
        counts = collections.Counter((r["source"], r["id"]) for r in records)
        twice = [k for k, n in counts.items() if n > 1]
        assert not twice, f"{len(twice)} records twice, e.g. {twice[:3]}"
        expected = {("audit_logs.sign_ins", s["id"]) for s in tenant.sign_ins}
        expected |= {("audit_logs.directory_audits", a["id"]) for a in tenant.directory_audits}
        expected |= {("security.alerts_v2", a["id"]) for a in tenant.alerts}
        expected |= {("directory.users", u["id"]) for u in tenant.users}
        assert set(counts) == expected
        assert len(records) == 50000
