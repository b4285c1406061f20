"""Config hardening (issues 13 and 14): duplicate YAML keys, the per-tenant isolation
credential, the output's format and rotation keys, and where ``hooks_dir`` comes from and who
may write into it.  Expected values are written out by hand (line numbers counted in the text).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from td_graph_plugin.config import load_config, parse_config
from td_graph_plugin.errors import ConfigError, PluginError
from td_graph_plugin.plugins import create_plugin_manager, load_catalogue

# Lines 1-5 of every file below; a test's own text starts at line 6.
BASE = """\
tenants:
  - name: contoso
    tenant_id: 00000000-0000-0000-0000-000000000001
    client_id: 11111111-1111-1111-1111-111111111111
    client_secret: ${CONTOSO_SECRET}
"""
ENV = {"CONTOSO_SECRET": "s3cr3t-value"}
ISO_ID = "22222222-2222-2222-2222-222222222222"


def write(tmp_path, text: str, name: str = "td-graph.yaml") -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def load(tmp_path, text: str, env=None, names=None):
    return load_config(write(tmp_path, text), env=ENV if env is None else env, source_names=names)


def error_for(tmp_path, text: str, env=None, names=None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV if env is None else env, source_names=names)
    message = str(info.value)
    assert path in message, message
    return message


# --- 13.10 duplicate keys -------------------------------------------------------------------

def test_duplicate_top_level_block_is_refused_with_both_lines(tmp_path):
    """The reported case: a second ``isolation:`` silently erased ``protected_users``."""
    msg = error_for(tmp_path, BASE + (
        "isolation:\n"                                   # line 6
        "  protected_users: [breakglass@contoso.com]\n"  # line 7
        "isolation:\n"                                   # line 8
        "  state_path: /var/lib/td-graph/iso.db\n"       # line 9
    ))
    assert "duplicate key" in msg and "isolation" in msg
    assert "line 8" in msg and "line 6" in msg, msg


def test_duplicate_nested_keys_are_all_reported_by_path_without_values(tmp_path):
    text = (
        "tenants:\n"                                                  # 1
        "  - name: contoso\n"                                         # 2
        "    tenant_id: 00000000-0000-0000-0000-000000000001\n"       # 3
        "    client_id: 11111111-1111-1111-1111-111111111111\n"       # 4
        "    client_secret: hunter2hunter2\n"                         # 5
        "    client_secret: correcthorsebattery\n"                    # 6
        "sources:\n"                                                  # 7
        "  settings:\n"                                               # 8
        "    audit_logs.sign_ins: {interval: 60s, interval: 5m}\n"    # 9
    )
    msg = error_for(tmp_path, text, names=["audit_logs.sign_ins"])
    assert "tenants[0].client_secret" in msg and "line 6" in msg and "line 5" in msg, msg
    assert "sources.settings.audit_logs.sign_ins.interval" in msg and "line 9" in msg, msg
    assert "hunter2" not in msg and "correcthorse" not in msg


def test_an_error_names_the_file_once(tmp_path):
    path = write(tmp_path, BASE + "bogus: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    assert str(info.value).count(path) == 1, str(info.value)
    assert info.value.file == path


def test_merge_keys_may_still_override_what_they_merge(tmp_path):
    """``<<: *anchor`` followed by an explicit key is YAML's override, not a duplicate."""
    cfg = load(tmp_path, BASE + (
        "sources:\n"
        "  settings:\n"
        "    audit_logs.sign_ins: &w {interval: 60s, lookback: 24h}\n"
        "    audit_logs.directory_audits: {<<: *w, interval: 5m}\n"
    ), names=["audit_logs.sign_ins", "audit_logs.directory_audits"])
    s = cfg.sources.settings["audit_logs.directory_audits"]
    assert s.interval.total_seconds() == 300 and s.lookback.total_seconds() == 86400


def test_an_override_of_a_nested_merge_is_not_a_duplicate(tmp_path):
    """PyYAML flattens ``<<`` merges in place while constructing; a check inside
    ``construct_mapping`` would see ``inner`` after ``y`` flattened it, as two ``interval``s."""
    from td_graph_plugin.config.yamlfile import read_yaml

    data, lines = read_yaml(write(tmp_path, (
        "base: &b {interval: 60s}\n"                 # line 1
        "x:\n"                                      # line 2
        "  inner: &i {<<: *b, interval: 5m}\n"      # line 3
        "y: {<<: *i}\n"                             # line 4
    )))
    assert data == {"base": {"interval": "60s"}, "x": {"inner": {"interval": "5m"}}, "y": {"interval": "5m"}}
    assert lines["x.inner.interval"] == 3 and lines["y"] == 4


