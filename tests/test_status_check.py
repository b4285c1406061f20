"""Issue 14 items 9 and 10: ``td-graph status`` (read-only, while ``run`` runs), ``td-graph
check`` (offline, what ``run`` would refuse), ``doctor`` running check first, and the demo's
ending (records on stdout when piped, in a named file on a terminal; then the status table).

Expected values are written by hand: the state is written through ``StateStore`` with a
stopped clock, so every time, lag and reason below is known in advance.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import types

import orjson
import pytest
import yaml

from td_graph_plugin.cli.check_cmd import FAILED, OK, WARNING, run_checks
from td_graph_plugin.cli.main import main
from td_graph_plugin.cli.status_cmd import human_lag, status_exit, status_rows
from td_graph_plugin.runtime import load_validated
from td_graph_plugin.simulator import GraphSimulator
from td_graph_plugin.state import Commit, StateStore, read_state
from td_graph_plugin.state import store as store_module
from tests.integration_support import env_for, parse_stdout, td_graph, write_config

SECRET = "not-a-real-secret-Zq8xW2"
T0 = 1795687200.0  # 2026-11-26T10:00:00Z
SOURCES = ["audit_logs.sign_ins", "security.alerts_v2", "security.incidents", "directory.users"]
JSON_KEYS = {
    "tenant", "source", "state", "reason", "since", "last_success", "newest_event", "lag_seconds", "lag",
    "next_check", "checkpoint_at", "query_shape", "replica",
}


def write_yaml(tmp_path, **overrides) -> str:
    """A config with one tenant and no network need (status and check make no Graph call)."""
    cfg = {
        "tenants": [{
            "name": "contoso", "tenant_id": "00000000-0000-0000-0000-00000000c0de",
            "client_id": "11111111-1111-1111-1111-111111111111", "client_secret": SECRET,
        }],
        "sources": {"include": SOURCES},
        "state": {"path": str(tmp_path / "state.db")},
        "output": {"type": "stdout"},
    }
    cfg.update(overrides)
    path = tmp_path / "td-graph.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return str(path)


@pytest.fixture
def clock(monkeypatch):
    """The state store's clock, stopped at a value the test sets."""
    now = [T0]
    monkeypatch.setattr(store_module, "time", types.SimpleNamespace(time=lambda: now[0]))
    return now


# --- status: what the state says, by hand ------------------------------------------------------
def test_status_rows_show_each_enabled_pair_from_the_state(tmp_path, clock):
    cfg = write_yaml(tmp_path)
    config, _pm, catalogue = load_validated(cfg)
    store = StateStore(config.state_path)
    clock[0] = T0 - 600  # 09:50: sign-ins completed a pass whose newest event is 09:47
    store.commit(Commit("contoso", "audit_logs.sign_ins", cursor={"done": "x"}, newest_event=T0 - 780, success=True))
    clock[0] = T0 - 1200  # 09:40: alerts once succeeded ...
    store.commit(Commit("contoso", "security.alerts_v2", cursor={"done": "y"}, newest_event=T0 - 1500, success=True))
    clock[0] = T0 - 300  # ... and fail since 09:55, retried at 10:05
    store.set_source_status("contoso", "security.alerts_v2", "failing", "Graph answered HTTP 503", T0 + 300)
    clock[0] = T0 - 7200  # 08:00: incidents are not licensed, asked again at 09:00 + 2 h
    store.set_source_status("contoso", "security.incidents", "unlicensed", "licence Defender XDR not found", T0 + 3600)
    store.close()

    rows = status_rows(config, catalogue, read_state(config.state_path), now=T0)
    common = {"query_shape": "default", "replica": "local"}
    never = {**common, "state": "never_run", "reason": None, "since": None, "last_success": None,
             "newest_event": None, "lag_seconds": None, "lag": None, "next_check": None, "checkpoint_at": None}
    assert rows == [
        {**common, "tenant": "contoso", "source": "audit_logs.sign_ins", "state": "ok", "reason": None,
         "since": None, "last_success": "2026-11-26T09:50:00Z", "newest_event": "2026-11-26T09:47:00Z",
         "lag_seconds": 780, "lag": "13m", "next_check": None, "checkpoint_at": "2026-11-26T09:50:00Z"},
        {**never, "tenant": "contoso", "source": "directory.users"},
        {**common, "tenant": "contoso", "source": "security.alerts_v2", "state": "failing",
         "reason": "Graph answered HTTP 503", "since": "2026-11-26T09:55:00Z", "last_success": "2026-11-26T09:40:00Z",
         "newest_event": "2026-11-26T09:35:00Z", "lag_seconds": 1500, "lag": "25m",
         "next_check": "2026-11-26T10:05:00Z", "checkpoint_at": "2026-11-26T09:40:00Z"},
        {**common, "tenant": "contoso", "source": "security.incidents", "state": "unlicensed",
         "reason": "licence Defender XDR not found", "since": "2026-11-26T08:00:00Z", "last_success": None,
         "newest_event": None, "lag_seconds": None, "lag": None, "next_check": "2026-11-26T11:00:00Z",
         "checkpoint_at": None},
        {**never, "tenant": "contoso", "source": "td_graph.isolation"},  # the audit feed is a job too
    ]
    assert status_exit(rows) == 1
    assert status_exit([r for r in rows if r["state"] != "failing"]) == 0  # skipped and never run are fine


