"""What an operator meets around the collector (issue 14 items 11-13, issue 13 Low): logs in
UTC as text or JSON with secrets masked in tracebacks too, a failing credential logged once per
tenant, honest pass summaries, isolation audit records that wait for the collector instead of
landing in a terminal, the CLI's nits (options after the subcommand, no tracebacks, did-you-mean,
exit codes in --help, the file named once) and the example configs from the package."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from td_graph_plugin import SourceSpec
from td_graph_plugin.catalogue import Catalogue
from td_graph_plugin.cli.main import build_parser
from td_graph_plugin.collector import Engine, SyncSink
from td_graph_plugin.config import load_config
from td_graph_plugin.config.model import Config, Secret, SourcesConfig, TenantConfig
from td_graph_plugin.errors import AuthError, ConfigError, GraphTransient, GraphUnauthorized
from td_graph_plugin.logsetup import JsonFormatter, RedactingFormatter, register_secrets, setup_logging
from td_graph_plugin.metrics import Metrics
from td_graph_plugin.state import Commit, StateStore

ROOT = Path(__file__).resolve().parent.parent
TENANT_ID = "0f0e0d0c-0b0a-4909-8807-060504030201"
CLIENT_ID = "11111111-2222-4333-8444-555555555555"
TS_TEXT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")


@pytest.fixture
def root_logging():
    """setup_logging replaces td-graph's root handler: restore the root logger afterwards."""
    import td_graph_plugin.logsetup as logsetup

    root = logging.getLogger()
    handlers, level, fmt = list(root.handlers), root.level, logsetup._format
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    logsetup._format = fmt


