"""Config validation: every mistake names the key and the file; exit 2 before any request."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from td_graph_plugin.config import load_config
from td_graph_plugin.errors import ConfigError

TENANT = """
tenants:
  - name: contoso
    tenant_id: 00000000-0000-0000-0000-000000000001
    client_id: 11111111-1111-1111-1111-111111111111
    client_secret: ${CONTOSO_SECRET}
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "td-graph.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def error_for(tmp_path, text: str, env=None, names=None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env if env is not None else {"CONTOSO_SECRET": "s3cr3t-value"}, source_names=names)
    message = str(info.value)
    assert path in message, message
    return message


def test_valid_minimal_config(tmp_path):
    cfg = load_config(write(tmp_path, TENANT), env={"CONTOSO_SECRET": "s3cr3t-value"})
    t = cfg.tenants[0]
    assert t.name == "contoso" and t.cloud == "global"
    assert t.client_secret.reveal() == "s3cr3t-value"
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in str(t)
    assert cfg.output_type == "stdout" and cfg.state_path == "./td-graph-state.db"
    assert cfg.sources.include == ("all",)


def test_unset_env_var_names_variable_and_key(tmp_path):
    msg = error_for(tmp_path, TENANT, env={})
    assert "CONTOSO_SECRET" in msg and "tenants[0].client_secret" in msg


def test_unknown_key_suggests(tmp_path):
    msg = error_for(tmp_path, TENANT + "outptu: {type: stdout}\n")
    assert "outptu" in msg and "unknown key" in msg and "output" in msg


def test_unknown_nested_key(tmp_path):
    msg = error_for(tmp_path, TENANT + "    tennant_name: x\n")
    assert "tenants[0].tennant_name" in msg


def test_wrong_type(tmp_path):
    msg = error_for(tmp_path, TENANT + "http: {max_retries: many}\n")
    assert "http.max_retries" in msg and "integer" in msg


def test_missing_required_keys(tmp_path):
    msg = error_for(tmp_path, "tenants:\n  - name: x\n")
    assert "tenants[0].tenant_id" in msg and "tenants[0].client_id" in msg and "client_secret or certificate" in msg


def test_bad_duration(tmp_path):
    msg = error_for(
        tmp_path,
        TENANT + "sources:\n  settings:\n    audit_logs.sign_ins: {interval: 5 minutes}\n",
        names=["audit_logs.sign_ins"],
    )
    assert "sources.settings.audit_logs.sign_ins.interval" in msg and "15m" in msg


def test_unknown_source_name(tmp_path):
    msg = error_for(tmp_path, TENANT + "sources:\n  include: [audit_logs.sign_inz]\n", names=["audit_logs.sign_ins"])
    assert "audit_logs.sign_inz" in msg and "sources.include" in msg


def test_bad_cloud_and_output(tmp_path):
    msg = error_for(tmp_path, TENANT + "    cloud: mars\noutput: {type: file}\n")
    assert "tenants[0].cloud" in msg and "output.path" in msg


def test_secret_and_certificate_are_exclusive_and_secret_not_echoed(tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    msg = error_for(tmp_path, TENANT + f"    certificate: {{path: {cert}, thumbprint: {'AB' * 20}}}\n")
    assert "not both" in msg and "s3cr3t-value" not in msg


def test_secret_of_wrong_type_is_not_echoed(tmp_path):
    msg = error_for(tmp_path, TENANT.replace("${CONTOSO_SECRET}", "[hunter2hunter2]"))
    assert "tenants[0].client_secret" in msg and "hunter2" not in msg


def test_not_yaml(tmp_path):
    msg = error_for(tmp_path, "tenants: [\n")
    assert "YAML" in msg


def test_cli_exits_2_and_makes_no_request(tmp_path, td_graph_cmd):
    """The config names an unreachable endpoint: if any request were made we would see a
    connection error instead of the config error (and the run would take the retry budget)."""
    path = write(tmp_path, TENANT.replace("client_secret: ${CONTOSO_SECRET}", "client_secret: abc\n    graph_endpoint: https://127.0.0.1:9") + "state: {path: " + str(tmp_path / "s.db") + "}\nbogus: 1\n")
    proc = subprocess.run([*td_graph_cmd, "run", "-c", path, "--once"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "bogus" in proc.stderr and path in proc.stderr
    assert not (tmp_path / "s.db").exists(), "no state may be created before the config is valid"


def test_throttling_override(tmp_path):
    cfg = load_config(write(tmp_path, TENANT + "throttling:\n  identity_reports: {requests: 50, per: 10s}\n"), env={"CONTOSO_SECRET": "x"})
    o = cfg.throttling["identity_reports"]
    assert (o.requests, o.per, o.concurrency) == (50, 10.0, None)
    msg = error_for(tmp_path, TENANT + "throttling:\n  reports: {requests: 5, per: 10s}\n  security: {requests: 0}\n")
    assert "throttling.reports" in msg and "throttling.security.requests" in msg and "throttling.security.per" in msg
