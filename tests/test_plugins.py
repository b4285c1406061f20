"""Plugin manager: entry points, hooks_dir, duplicates, check_pending, the public imports."""

from __future__ import annotations

import textwrap

import pluggy
import pytest

from td_graph_plugin import SourceSpec, hookimpl
from td_graph_plugin import hookspecs
from td_graph_plugin.errors import PluginError
from td_graph_plugin.plugins import ENTRY_POINT_GROUP, create_plugin_manager, load_catalogue

CONTRACT_SOURCES = """security.alerts_v2 security.incidents security.secure_scores
security.secure_score_control_profiles identity_protection.risky_users
identity_protection.risk_detections identity_protection.risky_service_principals
identity_protection.service_principal_risk_detections audit_logs.sign_ins
audit_logs.sign_ins_non_interactive audit_logs.sign_ins_service_principal
audit_logs.sign_ins_managed_identity audit_logs.directory_audits audit_logs.provisioning
directory.users directory.groups directory.devices directory.applications
directory.service_principals governance.app_consent_requests intune.managed_devices
intune.compliance_policies intune.device_configurations intune.audit_events
reports.user_registration_details reports.office365_active_users""".split()


def test_catalogue_has_every_contract_source(catalogue):
    graph_sources = [n for n in catalogue.names() if catalogue[n].reads_graph]
    assert sorted(graph_sources) == sorted(CONTRACT_SOURCES)
    # td-graph's isolation audit feed registers through the same hook, reading a local store.
    assert [n for n in catalogue.names() if not catalogue[n].reads_graph] == ["td_graph.isolation"]
    assert all(catalogue.owner(n) == "td_graph_plugin.sources.catalogue" for n in catalogue.names())


def test_smallest_plugin_source_has_defaults():
    spec = SourceSpec(name="acme.widgets", path="/acme/widgets", mode="snapshot", permissions=["Acme.Read.All"])
    assert spec.version == "v1.0" and spec.licence is None and spec.interval == "5m"
    assert spec.permissions == ("Acme.Read.All",)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(name="Bad Name", path="/x", mode="snapshot", permissions=["P"]), "name"),
        (dict(name="a.b", path="x", mode="snapshot", permissions=["P"]), "path"),
        (dict(name="a.b", path="/x", mode="stream", permissions=["P"]), "mode"),
        (dict(name="a.b", path="/x", mode="window", permissions=["P"]), "time_field"),
        (dict(name="a.b", path="/x", mode="snapshot", permissions=[]), "permissions"),
        (dict(name="a.b", path="/x", mode="snapshot", permissions=["P"], interval="soon"), "interval"),
        (dict(name="a.b", path="/x", mode="window", time_field="t", filter_ops=("gt", "ge"), permissions=["P"]), "filter_ops"),
        (dict(name="a.b", path="/x", mode="snapshot", permissions=["P"], page_size=60, max_page_size=50), "maximum"),
    ],
)
def test_invalid_specs_are_explained(kwargs, fragment):
    with pytest.raises(PluginError, match=fragment):
        SourceSpec(**kwargs)


class AcmePlugin:
    __name__ = "acme"

    @hookimpl
    def td_graph_register_sources(self, register):
        register(SourceSpec(name="acme.widgets", path="/acme/widgets", mode="snapshot", permissions=["Acme.Read.All"]))


def test_extra_plugin_registers_source():
    pm = create_plugin_manager(load_entrypoints=False, extra_plugins=[AcmePlugin()])
    cat = load_catalogue(pm)
    assert "acme.widgets" in cat and cat.owner("acme.widgets") == "acme"


def test_duplicate_source_names_both_plugins():
    class Clash:
        __name__ = "clash"

        @hookimpl
        def td_graph_register_sources(self, register):
            register(SourceSpec(name="audit_logs.sign_ins", path="/x", mode="snapshot", permissions=["P"]))

    with pytest.raises(PluginError) as info:
        load_catalogue(create_plugin_manager(load_entrypoints=False, extra_plugins=[Clash()]))
    assert "td_graph_plugin.sources.catalogue" in str(info.value) and "clash" in str(info.value)


def test_misspelt_hook_fails_check_pending():
    class Typo:
        __name__ = "typo"

        @hookimpl
        def td_graph_register_source(self, register):  # missing the final "s"
            pass

    with pytest.raises(PluginError, match="td_graph_register_source"):
        create_plugin_manager(load_entrypoints=False, extra_plugins=[Typo()])


def test_hooks_dir_source_and_broken_module(tmp_path):
    (tmp_path / "local_source.py").write_text(textwrap.dedent('''
        from td_graph_plugin import hookimpl, SourceSpec

        @hookimpl
        def td_graph_register_sources(register):
            register(SourceSpec(name="local.things", path="/things", mode="snapshot", permissions=["Things.Read.All"]))
    '''))
    cat = load_catalogue(create_plugin_manager(hooks_dir=str(tmp_path), load_entrypoints=False))
    assert cat.owner("local.things") == "hooks_dir:local_source"
    (tmp_path / "broken.py").write_text("import does_not_exist\n")
    with pytest.raises(PluginError, match="broken.py"):
        create_plugin_manager(hooks_dir=str(tmp_path), load_entrypoints=False)


def test_entry_point_group_is_loaded_and_blockable(monkeypatch):
    seen = {}

    def fake_load(self, group, name=None):
        seen["group"] = group
        if not self.is_blocked("acme"):
            self.register(AcmePlugin(), name="acme")
        return 1

    monkeypatch.setattr(pluggy.PluginManager, "load_setuptools_entrypoints", fake_load)
    cat = load_catalogue(create_plugin_manager())
    assert seen["group"] == ENTRY_POINT_GROUP == "td_graph_plugin" and "acme.widgets" in cat
    monkeypatch.setenv("TD_GRAPH_DISABLED_PLUGINS", "acme")
    assert "acme.widgets" not in load_catalogue(create_plugin_manager())


def test_every_hook_is_prefixed_and_documented():
    names = [n for n in dir(hookspecs) if n.startswith("td_graph_")]
    assert names, "no hooks found"
    for n in names:
        assert getattr(hookspecs, n).__doc__, f"{n} has no docstring"
    pm = create_plugin_manager(load_entrypoints=False)
    assert {h for h in dir(pm.hook) if not h.startswith("_")} >= set(names)