def _record(msg: str, *args: object, created: float = 1_800_000_000.123, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("td_graph_plugin.engine", logging.WARNING, __file__, 1, msg, args, None)
    record.created = created
    record.__dict__.update(extra)
    return record


# --- log formats ------------------------------------------------------------------------------
def test_text_logs_carry_utc_iso_timestamps_whatever_the_local_zone(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    import time

    time.tzset()
    try:
        line = RedactingFormatter().format(_record("%s/%s: late", "contoso", "audit_logs.sign_ins"))
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    # 1_800_000_000 s after the epoch is 2027-01-15 08:00:00 UTC (03:00 in New York).
    assert line == "2027-01-15T08:00:00.123Z WARNING td_graph_plugin.engine: contoso/audit_logs.sign_ins: late"


def test_json_logs_are_one_object_per_line_with_the_run_they_are_about():
    fmt = JsonFormatter()
    about = json.loads(fmt.format(_record("%s/%s: %d records", "contoso", "security.alerts_v2", 3)))
    assert about == {
        "ts": "2027-01-15T08:00:00.123Z",
        "level": "warning",
        "logger": "td_graph_plugin.engine",
        "message": "contoso/security.alerts_v2: 3 records",
        "tenant": "contoso",
        "source": "security.alerts_v2",
    }
    plain = json.loads(fmt.format(_record("metrics at %s", "http://127.0.0.1:9464/metrics")))
    assert "tenant" not in plain and "source" not in plain
    given = json.loads(fmt.format(_record("resolved", tenant="fabrikam")))
    assert given["tenant"] == "fabrikam" and "source" not in given
    multi = fmt.format(_record("two\nlines"))
    assert "\n" not in multi and json.loads(multi)["message"] == "two\nlines"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_secret_in_an_exception_or_stack_never_reaches_stderr(fmt, capsys, root_logging):
    secret = "Zq8~s3cr3t-in-a-traceback-" + fmt
    register_secrets([secret])
    setup_logging("debug", stream=sys.stderr, fmt=fmt)
    log = logging.getLogger("td_graph_plugin.test")

    def token_call() -> None:
        raise RuntimeError(f"AADSTS7000215: Invalid client secret provided: {secret}")

    try:
        try:
            token_call()
        except RuntimeError as exc:
            raise AuthError("contoso: token request failed") from exc
    except AuthError:
        log.exception("contoso/directory.users: failed")
    log.warning("about to call with client_secret=%s", "x", stack_info=True)
    log.error("a form body: client_secret=%s&grant_type=client_credentials", secret)
    err = capsys.readouterr().err
    assert secret not in err
    assert "Invalid client secret provided: ***" in err.replace("\\n", "\n")  # the traceback is there, masked
    assert "RuntimeError" in err and "token_call" in err
    if fmt == "json":
        lines = [json.loads(line) for line in err.splitlines()]
        assert [e["level"] for e in lines] == ["error", "warning", "error"]
        assert "exception" in lines[0] and "stack" in lines[1]
    else:
        assert TS_TEXT.match(err)


def test_log_options_are_accepted_after_the_subcommand_too():
    parser = build_parser()
    args = parser.parse_args(["sources", "--log-level", "debug", "--log-format", "json"])
    assert (args.log_level, args.log_format) == ("debug", "json")
    # Given before the subcommand and not after it: the global value stays.
    args = parser.parse_args(["--log-level", "error", "--log-format", "json", "sources"])
    assert (args.log_level, args.log_format) == ("error", "json")
    args = parser.parse_args(["--log-level", "error", "run", "-c", "x.yaml", "--log-level", "warning"])
    assert args.log_level == "warning" and args.log_format is None
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, command in sub.choices.items():
        options = {o for a in command._actions for o in a.option_strings}
        assert {"--log-level", "--log-format"} <= options, name


# --- a failing credential: once per tenant ------------------------------------------------------
class _Switch:
    """A source collector whose outcome the test sets: an exception to raise, or success."""

    uses_graph = True

    def __init__(self) -> None:
        self.error: Exception | None = None

    def collect(self, run) -> None:  # type: ignore[no-untyped-def]
        if self.error is not None:
            raise self.error
        run.deliver([], Commit(run.tenant.name, run.spec.name, cursor={}, success=True))

    def adopt(self, *args: object) -> None:
        return None


def _engine(tmp_path, collector: _Switch) -> tuple[Engine, Metrics, StateStore]:
    catalogue = Catalogue()
    for name in ("acme.one", "acme.two", "acme.three"):
        catalogue.add(SourceSpec(name=name, path="/" + name, mode="snapshot", permissions=["Acme.Read.All"],
                                 collector=collector), "test")
    tenants = tuple(
        TenantConfig(name=n, tenant_id=TENANT_ID, client_id=CLIENT_ID, client_secret=Secret("not-a-real-secret-123"))
        for n in ("contoso", "fabrikam")
    )
    config = Config(tenants=tenants, sources=SourcesConfig(include=("acme",)))
    state = StateStore(str(tmp_path / "state.db"))
    metrics = Metrics()
    engine = Engine(config, catalogue, state=state, sink=SyncSink(_NoOutput(), state), metrics=metrics,
                    client_factory=lambda tenant: object())
    return engine, metrics, state


class _NoOutput:
    name = "none"

    def open(self, committed_position: int | None) -> None:
        pass

    def write(self, lines) -> None:  # type: ignore[no-untyped-def]
        return None

    def close(self) -> None:
        pass


def _failed_lines(caplog, level: int) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.levelno == level and ": failed: " in r.getMessage()]
    caplog.clear()
    return lines


@pytest.mark.parametrize("error", [AuthError("AADSTS7000222: the client secret keys are expired"),
                                   GraphUnauthorized("401 InvalidAuthenticationToken")], ids=["token", "401"])
def test_a_failing_credential_is_logged_once_per_tenant_until_it_works_again(tmp_path, caplog, error):
    caplog.set_level(logging.DEBUG, logger="td_graph_plugin")
    switch = _Switch()
    engine, metrics, state = _engine(tmp_path, switch)
    try:
        jobs = engine.jobs()
        switch.error = error
        for _ in range(2):  # two polls, 3 sources x 2 tenants failing each time
            assert all(r.failed for r in engine.run_once(jobs))
        errors = _failed_lines(caplog, logging.ERROR)
        assert sorted(line.split("/")[0] for line in errors) == ["contoso", "fabrikam"]
        assert all("credential" in line for line in errors)
        # Everything else is still recorded: state, metrics, and a debug line per failure.
        for job in jobs:
            assert state.source_status(job.tenant.name, job.spec.name)["state"] == "failing"
            assert metrics.state(job.tenant.name, job.spec.name) == "failing"

        switch.error = None  # the secret is renewed
        assert not any(r.failed for r in engine.run_once(jobs))
        switch.error = error  # and breaks again: said again, once per tenant
        engine.run_once(jobs)
        assert len(_failed_lines(caplog, logging.ERROR)) == 2
    finally:
        engine.close()
        state.close()


def test_other_failures_are_still_logged_at_error_every_time(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="td_graph_plugin")
    switch = _Switch()
    engine, _, state = _engine(tmp_path, switch)
    try:
        switch.error = GraphTransient("503 Service Unavailable")
        jobs = engine.jobs()
        engine.run_once(jobs)
        engine.run_once(jobs)
        assert len(_failed_lines(caplog, logging.ERROR)) == 12
    finally:
        engine.close()
        state.close()


# --- the command line, as an operator runs it ---------------------------------------------------
def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REQUESTS_CA_BUNDLE")}
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "td_graph_plugin.cli.main", *args], capture_output=True,
                          text=True, timeout=120, env=env or _env(TD_GRAPH_TEST_SECRET="not-a-real-secret-456"),
                          cwd=ROOT, **kw)


