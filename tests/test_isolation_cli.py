"""``td-graph isolate`` / ``td-graph release`` as an analyst runs them: a subprocess, TLS to the
Graph simulator, the secret from the environment; exit codes, stderr report, audit output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from td_graph_plugin.cli.demo import demo_config
from td_graph_plugin.simulator import GraphSimulator
from td_graph_plugin.simulator import directory_writes as dw
from td_graph_plugin.state import StateStore

SMALL = {"users": 6, "sign_ins": 0, "directory_audits": 0, "alerts": 0}
ENV_SECRET = "TD_GRAPH_DEMO_SECRET"


def _main_knows_isolation() -> bool:
    from td_graph_plugin.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {"isolate", "release"} <= set(sub.choices)


def _cli() -> list[str]:
    """The console script; until cli/main.py registers isolation_cmd, a bootstrap that does."""
    if _main_knows_isolation():
        return [sys.executable, "-m", "td_graph_plugin.cli.main"]
    boot = (
        "import sys\n"
        "from td_graph_plugin.cli import main as m, isolation_cmd\n"
        "_bp = m.build_parser\n"
        "def build_parser():\n"
        "    p = _bp()\n"
        "    sub = next(a for a in p._actions if a.__class__.__name__ == '_SubParsersAction')\n"
        "    isolation_cmd.register(sub)\n"
        "    return p\n"
        "m.build_parser = build_parser\n"
        "sys.exit(m.main(sys.argv[1:]))\n"
    )
    return [sys.executable, "-c", boot]


@pytest.fixture(scope="module")
def sim():
    dw.install()
    with GraphSimulator() as s:
        yield s


class Env:
    def __init__(self, sim: GraphSimulator, tmp_path, output: dict | None = None, protected=()):
        self.sim = sim
        self.t = sim.add_tenant(volumes=SMALL)
        self.d = dw.directory(self.t)
        self.alice = self.d.add_user("alice@contoso.test", "Alice Example")
        self.bg = self.d.add_user("breakglass@contoso.test", "Break Glass")
        self.state_path = str(tmp_path / "state.db")
        cfg = demo_config(sim, self.t, self.state_path, output=output)
        cfg["isolation"] = {"protected_users": ["breakglass@contoso.test", *protected]}
        cfg["http"] = {"max_retries": 1, "max_retry_wait": "5s"}
        self.config = str(tmp_path / "td-graph.yaml")
        with open(self.config, "w", encoding="utf-8") as fh:
            yaml.safe_dump(cfg, fh)
        self.outputs: list[str] = []

    def run(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, **{ENV_SECRET: self.t.client_secret})
        env.pop("REQUESTS_CA_BUNDLE", None)
        proc = subprocess.run([*_cli(), *args], capture_output=True, text=True, env=env, timeout=60)
        self.outputs += [proc.stdout, proc.stderr]
        return proc

    def isolate(self, user: str, *extra: str) -> subprocess.CompletedProcess:
        return self.run("isolate", "-c", self.config, "--tenant", "demo", user, "--reason", "INC-42 phishing", *extra)

    def release(self, user: str, *extra: str) -> subprocess.CompletedProcess:
        return self.run("release", "-c", self.config, "--tenant", "demo", user, "--reason", "INC-42 closed", *extra)

    def emitted(self) -> list[dict]:
        """The audit records the collector's feed emits now (``isolate`` never prints them to a
        terminal with ``output.type: stdout``: they wait for the collector, exactly once)."""
        run = self.run("run", "-c", self.config, "--once", "--sources", "td_graph.isolation")
        assert run.returncode == 0, run.stderr
        return _records(run.stdout)

    def graph_writes(self) -> list:
        return [r for r in self.sim.requests if r.tenant_id == self.t.tenant_id and r.method != "GET"
                and not r.path.endswith("/oauth2/v2.0/token")]


def _records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_main_registers_the_isolation_commands():
    """cli/main.py must call isolation_cmd.register(sub) (one line in build_parser)."""
    assert _main_knows_isolation(), "td-graph isolate/release are not registered in cli/main.py yet"


def test_dry_run_exit_0_sends_no_write_and_emits_the_audit_record(sim, tmp_path):
    e = Env(sim, tmp_path)
    p = e.isolate("alice@contoso.test", "--dry-run", "--force-password-change")
    assert p.returncode == 0, p.stderr
    assert e.graph_writes() == [] and e.d.writes == []
    assert p.stdout == "", "isolate prints no audit record into the operator's terminal"
    (rec,) = e.emitted()
    assert rec["source"] == "td_graph.isolation" and rec["tenant"] == "demo"
    assert rec["data"]["dry_run"] is True and rec["data"]["outcome"] == "dry_run"
    assert rec["data"]["target"]["id"] == e.alice["id"]
    assert "DRY RUN" in p.stderr and "planned" in p.stderr and "RESULT: DRY_RUN" in p.stderr


def test_isolate_and_release_with_the_file_output_keep_its_offset(sim, tmp_path):
    out = tmp_path / "records.ndjson"
    e = Env(sim, tmp_path, output={"type": "file", "path": str(out)})
    p = e.isolate("alice@contoso.test")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""  # the record went to the file; the report is on stderr
    assert "ok       disable account" in p.stderr and "request-id" in p.stderr
    assert e.d.find_user(e.alice["id"])["accountEnabled"] is False
    assert e.isolate("alice@contoso.test").returncode == 0  # idempotent: noop
    r = e.release("alice@contoso.test")
    assert r.returncode == 0, r.stderr
    assert e.d.find_user(e.alice["id"])["accountEnabled"] is True
    lines = out.read_bytes().splitlines()
    # An action that writes stores (and the feed emits) a started record before its first write.
    assert [json.loads(x)["data"]["action"] for x in lines] == ["isolate", "isolate", "isolate", "release", "release"]
    assert [json.loads(x)["data"]["outcome"] for x in lines] == ["pending", "ok", "noop", "pending", "ok"]
    state = StateStore(e.state_path)
    audit = StateStore(str(tmp_path / "state-isolation.db"), exclusive=False)
    try:
        assert state.output_position("file:" + str(out)) == out.stat().st_size
        assert [i["action"] for i in audit.isolations("demo", e.alice["id"])] == [
            "isolate", "isolate", "isolate", "release", "release"]
        assert state.cursor("demo", "td_graph.isolation")["last_row"] == 5
    finally:
        state.close()
        audit.close()


def test_isolate_while_the_collector_runs_and_the_collector_emits_the_record(sim, tmp_path):
    """The 3 a.m. case: `td-graph run` holds the state database and the output."""
    out = tmp_path / "records.ndjson"
    e = Env(sim, tmp_path, output={"type": "file", "path": str(out)})
    collector_lock = StateStore(e.state_path)  # stands for the running collector
    try:
        p = e.isolate("alice@contoso.test")
        assert p.returncode == 0, p.stderr
        assert e.d.find_user(e.alice["id"])["accountEnabled"] is False
        assert not out.exists() or out.read_bytes() == b"", "only the collector writes its output"
    finally:
        collector_lock.close()
    run = e.run("run", "-c", e.config, "--once", "--sources", "td_graph.isolation")
    assert run.returncode == 0, run.stderr
    assert e.run("run", "-c", e.config, "--once", "--sources", "td_graph.isolation").returncode == 0
    lines = out.read_bytes().splitlines()
    assert len(lines) == 2, "emitted exactly once: the started record, then the final one"
    started, rec = (json.loads(x) for x in lines)
    assert started["data"]["outcome"] == "pending" and started["id"] == rec["id"] + ":started"
    assert rec["source"] == "td_graph.isolation" and rec["data"]["action"] == "isolate" and rec["data"]["outcome"] == "ok"


def test_refusals_and_usage_errors_have_their_exit_codes(sim, tmp_path):
    e = Env(sim, tmp_path)
    p = e.isolate(e.bg["id"])  # protected by UPN, typed as object id
    assert p.returncode == 1 and "REFUSED" in p.stderr and "protected" in p.stderr
    assert [r["data"]["outcome"] for r in e.emitted()] == ["refused"]
    e.d.assign_role(e.alice["id"], "Security Administrator")
    p = e.isolate("alice@contoso.test")
    assert p.returncode == 1 and "--allow-privileged" in p.stderr
    assert e.graph_writes() == []
    assert e.run("isolate", "-c", e.config, "--tenant", "demo", "alice@contoso.test").returncode == 2  # no --reason
    assert e.isolate("alice@contoso.test", "--no-disable", "--no-revoke-sessions").returncode == 2
    assert e.isolate("not a user").returncode == 2
    bad = e.run("isolate", "-c", e.config, "--tenant", "nope", "alice@contoso.test", "--reason", "x")
    assert bad.returncode == 2 and "unknown tenant" in bad.stderr
    p = e.isolate("nobody@contoso.test")
    assert p.returncode == 1 and "not found" in p.stderr and "404" in p.stderr
    r = e.release("alice@contoso.test")
    assert r.returncode == 1 and "--force" in r.stderr
    assert e.graph_writes() == []
    e.d.set_app_roles("Privileged Authentication Administrator")
    assert e.isolate("alice@contoso.test", "--allow-privileged").returncode == 0
    assert e.d.find_user(e.alice["id"])["accountEnabled"] is False


def test_partial_failure_exits_1_and_reports_each_step(sim, tmp_path):
    e = Env(sim, tmp_path)
    e.d.fail_next("revoke", 503, count=5, retry_after=0)
    p = e.isolate("alice@contoso.test")
    assert p.returncode == 1
    assert "ok       disable account" in p.stderr and "FAILED   revoke sessions" in p.stderr
    assert "RESULT: PARTIAL" in p.stderr and "what to do" in p.stderr
    started, emitted = e.emitted()
    assert started["data"]["outcome"] == "pending"
    rec = emitted["data"]
    assert rec["outcome"] == "partial"
    by = {s["step"]: s for s in rec["steps"]}
    assert by["disable"]["status"] == "ok" and by["disable"]["request_id"]
    assert by["revoke_sessions"]["status"] == "failed" and by["revoke_sessions"]["http_status"] == 503


def test_no_secret_or_token_in_any_output(sim, tmp_path):
    e = Env(sim, tmp_path)
    e.d.fail_next("revoke", 403)
    e.isolate("alice@contoso.test", "--dry-run", "--force-password-change")
    e.run("--log-level", "debug", "isolate", "-c", e.config, "--tenant", "demo", "alice@contoso.test",
          "--reason", "INC-42", "--force-password-change")
    e.release("alice@contoso.test")
    # The feed emits the three audit records, and a started record for each of the two that wrote.
    assert [r["data"]["outcome"] for r in e.emitted()] == ["dry_run", "pending", "partial", "pending", "ok"]
    blob = "".join(e.outputs)
    assert "td_graph.isolation" in blob and "RESULT" in blob  # the outputs were captured
    assert e.t.client_secret not in blob
    tokens = list(sim.tokens._tokens)
    assert tokens and not any(tok in blob for tok in tokens)
    assert "Bearer sim." not in blob and '"password"' not in blob


def test_with_the_postgresql_state_the_collector_emits_the_isolation_record(sim, tmp_path, pg_url):
    """With ``state.url`` the audit record is stored in PostgreSQL (a replica on another host
    must see it), and the replica that owns the tenant emits it, exactly once."""
    out = tmp_path / "records.ndjson"
    e = Env(sim, tmp_path, output={"type": "file", "path": str(out)})
    cfg = yaml.safe_load(open(e.config, encoding="utf-8"))
    cfg["state"] = {"url": pg_url}
    cfg["cluster"] = {"replica": "replica-a", "lease_ttl": "5s"}
    with open(e.config, "w", encoding="utf-8") as fh:
        yaml.safe_dump(cfg, fh)
    p = e.isolate("alice@contoso.test")
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(e.state_path[:-3] + "-isolation.db"), "no SQLite isolation file with state.url"
    for _ in range(2):
        run = e.run("run", "-c", e.config, "--once", "--sources", "td_graph.isolation")
        assert run.returncode == 0, run.stderr
    lines = out.read_bytes().splitlines()
    assert len(lines) == 2, "emitted exactly once: the started record, then the final one"
    rec = json.loads(lines[1])
    assert rec["source"] == "td_graph.isolation" and rec["data"]["action"] == "isolate" and rec["data"]["outcome"] == "ok"