def test_validation_errors_name_the_line(tmp_path):
    msg = error_for(tmp_path, BASE + (
        "sources:\n"                                             # line 6
        "  settings:\n"                                          # line 7
        "    audit_logs.sign_ins: {interval: 60s, lookbak: 1d}\n"  # line 8
        "outptu: {type: stdout}\n"                               # line 9
    ), names=["audit_logs.sign_ins"])
    assert "sources.settings.audit_logs.sign_ins.lookbak (line 8): unknown key" in msg, msg
    assert "outptu (line 9): unknown key" in msg, msg


def test_a_tenant_whose_secret_is_left_empty_has_no_credential_and_is_refused(tmp_path):
    """``client_secret:`` with nothing after it used to load a tenant with no credential."""
    msg = error_for(tmp_path, BASE.replace("${CONTOSO_SECRET}", ""))
    assert "tenants[0] (line 2): needs client_secret or certificate" in msg, msg


def test_env_substitution_still_works_with_the_strict_loader(tmp_path):
    cfg = load(tmp_path, BASE, env={"CONTOSO_SECRET": "from-the-env"})
    assert cfg.tenants[0].client_secret.reveal() == "from-the-env"


def test_duplicate_key_exits_2_on_the_command_line(tmp_path, td_graph_cmd):
    path = write(tmp_path, BASE.replace("${CONTOSO_SECRET}", "abc") + (
        "state: {path: " + str(tmp_path / "s.db") + "}\n"  # line 6
        "output: {type: stdout}\n"                         # line 7
        "output: {type: file}\n"                           # line 8
    ))
    proc = subprocess.run([*td_graph_cmd, "run", "-c", path, "--once"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert path in proc.stderr and "duplicate key" in proc.stderr and "line 8" in proc.stderr
    assert not (tmp_path / "s.db").exists()


# --- 13.3 the per-tenant isolation credential ------------------------------------------------

ISO_SECRET_BLOCK = BASE + (
    "    isolation:\n"
    f"      client_id: {ISO_ID}\n"
    "      client_secret: ${ISO_SECRET}\n"
)


def test_isolation_credential_is_parsed(tmp_path):
    cfg = load(tmp_path, ISO_SECRET_BLOCK, env={**ENV, "ISO_SECRET": "iso-secret-value"})
    iso = cfg.tenants[0].isolation
    assert iso.client_id == ISO_ID and iso.client_secret.reveal() == "iso-secret-value"
    assert iso.certificate is None and iso.problem is None
    assert "iso-secret-value" not in repr(cfg)
    assert sorted(cfg.secret_values()) == ["iso-secret-value", "s3cr3t-value"]


def test_no_isolation_block_means_none(tmp_path):
    assert load(tmp_path, BASE).tenants[0].isolation is None


def test_unset_variable_in_isolation_block_is_a_problem_not_an_error(tmp_path):
    """The collector's host need not hold the isolation secret: loading succeeds and the
    credential carries what isolate/release will refuse with."""
    cfg = load(tmp_path, ISO_SECRET_BLOCK)
    iso = cfg.tenants[0].isolation
    assert iso.client_id == ISO_ID and iso.client_secret is None
    assert "tenants[0].isolation.client_secret" in iso.problem and "ISO_SECRET" in iso.problem
    assert cfg.secret_values() == ["s3cr3t-value"]


def test_isolation_problem_never_holds_a_value(tmp_path):
    text = ISO_SECRET_BLOCK.replace("${ISO_SECRET}", "${ISO_PART}${ISO_MISSING}")
    iso = load(tmp_path, text, env={**ENV, "ISO_PART": "topsecretvalue"}).tenants[0].isolation
    assert "ISO_MISSING" in iso.problem and "topsecretvalue" not in iso.problem


def test_isolation_without_secret_or_certificate_is_a_problem(tmp_path):
    iso = load(tmp_path, BASE + f"    isolation:\n      client_id: {ISO_ID}\n").tenants[0].isolation
    assert "tenants[0].isolation" in iso.problem and "client_secret or certificate" in iso.problem


def test_isolation_certificate_with_unset_passphrase_and_missing_file(tmp_path):
    cert = tmp_path / "iso.pem"
    cert.write_text("x")
    text = BASE + (
        "    isolation:\n"
        f"      client_id: {ISO_ID}\n"
        f"      certificate: {{path: {cert}, thumbprint: {'AB' * 20}, passphrase: '${{ISO_PASS}}'}}\n"
    )
    iso = load(tmp_path, text).tenants[0].isolation
    assert "tenants[0].isolation.certificate.passphrase" in iso.problem and "ISO_PASS" in iso.problem
    cfg = load(tmp_path, text, env={**ENV, "ISO_PASS": "pass-phrase-1"})
    iso = cfg.tenants[0].isolation
    assert iso.problem is None and iso.certificate.path == str(cert) and iso.certificate.thumbprint == "AB" * 20
    assert "pass-phrase-1" in cfg.secret_values()
    cert.unlink()
    iso = load(tmp_path, text, env={**ENV, "ISO_PASS": "pass-phrase-1"}).tenants[0].isolation
    assert "tenants[0].isolation.certificate.path" in iso.problem and "not found" in iso.problem


@pytest.mark.parametrize("block, fragment", [
    (f"client_id: {ISO_ID}\ntenant_id: 00000000-0000-0000-0000-000000000009\nclient_secret: x\n",
     "tenants[0].isolation.tenant_id (line 8): unknown key"),
    ("client_secret: x\n", "tenants[0].isolation.client_id (line 6): required key is missing"),
    ("client_id: not-a-guid\nclient_secret: x\n", "tenants[0].isolation.client_id (line 7): expected the application"),
    (f"client_id: {ISO_ID}\nclient_secret: x\ncertificate: {{path: /nope.pem, thumbprint: {'AB' * 20}}}\n",
     "tenants[0].isolation (line 6): give client_secret or certificate, not both"),
    (f"client_id: {ISO_ID}\nclient_secret: [a, b]\n", "tenants[0].isolation.client_secret (line 8): expected a string"),
    (f"client_id: {ISO_ID}\ncertificate: {{path: /nope.pem, thumbprint: xyz}}\n",
     "tenants[0].isolation.certificate.thumbprint (line 8)"),
])
def test_isolation_block_structure_is_still_validated(tmp_path, block, fragment):
    """File mistakes in the block stay errors, each with its line (the block starts at line 6;
    a missing key points at the block)."""
    indented = "".join("      " + line + "\n" for line in block.splitlines())
    msg = error_for(tmp_path, BASE + "    isolation:\n" + indented)
    assert fragment in msg, msg


def test_isolation_block_must_be_a_mapping(tmp_path):
    msg = error_for(tmp_path, BASE + "    isolation: [x]\n")
    assert "tenants[0].isolation" in msg and "mapping" in msg


def test_unset_variable_outside_the_isolation_block_is_still_an_error(tmp_path):
    msg = error_for(tmp_path, ISO_SECRET_BLOCK, env={"ISO_SECRET": "iso-secret-value"})
    assert "tenants[0].client_secret" in msg and "CONTOSO_SECRET" in msg and "iso-secret-value" not in msg


# --- 14.7 / 14.8 output format and rotation -------------------------------------------------

def test_output_defaults(tmp_path):
    cfg = load(tmp_path, BASE)
    assert (cfg.output_format, cfg.output_max_bytes, cfg.output_keep) == ("raw", None, 10)


def test_output_format_and_rotation(tmp_path):
    cfg = load(tmp_path, BASE + "output: {type: file, path: /var/log/r.ndjson, format: ocsf, max_bytes: 1GiB, keep: 3}\n")
    assert (cfg.output_format, cfg.output_max_bytes, cfg.output_keep) == ("ocsf", 1073741824, 3)
    assert load(tmp_path, BASE + "output: {format: ecs}\n").output_format == "ecs"


@pytest.mark.parametrize("value, expected", [
    ("1048576", 1048576),
    ("500B", 500),
    ("1KB", 1000),
    ("1KiB", 1024),
    ("'10 MiB'", 10485760),
    ("2MB", 2000000),
    ("2GB", 2000000000),
    ("1.5GiB", 1610612736),
    ("0.5kib", 512),
])
def test_output_max_bytes_units(tmp_path, value, expected):
    cfg = load(tmp_path, BASE + f"output:\n  type: file\n  path: /var/log/r.ndjson\n  max_bytes: {value}\n")
    assert cfg.output_max_bytes == expected


UNITS_HELP = "(KB, MB, GB: 1000-based; KiB, MiB, GiB: 1024-based)"


@pytest.mark.parametrize("value, reason", [
    ("1TB", UNITS_HELP),
    ("lots", UNITS_HELP),
    ("'GiB'", UNITS_HELP),
    ("true", UNITS_HELP),
    ("[1]", UNITS_HELP),
    ("0", "must be at least 1 byte"),
    ("-5", "must be at least 1 byte"),
    ("1.5B", "is not a whole number of bytes"),
])
def test_output_max_bytes_bad_values_name_the_key(tmp_path, value, reason):
    msg = error_for(tmp_path, BASE + f"output:\n  type: file\n  path: /var/log/r.ndjson\n  max_bytes: {value}\n")
    assert "output.max_bytes (line 9): " in msg and reason in msg, msg


def test_rotation_keys_need_the_file_output(tmp_path):
    msg = error_for(tmp_path, BASE + "output: {type: stdout, max_bytes: 1GiB, keep: 3}\n")
    assert "output.max_bytes" in msg and "output.keep" in msg and "type: file" in msg


@pytest.mark.parametrize("text, fragment", [
    ("output: {format: json}\n", "output.format (line 6): must be one of raw, ecs, ocsf"),
    ("output: {type: file, path: /r.ndjson, keep: 0}\n", "output.keep (line 6): must be at least 1"),
    ("output: {type: file, path: /r.ndjson, keep: ten}\n", "output.keep (line 6): expected an integer"),
])
def test_bad_output_keys(tmp_path, text, fragment):
    assert fragment in error_for(tmp_path, BASE + text)


# --- 13 Low: hooks_dir ------------------------------------------------------------------------

def test_relative_hooks_dir_is_relative_to_the_config_file(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(tmp_path, BASE + "hooks_dir: hooks\n", name="etc/td-graph.yaml")
    assert load_config(path, env=ENV).hooks_dir == str(tmp_path / "etc" / "hooks")
    path = write(tmp_path, BASE + "hooks_dir: ../shared/hooks\n", name="etc/td-graph.yaml")
    assert load_config(path, env=ENV).hooks_dir == str(tmp_path / "shared" / "hooks")
    path = write(tmp_path, BASE + f"hooks_dir: {tmp_path / 'abs'}\n", name="etc/td-graph.yaml")
    assert load_config(path, env=ENV).hooks_dir == str(tmp_path / "abs")


def test_parse_config_without_a_file_leaves_hooks_dir_alone():
    import yaml

    cfg = parse_config(yaml.safe_load(BASE + "hooks_dir: hooks\n"), env=ENV)
    assert cfg.hooks_dir == "hooks"


HOOK = '''
from pathlib import Path
from td_graph_plugin import hookimpl, SourceSpec

Path(__file__).with_suffix(".imported").write_text("yes")

@hookimpl
def td_graph_register_sources(register):
    register(SourceSpec(name="local.things", path="/things", mode="snapshot", permissions=["T.Read.All"]))
'''


@pytest.fixture
def hooks(tmp_path):
    folder = tmp_path / "hooks"
    folder.mkdir()
    os.chmod(folder, 0o755)
    module = folder / "local_source.py"
    module.write_text(HOOK)
    os.chmod(module, 0o644)
    return folder


def _refused(folder, culprit) -> str:
    with pytest.raises(PluginError) as info:
        create_plugin_manager(hooks_dir=str(folder), load_entrypoints=False)
    assert not (folder / "local_source.imported").exists(), "a refused hooks_dir must not run any code"
    msg = str(info.value)
    assert str(culprit) in msg, msg
    return msg


def test_hooks_dir_with_safe_modes_loads(hooks):
    cat = load_catalogue(create_plugin_manager(hooks_dir=str(hooks), load_entrypoints=False))
    assert cat.owner("local.things") == "hooks_dir:local_source"


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_writable_hooks_folder_is_refused(hooks, mode):
    os.chmod(hooks, mode)
    assert "chmod go-w" in _refused(hooks, hooks)


@pytest.mark.parametrize("mode", [0o666, 0o664, 0o646])
def test_writable_hook_module_is_refused(hooks, mode):
    os.chmod(hooks / "local_source.py", mode)
    assert "chmod go-w" in _refused(hooks, hooks / "local_source.py")


def _need_root() -> None:
    # Deliberately not a skip: CI runs as root, and a silently skipped guard test proves nothing.
    assert os.geteuid() == 0, "this test must run as root (it chowns a file to another uid)"


def test_hook_module_owned_by_another_user_is_refused(hooks):
    _need_root()
    os.chown(hooks / "local_source.py", 4242, 4242)
    msg = _refused(hooks, hooks / "local_source.py")
    assert "chown" in msg and "4242" in msg


def test_hooks_folder_owned_by_another_user_is_refused(hooks):
    _need_root()
    os.chown(hooks, 4242, 4242)
    assert "chown" in _refused(hooks, hooks)