def _config(tmp_path: Path, **overrides: object) -> Path:
    cfg = {
        "tenants": [{"name": "contoso", "tenant_id": TENANT_ID, "client_id": CLIENT_ID,
                     "client_secret": "${TD_GRAPH_TEST_SECRET}"}],
        "state": {"path": str(tmp_path / "state.db")},
        "output": {"type": "stdout"},
    }
    cfg.update(overrides)
    path = tmp_path / "td-graph.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _store_audit_record(config_path: Path, action_id: str) -> dict:
    config = load_config(str(config_path), env={"TD_GRAPH_TEST_SECRET": "not-a-real-secret-456"})
    record = {
        "tenant": "contoso", "tenant_id": TENANT_ID, "source": "td_graph.isolation", "id": action_id,
        "event_time": "2026-11-26T03:00:00Z", "collected_at": "2026-11-26T03:00:01.000Z",
        "data": {"action": "isolate", "dry_run": True, "outcome": "dry_run", "target": {"id": "u-1"}},
    }
    store = StateStore(config.isolation_state_path, exclusive=False)
    try:
        store.add_isolation("contoso", "u-1", "isolate", record)
    finally:
        store.close()
    return record


def test_isolate_with_a_stdout_output_leaves_the_record_to_the_collector(tmp_path, capfd, root_logging):
    """No collector runs and the output is stdout: isolate's stdout is the operator's terminal,
    not the shipper's pipe.  The record waits in the store; `run` emits it, exactly once."""
    from td_graph_plugin.runtime import FeedFlusher

    path = _config(tmp_path)
    record = _store_audit_record(path, "act-0001")
    setup_logging("info", stream=sys.stderr)
    flusher = FeedFlusher(load_config(str(path), env={"TD_GRAPH_TEST_SECRET": "x" * 8}))
    flusher(record)
    out, err = capfd.readouterr()
    assert out == "", "an audit record printed into a terminal never reaches the SIEM"
    assert flusher.deferred and "act-0001" in err and "td-graph run" in err

    first = _cli("run", "-c", str(path), "--once", "--sources", "td_graph.isolation")
    assert first.returncode == 0, first.stderr
    (emitted,) = [json.loads(line) for line in first.stdout.splitlines()]
    assert emitted["id"] == "act-0001" and emitted["data"] == record["data"]
    again = _cli("run", "-c", str(path), "--once", "--sources", "td_graph.isolation")
    assert again.returncode == 0 and again.stdout == "", "emitted exactly once"


def test_isolate_on_the_command_line_prints_no_audit_record_and_run_emits_it_once(tmp_path):
    """The same through `td-graph isolate --dry-run` against the simulator (dry runs are audited)."""
    from td_graph_plugin.cli.demo import demo_config
    from td_graph_plugin.simulator import GraphSimulator
    from td_graph_plugin.simulator import directory_writes as dw

    dw.install()
    with GraphSimulator() as sim:
        tenant = sim.add_tenant(volumes={"users": 3, "sign_ins": 0, "directory_audits": 0, "alerts": 0})
        alice = dw.directory(tenant).add_user("alice@contoso.test", "Alice Example")
        path = tmp_path / "td-graph.yaml"
        path.write_text(yaml.safe_dump(demo_config(sim, tenant, str(tmp_path / "state.db"))), encoding="utf-8")
        env = {"TD_GRAPH_DEMO_SECRET": tenant.client_secret}
        iso = _cli("isolate", "-c", str(path), "--tenant", "demo", "alice@contoso.test", "--reason", "INC-7",
                   "--dry-run", env=_env(**env))
        assert iso.returncode == 0, iso.stderr
        assert iso.stdout == "" and "RESULT: DRY_RUN" in iso.stderr and "td-graph run" in iso.stderr
        runs = [_cli("run", "-c", str(path), "--once", "--sources", "td_graph.isolation", env=_env(**env))
                for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    (record,) = [json.loads(line) for line in runs[0].stdout.splitlines()]
    assert record["source"] == "td_graph.isolation" and record["data"]["dry_run"] is True
    assert record["data"]["target"]["id"] == alice["id"]
    assert runs[1].stdout == "", "emitted exactly once"


def test_pass_summary_counts_the_configured_sources_not_the_audit_feed(tmp_path):
    path = _config(tmp_path)
    _store_audit_record(path, "act-0002")
    p = _cli("run", "-c", str(path), "--once", "--sources", "td_graph.isolation", "--log-format", "json")
    assert p.returncode == 0, p.stderr
    logs = [json.loads(line) for line in p.stderr.splitlines()]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["ts"]) for e in logs)
    (summary,) = [e["message"] for e in logs if e["message"].startswith("pass complete")]
    assert summary == "pass complete: 0 records, 0 sources ok, 0 skipped (licence/permission), 0 failed; 1 isolation audit record"
    assert "not-a-real-secret-456" not in p.stderr


