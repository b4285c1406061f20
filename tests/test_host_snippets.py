"""The shipper snippets in conf/: parsed and checked, and their commands run for real.

Vector, Fluent Bit, Logstash and Filebeat are not Debian packages, so they are not started
here: each snippet is parsed (TOML / YAML) or its key lines are checked, and the command every
exec-style snippet runs is executed exactly as written (paths swapped for the test's, plus
``--once``) against the Graph simulator, proving it yields the contract's NDJSON on stdout.
The systemd unit is checked with ``systemd-analyze verify`` (and ``security --offline``).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections import Counter

import pytest
import yaml

import host_support as hs
from td_graph_plugin.simulator import GraphSimulator

CONF = os.path.join(hs.ROOT, "conf")
TD_GRAPH = "/opt/td-graph/bin/td-graph"
CONFIG = "/etc/td-graph/td-graph.yaml"
RECORDS = "/var/log/td-graph/records.ndjson"


def _read(*parts: str) -> str:
    with open(os.path.join(CONF, *parts), encoding="utf-8") as fh:
        return fh.read()


def _fluent_bit_sections(text: str) -> list[tuple[str, dict[str, str]]]:
    """Fluent Bit's classic format: [SECTION] then 'Key value' lines (keys case-insensitive)."""
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            sections.append((m.group(1).upper(), {}))
            continue
        key, _, value = line.partition(" ")
        assert sections, f"key outside a section: {raw!r}"
        sections[-1][1][key.lower()] = value.strip()
    return sections


# --- the commands ---------------------------------------------------------------------------------
def vector_command() -> list[str]:
    doc = tomllib.loads(_read("vector", "td-graph.toml"))
    return doc["sources"]["td_graph"]["command"]


def fluent_bit_command() -> list[str]:
    (inp,) = [s for name, s in _fluent_bit_sections(_read("fluent-bit", "td-graph.conf")) if name == "INPUT"]
    return shlex.split(inp["command"])


def logstash_command() -> list[str]:
    m = re.search(r'pipe\s*\{.*?command\s*=>\s*"([^"]+)"', _read("logstash", "td-graph.conf"), flags=re.S)
    assert m, "no pipe { command => ... } in conf/logstash/td-graph.conf"
    return shlex.split(m.group(1))


def improg_command() -> list[str]:
    m = re.search(r'input\(type="improg".*?binary="([^"]+)"', _read("rsyslog", "td-graph-improg.conf"), flags=re.S)
    assert m, "no improg binary= in conf/rsyslog/td-graph-improg.conf"
    return m.group(1).split()


COMMANDS = {"vector": vector_command, "fluent-bit": fluent_bit_command, "logstash": logstash_command,
            "rsyslog-improg": improg_command}


@pytest.mark.parametrize("host", sorted(COMMANDS))
def test_exec_snippets_run_td_graph_with_the_documented_command(host):
    assert COMMANDS[host]() == [TD_GRAPH, "run", "-c", CONFIG]


def _installed_td_graph() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "td-graph")
    return [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "td_graph_plugin.cli.main"]


@pytest.fixture(scope="module")
def sim():
    with GraphSimulator() as s:
        yield s


@pytest.mark.parametrize("host", sorted(COMMANDS))
def test_exec_snippet_command_streams_every_record_as_ndjson_on_stdout(host, sim, tmp_path):
    """What the shipper would run (with the test's paths and --once): stdout carries exactly the
    records, one JSON envelope per line; td-graph's logs stay on stderr."""
    tenant = sim.add_tenant(profile="e5")
    config = hs.write_td_graph_config(sim, tenant, str(tmp_path), output={"type": "stdout"})
    argv = COMMANDS[host]()
    argv = [*(_installed_td_graph() if argv[0] == TD_GRAPH else [argv[0]]), *[config if a == CONFIG else a for a in argv[1:]], "--once"]
    proc = subprocess.run(argv, env=dict(os.environ, TD_GRAPH_DEMO_SECRET=tenant.client_secret),
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    lines = proc.stdout.decode("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert all(set(r) >= {"tenant", "tenant_id", "source", "id", "event_time", "collected_at", "data"} for r in records)
    by_source = hs.ids_by_source(records)
    for source, ids in hs.simulator_ids(tenant).items():
        assert Counter(by_source[source]) == Counter(ids), source
    assert b'"tenant_id"' not in proc.stderr  # no record leaked into the log stream


# --- per-shipper checks -----------------------------------------------------------------------------
def test_vector_exec_snippet():
    src = tomllib.loads(_read("vector", "td-graph.toml"))["sources"]["td_graph"]
    assert src["type"] == "exec" and src["mode"] == "streaming"
    assert src["include_stderr"] is False  # logs are not records
    assert src["decoding"]["codec"] == "json"
    assert src["framing"]["method"] == "newline_delimited"
    assert src["framing"]["newline_delimited"]["max_length"] >= 1 << 20
    assert src["streaming"]["respawn_on_exit"] is True and src["streaming"]["respawn_interval_secs"] > 0


def test_fluent_bit_exec_snippet_and_parser():
    sections = _fluent_bit_sections(_read("fluent-bit", "td-graph.conf"))
    (inp,) = [s for name, s in sections if name == "INPUT"]
    assert inp["name"] == "exec" and inp["oneshot"].lower() == "true"  # one long-running process
    assert inp["tag"] == "td_graph"
    m = re.fullmatch(r"(\d+)([KMG]?)", inp["buf_size"].upper())
    assert m and int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)] >= 1 << 20
    parsers = {s["name"]: s for name, s in _fluent_bit_sections(_read("fluent-bit", "parsers-td-graph.conf")) if name == "PARSER"}
    assert parsers[inp["parser"]]["format"] == "json"


