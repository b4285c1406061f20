"""``output.format: ecs | ocsf`` on Microsoft's documented example objects.

The records are the real collectors' output for each source's cassette (tests/vcr_support.py),
so the envelopes are the ones td-graph writes (removal records included).  Every document is
validated against the vendored schemas (tests/formats_schema.py), never against the mapping's
own tables; the expected values below are read off Microsoft's documented examples by hand.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import orjson
import pytest

from td_graph_plugin.formats import EcsFormatter, OcsfFormatter, build_formatter, envelope_of
from td_graph_plugin.formats.docs import END, START, render
from td_graph_plugin.hookspecs import hookimpl
from td_graph_plugin.hosts.syslog_ng import message_fields
from td_graph_plugin.plugins import create_plugin_manager
from tests.formats_schema import ecs_errors, ecs_version, ocsf_errors, ocsf_version
from tests.vcr_support import CASSETTES, catalogue, run_source

DOCS = Path(__file__).resolve().parent.parent / "docs"
SOURCES = sorted(spec.name for spec in catalogue() if spec.reads_graph)
RUNS = {"directory.users": 2, "directory.groups": 2}  # the cassettes' deltaLink rounds (removals)
# What the issue asks each source to become in OCSF (class_uid), written out here on purpose.
OCSF_CLASS = {
    "audit_logs.sign_ins": 3002, "audit_logs.sign_ins_non_interactive": 3002,
    "audit_logs.sign_ins_service_principal": 3002, "audit_logs.sign_ins_managed_identity": 3002,
    "audit_logs.directory_audits": {3001, 6003}, "security.alerts_v2": 2004,
    "identity_protection.risk_detections": 2004, "security.incidents": 2005,
    "directory.users": 5003, "directory.devices": 5001,
    # beyond the list: risky users are user inventory, Intune's audit log is API activity
    "identity_protection.risky_users": 5003, "intune.audit_events": 6003,
}
ECS_MAPPED = {
    "audit_logs.sign_ins", "audit_logs.sign_ins_non_interactive", "audit_logs.sign_ins_service_principal",
    "audit_logs.sign_ins_managed_identity", "audit_logs.directory_audits", "audit_logs.provisioning",
    "security.alerts_v2", "security.incidents", "identity_protection.risk_detections",
    "identity_protection.risky_users", "directory.users", "directory.devices", "intune.audit_events",
}


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, list[dict]]:
    out = {}
    for source in SOURCES:
        state_dir = tmp_path_factory.mktemp(source.replace(".", "_"))
        result = run_source(source, CASSETTES / "sources" / f"{source}.yaml", state_dir, runs=RUNS.get(source, 1))
        assert result.records, source
        out[source] = result.records
    return out


def _first(records, source: str, fmt, **match) -> dict:
    for r in records[source]:
        if all(r.get(k) == v or r["data"].get(k) == v for k, v in match.items()):
            return json.loads(orjson.dumps(fmt(r)))  # what the output writes, read back
    raise AssertionError(f"no {source} record with {match}")


# ------------------------------------------------------------------------------ every source
@pytest.mark.parametrize("source", SOURCES)
def test_every_record_of_every_source_is_a_valid_ecs_document(records, source):
    fmt = build_formatter("ecs")
    for record in records[source]:
        doc = fmt(record)
        assert ecs_errors(doc) == [], (record["id"], ecs_errors(doc))
        assert doc["ecs"]["version"] == ecs_version()
        assert doc["td_graph"]["source"] == source
        if source in ECS_MAPPED and not record.get("removed"):
            assert doc["event"].get("category") or doc["event"]["kind"] != "event", source


@pytest.mark.parametrize("source", SOURCES)
def test_every_record_of_every_source_is_a_valid_ocsf_event(records, source):
    fmt = build_formatter("ocsf")
    for record in records[source]:
        event = fmt(record)
        assert ocsf_errors(event) == [], (record["id"], ocsf_errors(event))
        assert event["metadata"]["version"] == ocsf_version()
        want = OCSF_CLASS.get(source, 0)
        assert event["class_uid"] in (want if isinstance(want, set) else {want}), source


@pytest.mark.parametrize("fmt_name", ["ecs", "ocsf"])
@pytest.mark.parametrize("source", SOURCES)
def test_the_envelope_reads_back_from_every_document(records, source, fmt_name):
    """What crash recovery and syslog-ng rely on: the written document gives the envelope back."""
    fmt = build_formatter(fmt_name)
    for record in records[source]:
        written = orjson.loads(orjson.dumps(fmt(record)))
        back = envelope_of(written)
        want = dict(record, event_time=record["event_time"] or record["collected_at"]) if fmt_name == "ecs" else record
        assert back == want
        assert message_fields(orjson.dumps(written) + b"\n") == message_fields(orjson.dumps(want) + b"\n")


def test_the_raw_format_is_no_formatter_and_an_unknown_one_is_refused():
    assert build_formatter("raw") is None
    with pytest.raises(ValueError, match="xml"):
        build_formatter("xml")


# -------------------------------------------------------------------------- mapped sources
def test_an_interactive_sign_in(records):
    ecs = _first(records, "audit_logs.sign_ins", build_formatter("ecs"))
    assert ecs["event"]["category"] == ["authentication"] and ecs["event"]["outcome"] == "success"
    assert ecs["user"] == {"id": "26be570a-ae82-4189-b4e2-a37c6808512d", "name": "testaccount1@contoso.com",
                           "domain": "contoso.com", "full_name": "Test Contoso"}
    assert ecs["source"]["ip"] == "131.107.159.37"
    assert ecs["source"]["geo"]["city_name"] == "Redmond"
    assert ecs["source"]["geo"]["location"] == {"lat": 47.68050003051758, "lon": -122.12094116210938}
    assert set(ecs["related"]["user"]) >= {"testaccount1@contoso.com", "26be570a-ae82-4189-b4e2-a37c6808512d"}
    assert ecs["related"]["ip"] == ["131.107.159.37"]
    assert ecs["td_graph"]["data"]["audit_logs"]["sign_ins"]["appDisplayName"] == "Graph explorer"
    ocsf = _first(records, "audit_logs.sign_ins", build_formatter("ocsf"))
    assert (ocsf["class_uid"], ocsf["activity_id"], ocsf["type_uid"]) == (3002, 1, 300201)
    assert ocsf["status_id"] == 1 and ocsf["user"]["name"] == "testaccount1@contoso.com"
    assert ocsf["src_endpoint"]["ip"] == "131.107.159.37" and ocsf["service"]["name"] == "Graph explorer"
    assert "userPrincipalName" not in ocsf["unmapped"] and ocsf["unmapped"]["correlationId"]
    assert json.loads(ocsf["raw_data"]) == records["audit_logs.sign_ins"][0]["data"]


@pytest.mark.parametrize("source", ["audit_logs.sign_ins_non_interactive", "audit_logs.sign_ins_service_principal",
                                    "audit_logs.sign_ins_managed_identity"])
def test_a_failed_beta_sign_in(records, source):
    """The beta example: errorCode 50126 (invalid username or password), a user agent."""
    ecs = _first(records, source, build_formatter("ecs"))
    assert ecs["event"]["outcome"] == "failure" and ecs["error"]["code"] == "50126"
    assert ecs["user_agent"]["original"].startswith("Mozilla/5.0")
    assert ecs["source"]["as"]["number"] == 3598
    assert ecs["event"]["action"] != _first(records, "audit_logs.sign_ins", build_formatter("ecs"))["event"]["action"]
    ocsf = _first(records, source, build_formatter("ocsf"))
    assert ocsf["status_id"] == 2 and ocsf["status"] == "Failure" and ocsf["status_code"] == "50126"
    assert ocsf["is_mfa"] is False and ocsf["auth_protocol_id"] == 6
    assert ocsf["http_request"]["user_agent"].startswith("Mozilla/5.0")


def test_a_directory_audit(records):
    ecs = _first(records, "audit_logs.directory_audits", build_formatter("ecs"), id="id")
    assert ecs["event"]["action"] == "Add member to group" and ecs["event"]["outcome"] == "success"
    assert ecs["user"]["name"] == "bob@wingtiptoysonline.com" and ecs["source"]["ip"] == "127.0.0.1"
    assert ecs["user"]["target"]["name"] == "bob@contoso.com"
    assert ecs["user"]["target"]["group"]["name"] == "Example.com"
    ocsf = _first(records, "audit_logs.directory_audits", build_formatter("ocsf"), id="id")
    assert ocsf["class_uid"] == 6003 and ocsf["api"]["operation"] == "Add member to group"
    assert ocsf["resources"] == [
        {"uid": "ef7e527d-6c92-4234-8c6d-cf6fdfb57f95", "name": "Example.com", "type": "Group"},
        {"uid": "1f0e98f5-3161-4c6b-9b50-d488572f2bb7", "type": "User"}]
    assert ocsf["actor"]["user"]["name"] == "bob@wingtiptoysonline.com"


def test_a_user_account_audit_is_an_ocsf_account_change(records):
    """A documented-shape directoryAudit of a user deletion (Microsoft's activity name)."""
    record = dict(records["audit_logs.directory_audits"][0])
    record["data"] = dict(record["data"], activityDisplayName="Delete user", category="UserManagement",
                          operationType="Delete")
    event = build_formatter("ocsf")(record)
    assert ocsf_errors(event) == []
    assert (event["class_uid"], event["activity_id"], event["activity_name"]) == (3001, 6, "Delete")
    assert event["user"]["uid"] == "1f0e98f5-3161-4c6b-9b50-d488572f2bb7"
    doc = build_formatter("ecs")(record)
    assert ecs_errors(doc) == [] and "deletion" in doc["event"]["type"] and "user" in doc["event"]["type"]


def test_a_defender_alert(records):
    ecs = _first(records, "security.alerts_v2", build_formatter("ecs"))
    assert ecs["event"]["kind"] == "alert" and ecs["event"]["severity"] == 21
    assert {"host", "file", "process", "registry"} <= set(ecs["event"]["category"])
    assert ecs["rule"]["name"] == "Suspicious execution of hidden file"
    assert ecs["threat"]["technique"]["id"] == ["T1564"]
    assert ecs["threat"]["technique"]["subtechnique"]["id"] == ["T1564.001"]
    assert ecs["threat"]["tactic"]["name"] == ["DefenseEvasion"]
    assert ecs["host"]["name"] == "tempDns" and ecs["host"]["ip"] == ["1.1.1.1"]
    assert "8963a19fb992ad9a76576c5638fd68292cffb9aaac29eb8285f9abf6196a7dec" in ecs["related"]["hash"]
    ocsf = _first(records, "security.alerts_v2", build_formatter("ocsf"))
    assert (ocsf["class_uid"], ocsf["activity_id"], ocsf["severity_id"], ocsf["status_id"]) == (2004, 1, 2, 1)
    assert ocsf["finding_info"]["uid"] == "da637551227677560813_-961444813"
    assert {"technique": {"uid": "T1564"}, "sub_technique": {"uid": "T1564.001"}} in ocsf["finding_info"]["attacks"]
    assert ocsf["device"]["hostname"] == "tempDns"


def test_a_defender_incident(records):
    ecs = _first(records, "security.incidents", build_formatter("ecs"))
    assert ecs["event"]["severity"] == 47 and ecs["tags"] == ["Demo", "Defender Experts"]
    assert "KaiC@contoso.onmicrosoft.com" in ecs["related"]["user"]
    ocsf = _first(records, "security.incidents", build_formatter("ocsf"))
    assert (ocsf["class_uid"], ocsf["severity_id"], ocsf["status_id"], ocsf["verdict_id"]) == (2005, 3, 1, 2)
    assert ocsf["assignee"]["name"] == "KaiC@contoso.onmicrosoft.com"
    unassigned = dict(records["security.incidents"][0])
    unassigned["data"] = dict(unassigned["data"], assignedTo=None)
    event = build_formatter("ocsf")(unassigned)
    assert ocsf_errors(event) == [] and "assignee" not in event and event["assignee_group"]["name"] == "Unassigned"


def test_a_risk_detection_drops_the_documented_invalid_ip_but_keeps_it_in_the_object(records):
    record = records["identity_protection.risk_detections"][0]
    assert record["data"]["ipAddress"] == "123.456.7.89"  # Microsoft's example, not an address
    ecs = build_formatter("ecs")(record)
    assert "ip" not in ecs.get("source", {}) and ecs["source"]["geo"]["city_name"] == "Seattle"
    assert ecs["user_agent"]["original"].startswith("Mozilla/5.0")  # from additionalInfo
    assert ecs["event"]["kind"] == "alert" and ecs["event"]["category"] == ["authentication"]
    ocsf = build_formatter("ocsf")(record)
    assert ocsf["class_uid"] == 2004 and ocsf["finding_info"]["title"] == "unfamiliarFeatures"
    assert ocsf["unmapped"]["ipAddress"] == "123.456.7.89"


def test_risky_users_users_devices_and_intune_audit_events(records):
    ecs = build_formatter("ecs")
    risky = ecs(records["identity_protection.risky_users"][0])
    assert risky["event"]["category"] == ["iam"] and risky["user"]["id"] == "d1d4a5d4-a5d4-d1d4-d4a5-d4d1d4a5d4d1"
    user = ecs(records["directory.users"][0])
    assert user["event"]["kind"] == "asset" and user["user"]["full_name"] == "Cameron White"
    device = ecs(records["directory.devices"][0])
    assert device["host"]["id"] == "4c299165-6e8f-4b45-a5ba-c5d250a707ff" and device["host"]["os"]["name"] == "linux"
    intune = ecs(records["intune.audit_events"][0])
    assert intune["event"]["category"] == ["configuration"] and intune["user"]["id"] == "User Id value"
    ocsf_device = build_formatter("ocsf")(records["directory.devices"][0])
    assert ocsf_device["device"]["os"] == {"name": "linux", "version": "1", "type_id": 200}
    assert build_formatter("ocsf")(records["intune.audit_events"][0])["class_uid"] == 6003


def test_removal_records_map_to_deletions(records):
    removals = [r for r in records["directory.users"] if r.get("removed")]
    assert {r["removed"] for r in removals} == {"deleted", "changed"}
    for record in removals:
        doc = build_formatter("ecs")(record)
        assert doc["event"]["type"] == ["user", "deletion"] and doc["td_graph"]["removed"] == record["removed"]
        assert doc["event"]["action"] == {"deleted": "deleted", "changed": "soft-deleted"}[record["removed"]]
        event = build_formatter("ocsf")(record)
        assert (event["activity_id"], event["type_uid"]) == (99, 500399)
        assert event["activity_name"] == {"deleted": "Deleted", "changed": "Soft-deleted"}[record["removed"]]
        assert event["user"]["uid"] == record["id"]


# ------------------------------------------------------------------- the rule language
def test_the_rule_language():
    from td_graph_plugin.formats.rules import compile_mapping

    lookups = {"kind": {"a": "alpha", "*": "other"}}
    table = {"const": {"k.c": "const", "k.first": "loses", "tags[]": ["t0"]}, "fields": [
        ("k.first", "data.missing"),
        ("k.first", ["data.none", "data.name"]),                       # first path with a value
        ("k.first", "data.other"),                                     # a scalar keeps the first
        ("tags[]", "data.items[].@odata.type", "lower|map:kind"),       # lists accumulate, de-duplicated
        ("k.typed", "data.items[?TYPE=User].id", "first"),              # filter keys ignore case
        ("objs[]", "data.items[]", {"id": "id", "ip": ("addr", "ip"), "_require": ["ip"]}),
        ("k.flag", "data.items", "=true"),
        ("k.zero", "data.zero"),                                       # 0 is a value, "" is not
        ("k.empty", "data.empty"),
    ]}
    record = {"data": {"name": "n", "other": "o", "zero": 0, "empty": "", "items": [
        {"@odata.type": "A", "type": "User", "id": "u1", "addr": "10.0.0.1"},
        {"@odata.type": "b", "Type": "user", "id": "u2", "addr": "999.1.1.1"},
        {"@odata.type": "A", "type": "Group", "id": "g1", "addr": "::1"}]}}
    doc: dict = {}
    consumed: set = set()
    compile_mapping(table, {}, lookups).apply(record, doc, consumed)
    assert doc == {"k": {"first": "n", "typed": "u1", "flag": True, "zero": 0, "c": "const"},
                   "tags": ["alpha", "other", "t0"],
                   "objs": [{"id": "u1", "ip": "10.0.0.1"}, {"id": "g1", "ip": "::1"}]}
    assert consumed == {"name", "items", "zero"}


# ------------------------------------------------------------- the validators can fail
def _ecs_doc(records) -> dict:
    return build_formatter("ecs")(records["audit_logs.sign_ins"][0])


@pytest.mark.parametrize("breakage, expected", [
    (lambda d: d.update({"nonsense": {"field": "x"}}), "nonsense.field: not an ECS field"),
    (lambda d: d["source"].update(ip="not-an-ip"), "source.ip: ip needs"),
    (lambda d: d["event"].update(category="authentication"), "event.category: ECS normalizes it to an array"),
    (lambda d: d["event"].update(kind="alarm"), "event.kind: 'alarm' is not an allowed value"),
    (lambda d: d["event"].update(type=["deletion"]), "event.type: 'deletion' is expected by none"),
    (lambda d: d.pop("@timestamp"), "@timestamp: required by ECS"),
    (lambda d: d["source"]["as"].update(number="3598") if "as" in d["source"] else d["source"].update(
        **{"as": {"number": "3598"}}), "source.as.number: long needs an integer"),
    (lambda d: d["user"].update(name=["a", "b"]), "user.name: ECS defines a single value"),
])
def test_the_ecs_validator_rejects_a_broken_document(records, breakage, expected):
    doc = json.loads(json.dumps(_ecs_doc(records)))
    assert ecs_errors(doc) == []
    breakage(doc)
    errors = ecs_errors(doc)
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize("breakage, expected", [
    (lambda e: e.pop("user"), "user: required, missing"),
    (lambda e: e.pop("time"), "time: required, missing"),
    (lambda e: e.update(type_uid=300202), "type_uid: 300202 is not class_uid * 100 + activity_id"),
    (lambda e: e.update(activity_id=42, type_uid=300242), "activity_id: 42 is not one of its enum ids"),
    (lambda e: e["metadata"].pop("product"), "metadata.product: required, missing"),
    (lambda e: e["metadata"].update(profiles=[]), "cloud: belongs to profile 'cloud'"),
    (lambda e: e.update(severity="High"), "severity: 'High' is not the caption of severity_id=1"),
    (lambda e: e.update(userPrincipalName="x"), "userPrincipalName: not an attribute here"),
    (lambda e: e["src_endpoint"].update(ip="123.456.7.89"), "src_endpoint.ip: ip_t does not take"),
    (lambda e: e.update(time="2026-11-26T10:00:00Z"), "time: timestamp_t (long_t) does not take"),
    (lambda e: e["src_endpoint"]["os"].pop("type_id"), "src_endpoint.os.type_id: required, missing"),
    (lambda e: e.update(service={"version": "1"}), "service.: constraint at_least_one of ['name', 'uid']"),
    (lambda e: e.update(class_name="Logon"), "class_name: 'Logon', the schema's caption is 'Authentication'"),
    (lambda e: e["metadata"].update(version="1.0.0"), "metadata.version: '1.0.0'"),
])
def test_the_ocsf_validator_rejects_a_broken_event(records, breakage, expected):
    event = json.loads(json.dumps(build_formatter("ocsf")(records["audit_logs.sign_ins"][0])))
    assert ocsf_errors(event) == []
    breakage(event)
    errors = ocsf_errors(event)
    assert any(expected in e for e in errors), errors


# ------------------------------------------------------------------- hook and robustness
class _Acme:
    @hookimpl
    def td_graph_map_record(self, fmt, source, record):
        if source != "security.secure_scores":
            return None
        return {"@timestamp": record["event_time"], "ecs": {"version": ecs_version()},
                "event": {"kind": "metric", "dataset": f"acme.{fmt}"}} if fmt == "ecs" else {
            "class_uid": 0, "category_uid": 0, "activity_id": 99, "type_uid": 99, "severity_id": 1,
            "time": 1, "metadata": {"version": ocsf_version(), "product": {"name": "acme"}}}


def test_a_plugin_maps_a_source_through_the_hook(records):
    pm = create_plugin_manager(load_entrypoints=False)
    pm.register(_Acme(), name="acme")
    record = records["security.secure_scores"][0]
    doc = build_formatter("ecs", pm)(record)
    assert doc["event"] == {"kind": "metric", "dataset": "acme.ecs", "created": record["collected_at"]}
    assert doc["td_graph"]["source"] == "security.secure_scores" and ecs_errors(doc) == []
    assert envelope_of(orjson.loads(orjson.dumps(doc))) == record
    event = build_formatter("ocsf", pm)(record)
    assert event["metadata"]["product"] == {"name": "acme"} and ocsf_errors(event) == []
    assert envelope_of(orjson.loads(orjson.dumps(event))) == record
    # other sources keep td-graph's mapping
    assert build_formatter("ecs", pm)(records["audit_logs.sign_ins"][0])["event"]["category"] == ["authentication"]


def test_no_hook_call_at_all_without_an_implementation():
    pm = create_plugin_manager(load_entrypoints=False)
    assert build_formatter("ecs", pm).hook is None


def test_a_failing_hook_or_mapping_still_writes_the_record(records, caplog):
    class Broken:
        @hookimpl
        def td_graph_map_record(self, fmt, source, record):
            raise RuntimeError("plugin bug")

    pm = create_plugin_manager(load_entrypoints=False)
    pm.register(Broken(), name="broken")
    record = records["audit_logs.sign_ins"][0]
    with caplog.at_level(logging.WARNING, logger="td_graph_plugin.formats"):
        doc = build_formatter("ecs", pm)(record)
        build_formatter("ecs", pm)(record)
    assert doc["event"]["category"] == ["authentication"]
    assert any("td_graph_map_record hook failed" in m for m in caplog.messages)
    for fmt, errors in ((EcsFormatter(), ecs_errors), (OcsfFormatter(), ocsf_errors)):
        mapping = fmt.mappings["audit_logs.sign_ins"] if isinstance(fmt, EcsFormatter) else fmt.variants["audit_logs.sign_ins"][0][2]
        mapping.rules[-1].convert = lambda v: 1 / 0  # a mapping bug on this record
        doc = fmt(record)
        assert errors(doc) == [] and envelope_of(orjson.loads(orjson.dumps(doc))) == record


# ------------------------------------------------------------------------------- docs
def test_docs_formats_md_is_the_rendered_tables():
    text = (DOCS / "formats.md").read_text(encoding="utf-8")
    assert START in text and END in text, "docs/formats.md lost its generated block markers"
    block = text.split(START, 1)[1].split(END, 1)[0]
    assert block.strip() == render().strip(), "run `python -m td_graph_plugin.formats.docs docs/formats.md`"


# ------------------------------------------------------------------- crash recovery (handoff)
@pytest.mark.parametrize("fmt_name", ["ecs", "ocsf"])
def test_the_file_outputs_crash_recovery_adopts_formatted_records(records, tmp_path, fmt_name):
    """After kill -9, the file output's tail is adopted, not written again: that needs the
    envelope back from each ECS/OCSF line, or exactly-once breaks for these formats."""
    from td_graph_plugin.collector.recovery import make_adopter
    from td_graph_plugin.config.model import Config
    from td_graph_plugin.plugins import load_catalogue
    from td_graph_plugin.state import StateStore
    from tests.vcr_support import tenant_config

    fmt = build_formatter(fmt_name)
    lines = [orjson.dumps(fmt(r)) for r in records["audit_logs.sign_ins"] + records["directory.users"]]
    state = StateStore(str(tmp_path / "state.db"))
    try:
        adopt = make_adopter(Config(tenants=(tenant_config(),)), load_catalogue(create_plugin_manager(load_entrypoints=False)))
        assert adopt(state, lines, (str(tmp_path / "out.ndjson"), 0)) == len(lines)
    finally:
        state.close()


def test_isolates_own_emitter_writes_the_configured_format(tmp_path):
    """``isolate`` with no collector running emits its audit record through the file output
    itself (runtime.FeedFlusher): in the configured format too."""
    import yaml

    from td_graph_plugin.config import load_config
    from td_graph_plugin.runtime import FeedFlusher
    from td_graph_plugin.state import StateStore
    from tests.vcr_support import CLIENT_ID, TENANT_ID

    out = tmp_path / "records.ndjson"
    path = tmp_path / "td-graph.yaml"
    path.write_text(yaml.safe_dump({
        "tenants": [{"name": "contoso", "tenant_id": TENANT_ID, "client_id": CLIENT_ID, "client_secret": "x" * 30}],
        "state": {"path": str(tmp_path / "state.db")},
        "output": {"type": "file", "path": str(out), "format": "ocsf"}}), encoding="utf-8")
    config = load_config(str(path))
    record = {"tenant": "contoso", "tenant_id": TENANT_ID, "source": "td_graph.isolation", "id": "act-0001",
              "event_time": "2026-11-26T03:00:00Z", "collected_at": "2026-11-26T03:00:01.000Z",
              "data": {"action": "isolate", "dry_run": True, "outcome": "dry_run", "target": {"id": "u-1"}}}
    store = StateStore(config.isolation_state_path, exclusive=False)
    try:
        store.add_isolation("contoso", "u-1", "isolate", record)
    finally:
        store.close()
    FeedFlusher(config)(record)
    (event,) = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert ocsf_errors(event) == [] and event["unmapped"]["td_graph"]["id"] == "act-0001"
    assert envelope_of(event)["data"]["target"] == {"id": "u-1"}