def test_a_checkpoint_without_a_completed_pass_is_ok_and_says_so(tmp_path, clock):
    cfg = write_yaml(tmp_path, sources={"include": ["audit_logs.sign_ins"]})
    config, _pm, catalogue = load_validated(cfg)
    with_state = StateStore(config.state_path)
    with_state.commit(Commit("contoso", "audit_logs.sign_ins", cursor={"active": "x"}, newest_event=T0 - 42))
    with_state.close()
    (row,) = [r for r in status_rows(config, catalogue, read_state(config.state_path), now=T0)
              if r["source"] == "audit_logs.sign_ins"]
    assert (row["state"], row["reason"], row["last_success"], row["lag"]) == ("ok", "first pass not finished yet", None, "42s")


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (42, "42s"), (192, "3m"), (3599, "59m"), (7500, "2h5m"), (3 * 86400 + 4 * 3600 + 59, "3d4h"),
])
def test_lag_is_shown_to_its_two_largest_units(seconds, text):
    assert human_lag(seconds) == text


def test_status_cli_json_keys_exit_code_and_table(tmp_path, capsys, clock):
    cfg = write_yaml(tmp_path)
    store = StateStore(str(tmp_path / "state.db"))
    store.set_source_status("contoso", "security.alerts_v2", "failing", "Graph answered HTTP 503", T0 + 300)
    store.close()
    assert main(["status", "-c", cfg, "--format", "json"]) == 1
    out = capsys.readouterr().out
    rows = json.loads(out)
    assert isinstance(rows, list) and len(rows) == 5 and all(set(r) == JSON_KEYS for r in rows)
    assert [r["state"] for r in rows] == ["never_run", "never_run", "failing", "never_run", "never_run"]
    assert main(["status", "-c", cfg]) == 1
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert lines[0].split() == ["TENANT", "SOURCE", "STATE", "LAST", "SUCCESS", "NEWEST", "EVENT", "LAG",
                                "NEXT", "CHECK", "QUERY", "SHAPE", "REPLICA", "REASON"]
    assert re.match(r"contoso\s+security\.alerts_v2\s+failing\s+-\s+-\s+-\s+2026-11-26T10:05:00Z\s+default\s+local\s+"
                    r"Graph answered HTTP 503$", lines[3]), lines[3]
    assert re.match(r"contoso\s+directory\.users\s+never run\s+", lines[2])
    assert lines[-1] == f"5 tenant x source pairs: 1 failing, 4 never run (state {tmp_path / 'state.db'})"
    assert SECRET not in out + table


def test_status_before_the_first_run_creates_nothing_and_exits_0(tmp_path, capsys):
    cfg = write_yaml(tmp_path)
    assert main(["status", "-c", cfg]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].endswith("does not exist yet: td-graph has not run with this config)")
    assert sorted(os.listdir(tmp_path)) == ["td-graph.yaml"]  # no state, no lock, no -wal/-shm


def test_the_reader_neither_locks_nor_leaves_files(tmp_path):
    path = str(tmp_path / "state.db")
    store = StateStore(path)  # a collector holding the state: its lock and its WAL
    store.commit(Commit("contoso", "audit_logs.sign_ins", cursor={}, newest_event=T0, success=True))
    snapshot = read_state(path)
    assert snapshot is not None and snapshot.rows[("contoso", "audit_logs.sign_ins")].newest_event == T0
    store.commit(Commit("contoso", "directory.users", cursor={}, success=True))  # the writer is not blocked
    assert ("contoso", "directory.users") in read_state(path).rows
    store.close()
    before = sorted(os.listdir(tmp_path))
    assert read_state(path) is not None
    assert sorted(os.listdir(tmp_path)) == before == ["state.db", "state.db.lock"]