def test_a_bad_profile_is_one_line_and_exit_2():
    for command in ("demo", "simulate"):
        p = _cli(command, "--profile", "nosuch")
        assert p.returncode == 2
        assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
        assert "unknown licence profile 'nosuch'" in p.stderr and "e5" in p.stderr


def test_the_cli_knows_the_simulators_profiles():
    from td_graph_plugin.cli.main import SIMULATOR_PROFILES
    from td_graph_plugin.simulator.profiles import PROFILES

    assert set(SIMULATOR_PROFILES) == set(PROFILES)


def test_a_closed_pipe_is_no_traceback():
    """`td-graph sources | head -1`: the reader is gone before td-graph writes (the read end is
    closed before the process starts, so every write fails: deterministic)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        p = subprocess.run([sys.executable, "-m", "td_graph_plugin.cli.main", "sources"], stdout=write_end,
                           stderr=subprocess.PIPE, text=True, timeout=60, env=_env(), cwd=ROOT)
    finally:
        os.close(write_end)
    assert p.stderr == ""
    assert p.returncode == 141  # 128 + SIGPIPE, as a Unix tool killed by it


def test_a_source_typo_gets_a_did_you_mean(catalogue):
    from td_graph_plugin.runtime import check_selection

    config = Config(tenants=(TenantConfig(name="contoso", tenant_id=TENANT_ID, client_id=CLIENT_ID,
                                          client_secret=Secret("not-a-real-secret-123")),))
    with pytest.raises(ConfigError, match=r"unknown source 'securty'; did you mean 'security'\?"):
        check_selection(config, catalogue, None, ["securty"])
    with pytest.raises(ConfigError, match=r"'audit_logs\.signins'; did you mean 'audit_logs\.sign_ins'"):
        check_selection(config, catalogue, None, ["audit_logs.signins"])
    with pytest.raises(ConfigError, match=r"unknown source 'zzz' \(see `td-graph sources`\)"):
        check_selection(config, catalogue, None, ["zzz"])


def test_run_help_lists_the_exit_codes():
    p = _cli("run", "--help")
    assert p.returncode == 0
    codes = p.stdout.split("exit codes:", 1)[1]
    assert re.search(r"^\s+0\s+run: stopped cleanly", codes, re.M)
    assert re.search(r"^\s+1\s+a fatal error", codes, re.M)
    assert re.search(r"^\s+2\s+configuration error", codes, re.M)


def test_a_config_error_names_the_file_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("tenants: []\nbogus: 1\n", encoding="utf-8")
    p = _cli("run", "-c", str(path))
    assert p.returncode == 2
    assert p.stderr.count(str(path)) == 1, p.stderr
    assert p.stderr.startswith(f"td-graph: configuration error: {path}: ")


# --- the example configs, from the package --------------------------------------------------------
def _conf_files() -> dict[str, bytes]:
    base = ROOT / "conf"
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def test_conf_list_names_every_example_file():
    p = _cli("conf", "list")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == sorted(_conf_files())


@pytest.mark.parametrize("name, path", [
    ("systemd", "systemd/td-graph.service"),
    ("grafana", "grafana/td-graph.json"),
    ("td-graph", "td-graph.yaml"),
    ("prometheus/alerts.yml", "prometheus/alerts.yml"),
    ("vector", "vector/td-graph.toml"),
])
def test_conf_show_prints_the_file_itself(name, path):
    p = _cli("conf", "show", name)
    assert p.returncode == 0, p.stderr
    assert p.stdout.encode() == _conf_files()[path]


def test_conf_show_of_a_group_prints_each_file_under_a_header_and_refuses_unknown_names():
    p = _cli("conf", "show", "syslog-ng")
    assert p.returncode == 0
    assert re.findall(r"^==> (\S+) <==$", p.stdout, re.M) == ["syslog-ng/syslog-ng-example.conf", "syslog-ng/td-graph.conf"]
    bad = _cli("conf", "show", "prometheos")
    assert bad.returncode == 2 and bad.stdout == "" and "did you mean 'prometheus'" in bad.stderr


def test_every_group_the_readme_names_exists():
    from td_graph_plugin.cli.conf_cmd import select

    for group in ("syslog-ng", "systemd", "prometheus", "grafana", "fluent-bit", "vector", "logstash",
                  "filebeat", "rsyslog", "td-graph", "elasticsearch"):
        assert select(group), group


def test_conf_files_is_the_repositorys_conf_folder():
    """One copy of each example: the package's conf_files is a link to conf/, not a copy."""
    link = ROOT / "td_graph_plugin" / "conf_files"
    assert link.is_symlink() and os.readlink(link) == "../conf"