def test_logstash_pipe_snippet():
    text = _read("logstash", "td-graph.conf")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert re.search(r"input\s*\{\s*pipe\s*\{", code)
    assert re.search(r'codec\s*=>\s*json_lines\s*\{\s*target\s*=>\s*"\[td_graph\]"\s*\}', code)
    assert code.count("{") == code.count("}")
    assert re.search(r'match\s*=>\s*\["\[td_graph\]\[event_time\]",\s*"ISO8601"\]', code)


def test_filebeat_filestream_snippet():
    doc = yaml.safe_load(_read("filebeat", "td-graph.yml"))
    (inp,) = doc["filebeat.inputs"]
    assert inp["type"] == "filestream" and inp["id"] and inp["enabled"] is True
    assert inp["paths"] == [RECORDS]
    (parser,) = inp["parsers"]
    ndjson = parser["ndjson"]
    assert ndjson["target"] == "td_graph" and "message_key" not in ndjson
    assert ndjson["add_error_key"] is True and ndjson["overwrite_keys"] is False


def test_file_output_path_agrees_across_snippets():
    """Filebeat, rsyslog imfile and the systemd unit's LogsDirectory name the same file."""
    assert RECORDS in _read("rsyslog", "td-graph-imfile.conf")
    assert RECORDS in _read("filebeat", "td-graph.yml")
    unit = _read("systemd", "td-graph.service")
    assert re.search(r"^LogsDirectory=td-graph$", unit, flags=re.M)  # /var/log/td-graph
    assert re.search(r"^StateDirectory=td-graph$", unit, flags=re.M)  # /var/lib/td-graph


# --- systemd ----------------------------------------------------------------------------------------
UNIT = os.path.join(CONF, "systemd", "td-graph.service")


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read(UNIT, encoding="utf-8")
    return parser


def test_systemd_unit_settings():
    unit = _unit()
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    svc = unit["Service"]
    assert svc["User"] == "td-graph" and svc["Group"] == "td-graph"
    assert svc["ExecStart"] == f"{TD_GRAPH} run -c {CONFIG}"
    assert svc["EnvironmentFile"] == "-/etc/td-graph/td-graph.env"
    assert svc["StateDirectory"] == "td-graph"
    expected = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet": "", "SystemCallFilter": "@system-service", "Restart": "on-failure",
        "KillSignal": "SIGTERM", "RestartPreventExitStatus": "2",
    }
    for key, value in expected.items():
        assert svc.get(key) == value, key
    assert set(svc["ReadWritePaths"].split()) == {"-/var/lib/td-graph", "-/var/log/td-graph"}
    assert int(svc["TimeoutStopSec"].rstrip("s")) >= 30
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_verify_and_security(tmp_path):
    """``systemd-analyze verify`` with no warning (ExecStart pointed at a stand-in executable,
    since /opt/td-graph is not installed here), and the offline security score stays low."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd); the INI checks above still ran")
    stand_in = tmp_path / "td-graph"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "td-graph.service"
    unit.write_text(open(UNIT, encoding="utf-8").read().replace(TD_GRAPH, str(stand_in)))
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr  # unknown keys and bad values are only warnings
    sec = subprocess.run([analyze, "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60)
    if sec.returncode == 0 or "Overall exposure" in sec.stdout:
        m = re.search(r"Overall exposure level for \S+: ([\d.]+)", sec.stdout)
        assert m and float(m.group(1)) <= 2.5, sec.stdout[-2000:]