def test_status_of_a_file_that_is_not_a_state_exits_1_with_one_line(tmp_path):
    cfg = write_yaml(tmp_path)
    (tmp_path / "state.db").write_bytes(b"this is not SQLite" * 100)
    proc = td_graph("status", "-c", cfg)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "cannot be read" in err and "td-graph check" in err and "Traceback" not in err


def test_status_config_error_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenants: []\nbogus: 1\n", encoding="utf-8")
    proc = td_graph("status", "-c", str(bad))
    assert proc.returncode == 2 and proc.stderr.decode().startswith(f"td-graph: configuration error: {bad}: ")


# --- check ---------------------------------------------------------------------------------------
def _by_name(report) -> dict[str, tuple[str, str]]:
    return {r.name: (r.status, r.detail) for r in report.results}


def test_check_all_ok_names_each_check_and_creates_nothing(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    cfg = write_yaml(
        tmp_path, output={"type": "file", "path": str(tmp_path / "out" / "records.ndjson")},
        metrics={"listen": "127.0.0.1:0"},  # port 0: always free, yet really bound
        isolation={"protected_users": ["breakglass@contoso.com", "0b0b0b0b-0000-4000-8000-000000000001",
                                       "guest_fabrikam.com#EXT#@contoso.onmicrosoft.com", "smtp:soc@contoso.com"]},
    )
    assert main(["check", "-c", cfg]) == 0
    out = capsys.readouterr().out
    assert [line.split()[:2] for line in out.splitlines()[:-1]] == [
        ["ok", "config"], ["ok", "hooks"], ["ok", "state"], ["ok", "isolation"], ["ok", "output"],
        ["ok", "metrics"], ["ok", "protected_users"], ["ok", "isolation"],
    ]
    assert "4 entries well-formed (syntax only: `td-graph doctor` resolves them in each tenant" in out
    assert out.splitlines()[-1] == "check: ok (0 failed, 0 warnings)"
    assert sorted(os.listdir(tmp_path)) == ["out", "td-graph.yaml"] and os.listdir(tmp_path / "out") == []
    assert SECRET not in out


def test_check_missing_folders_fail_with_the_folder_named(tmp_path):
    cfg = write_yaml(tmp_path, state={"path": str(tmp_path / "nope" / "state.db")},
                     output={"type": "file", "path": str(tmp_path / "gone" / "records.ndjson")})
    report = run_checks(cfg)
    got = _by_name(report)
    assert report.exit_code == 1
    assert got["state"] == (FAILED, f"folder {tmp_path / 'nope'} does not exist: create it, owned by the user td-graph runs as")
    assert got["output"][0] == FAILED and str(tmp_path / "gone") in got["output"][1]
    assert got["isolation store"][0] == WARNING  # only isolate/release write it


def test_check_fails_on_a_state_another_process_holds_doctor_does_not(tmp_path):
    cfg = write_yaml(tmp_path)
    holder = StateStore(str(tmp_path / "state.db"))
    try:
        report = run_checks(cfg)
        status, detail = _by_name(report)["state"]
        assert report.exit_code == 1 and status == FAILED and f"(pid {os.getpid()})" in detail
        live = run_checks(cfg, collector_running_ok=True)
        assert live.exit_code == 0
        assert _by_name(live)["state"] == (OK, f"{tmp_path / 'state.db'}: in use by the running collector (pid {os.getpid()})")
    finally:
        holder.close()
    assert _by_name(run_checks(cfg))["state"] == (OK, f"{tmp_path / 'state.db'}: 0 sources recorded, not in use")


def test_check_fails_when_the_metrics_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        report = run_checks(write_yaml(tmp_path, metrics={"listen": f"127.0.0.1:{port}"}))
    status, detail = _by_name(report)["metrics"]
    assert report.exit_code == 1 and status == FAILED and "port is in use" in detail and str(port) in detail


def test_check_fails_on_a_state_that_is_not_sqlite(tmp_path):
    (tmp_path / "state.db").write_bytes(b"garbage" * 1000)
    status, detail = _by_name(run_checks(write_yaml(tmp_path)))["state"]
    assert status == FAILED and "cannot be read" in detail


def test_check_isolation_problems_are_warnings_that_keep_exit_0(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TD_GRAPH_TEST_UNSET_ISOLATION", raising=False)
    cfg = write_yaml(tmp_path, isolation={"protected_users": ["alice@contoso.com", "bob", "carol@localhost"]})
    data = yaml.safe_load(open(cfg, encoding="utf-8"))
    data["tenants"][0]["isolation"] = {"client_id": "22222222-2222-2222-2222-222222222222",
                                       "client_secret": "${TD_GRAPH_TEST_UNSET_ISOLATION}"}
    open(cfg, "w", encoding="utf-8").write(yaml.safe_dump(data))
    assert main(["check", "-c", cfg]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 3, out
    assert warnings[0].split(None, 2)[2].startswith("entry 'bob' cannot name a user (not an object id, UPN, mail")
    assert "'carol@localhost'" in warnings[1]  # no dotted domain
    assert "tenant contoso" in warnings[2] and "TD_GRAPH_TEST_UNSET_ISOLATION" in warnings[2]
    assert out.splitlines()[-1] == "check: ok (0 failed, 3 warnings)"


def test_check_broken_hooks_fail_and_the_other_checks_still_run(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir(mode=0o755)
    (hooks / "broken.py").write_text("import does_not_exist_td_graph\n", encoding="utf-8")
    os.chmod(hooks / "broken.py", 0o644)
    report = run_checks(write_yaml(tmp_path, hooks_dir=str(hooks)))
    got = _by_name(report)
    assert report.exit_code == 1 and got["hooks"][0] == FAILED and "broken.py" in got["hooks"][1]
    assert got["state"][0] == OK and got["output"][0] == OK


def test_check_config_error_exits_2_after_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenants: []\nbogus: 1\n", encoding="utf-8")
    assert main(["check", "-c", str(bad)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"FAILED   config  {bad}: 2 problems:"
    assert [line[:18] for line in lines[1:3]] == [" " * 16 + "  "] * 2  # the problems, in the detail column
    assert "bogus" in lines[1] and "tenants" in lines[2]
    assert lines[3:] == ["check: configuration error (1 failed, 0 warnings)"]  # nothing checked past the config


# --- while run is running, against the simulator --------------------------------------------------
@pytest.fixture
def sim(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as s:
        yield s


def _wait_for(condition, proc: subprocess.Popen, what: str, deadline: float = 90.0) -> None:
    """Poll ``condition`` until it holds; fail if ``proc`` exits first or the deadline passes.
    Waiting on the child between polls (not a sleep) also notices an early exit at once."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        try:
            code = proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"td-graph run exited {code} before {what}")


def test_status_check_and_doctor_while_run_is_running(sim, tmp_path):
    tenant = sim.add_tenant(profile="e5")
    records = tmp_path / "records.ndjson"
    cfg = write_config(sim, tenant, tmp_path, output=str(records))
    state = str(tmp_path / "state.db")
    env = env_for(tenant)
    with open(tmp_path / "run.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "td_graph_plugin.cli.main", "run", "-c", cfg],
                                stdout=subprocess.DEVNULL, stderr=log, env=env)
    try:
        def signed_in() -> bool:
            snapshot = read_state(state) if os.path.exists(state + "-wal") else None
            row = snapshot.rows.get(("demo", "audit_logs.sign_ins")) if snapshot else None
            return row is not None and row.last_success is not None

        _wait_for(signed_in, proc, "a completed sign-ins pass in the state")
        status = td_graph("status", "-c", cfg, "--format", "json", env=env)
        assert status.returncode == 0, status.stderr.decode()[-2000:]
        rows = {r["source"]: r for r in json.loads(status.stdout)}
        sign_ins = rows["audit_logs.sign_ins"]
        assert sign_ins["state"] == "ok" and sign_ins["last_success"].endswith("Z") and sign_ins["replica"] == "local"
        assert sign_ins["newest_event"] is not None and re.fullmatch(r"\d+[smhd]\w*", sign_ins["lag"])
        assert set(rows) == {"audit_logs.sign_ins", "audit_logs.directory_audits", "security.alerts_v2",
                             "directory.users", "td_graph.isolation"}

        check = td_graph("check", "-c", cfg, env=env)
        out = check.stdout.decode()
        assert check.returncode == 1, out
        assert re.search(rf"^FAILED\s+state\s+.*in use by another td-graph process \(pid {proc.pid}\)", out, re.M), out

        doctor = td_graph("doctor", "-c", cfg, "--format", "json", env=env)
        report = json.loads(doctor.stdout)
        assert doctor.returncode == 0, doctor.stderr.decode()[-2000:]
        (state_check,) = [c for c in report["check"]["checks"] if c["name"] == "state"]
        assert state_check == {"name": "state", "status": "ok",
                               "detail": f"{state}: in use by the running collector (pid {proc.pid})"}
        assert report["ok"] is True and report["check"]["exit"] == 0
        assert proc.poll() is None, "run must still be running: status and check ran beside it"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, (tmp_path / "run.log").read_text()[-3000:]
    after = td_graph("check", "-c", cfg, env=env)
    assert after.returncode == 0, after.stdout.decode()
    assert tenant.client_secret.encode() not in status.stdout + check.stdout + doctor.stdout + after.stdout


def test_doctor_fails_when_check_fails(sim, tmp_path):
    tenant = sim.add_tenant(profile="e5")
    cfg = write_config(sim, tenant, tmp_path, output=str(tmp_path / "missing" / "records.ndjson"))
    doctor = td_graph("doctor", "-c", cfg, env=env_for(tenant))
    out = doctor.stdout.decode()
    assert doctor.returncode == 1, out
    assert re.search(r"^  FAILED\s+output\s+folder .*missing does not exist", out, re.M), out
    assert "Tenant demo" in out and "token      ok" in out  # the Graph part still ran


def test_doctor_resolves_protected_users_in_each_tenant(sim, tmp_path):
    from td_graph_plugin.simulator import directory_writes

    tenant = sim.add_tenant(profile="e5")
    alice = directory_writes.directory(tenant).add_user("alice@contoso.test", "Alice Example")
    cfg = write_config(sim, tenant, tmp_path, extra={
        "isolation": {"protected_users": ["alice@contoso.test", alice["id"], "nobody@contoso.test"]}})
    doctor = td_graph("doctor", "-c", cfg, "--format", "json", env=env_for(tenant))
    assert doctor.returncode == 0, doctor.stderr.decode()[-2000:]  # it stops isolation, not collection
    report = json.loads(doctor.stdout)["tenants"][0]
    assert report["protected_users"] == {"entries": 3, "unresolvable": ["nobody@contoso.test"]}
    table = td_graph("doctor", "-c", cfg, env=env_for(tenant)).stdout.decode()
    assert "  protected  UNRESOLVED: nobody@contoso.test: isolate/release refuse in this tenant" in table


# --- the demo's ending ---------------------------------------------------------------------------------
def test_demo_piped_keeps_stdout_pure_ndjson_and_prints_the_status_table_on_stderr(tmp_path):
    proc = td_graph("demo", "--rounds", "1", timeout=180, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    records = parse_stdout(proc.stdout)  # every line is one JSON record
    assert records and all(r["tenant"] == "demo" for r in records)
    err = proc.stderr.decode()
    assert re.search(r"^TENANT\s+SOURCE\s+STATE\s+LAST SUCCESS", err, re.M)
    assert re.search(r"^demo\s+audit_logs\.sign_ins\s+ok\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", err, re.M)
    table = err[err.index("TENANT"):].splitlines()
    summary = re.search(r"^(\d+) tenant x source pairs: \d+ ok, 2 unlicensed \(state ", table[-1])
    assert summary and int(summary.group(1)) == len(table) - 2, err[-3000:]  # e5: no Workload ID Premium
    assert os.listdir(tmp_path) == []  # nothing written where it ran


def test_demo_on_a_terminal_writes_the_records_to_a_file_it_names(tmp_path):
    master, slave = pty.openpty()
    with open(tmp_path / "stderr", "w+b") as err:
        proc = subprocess.Popen([sys.executable, "-m", "td_graph_plugin.cli.main", "demo", "--rounds", "1"],
                                stdin=subprocess.DEVNULL, stdout=slave, stderr=err, cwd=str(tmp_path))
        os.close(slave)
        shown, end = b"", time.monotonic() + 180
        try:
            while True:  # the terminal's side, until the demo closes it
                ready, _, _ = select.select([master], [], [], max(0.0, end - time.monotonic()))
                assert ready, "the demo did not finish within 180 s"
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer of the terminal is gone
                    break
                if not chunk:
                    break
                shown += chunk
        finally:
            os.close(master)
            if proc.poll() is None and time.monotonic() >= end:
                os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == 0
        err.seek(0)
        stderr = err.read().decode()
    screen = shown.decode().replace("\r\n", "\n")
    assert re.search(r"^TENANT\s+SOURCE\s+STATE", screen, re.M) and '"tenant"' not in screen
    m = re.search(r"the records are in (\S+records\.ndjson) ", stderr)
    assert m, stderr[-2000:]
    path = m.group(1)
    try:
        with open(path, "rb") as fh:
            records = [orjson.loads(line) for line in fh]
        assert {"audit_logs.sign_ins", "security.alerts_v2", "directory.users"} <= {r["source"] for r in records}
    finally:
        shutil.rmtree(os.path.dirname(path))
