"""Every source of the catalogue, end to end, against Microsoft's documented responses.

Each ``cassettes/sources/<source>.yaml`` holds the MSAL exchange (OpenID configuration and
the client-credentials token POST) and the Graph pages of Microsoft's documented example
response for that endpoint, with a second page.  The run goes through the real stack:
``Engine.run_job`` -> real ``GraphClient`` (real ``TokenProvider``/MSAL) -> real collector ->
real SQLite ``StateStore`` -> an in-memory output, at ``NOW`` (tests/vcr_support.py).

What the tests prove, per source:
* the cassette holds exactly the requests td-graph sends (method, host, path, query with the
  spec's ``$top``/``$filter``/operators, header names), every interaction is played once, and
  a request the cassette does not hold fails the test;
* the records are the documented objects (ids, count across both pages, de-duplicated
  replays), in the contract's envelope, with ``data`` byte-for-byte what Graph sent.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from vcr.errors import CannotOverwriteExistingCassetteException

from td_graph_plugin.collector.window import build_time_filter
from td_graph_plugin.config.model import SourceSettings
from td_graph_plugin.graph.http import user_agent
from td_graph_plugin.timeutil import format_time, parse_time
from tests.vcr_support import (
    CASSETTES,
    GRAPH,
    NOW,
    TENANT_ID,
    catalogue,
    planned_windows,
    run_source,
)

SOURCES = [spec.name for spec in catalogue() if spec.reads_graph]
GRAPH_HOST = urlsplit(GRAPH).netloc

# Delta sources whose cassette also holds the documented deltaLink round run twice.
RUNS = {"directory.users": 2, "directory.groups": 2}
# The documented object ids each source must emit, in order, over its runs.
EXPECTED_IDS = {
    "security.alerts_v2": ["da637551227677560813_-961444813"],
    "security.incidents": ["2972395"],
    "security.secure_scores": ["00000001-0001-0001-0001-000000000001c_2019-03-19"],
    "security.secure_score_control_profiles": ["DLPEnabled"],
    "identity_protection.risky_users": ["d1d4a5d4-a5d4-d1d4-d4a5-d4d1d4a5d4d1", "c2b6c2b9-dddc-acd0-2b39-d519d803dbc3"],
    "identity_protection.risk_detections": ["6a5874ca-abcd-9d82-5ad39bd71600"],
    "identity_protection.risky_service_principals": ["9089a539-a539-9089-39a5-899039a58990"],
    "identity_protection.service_principal_risk_detections": ["2856d6e87c5c3a74021ff70291fa68107570c150d8dc145bdea5"],
    "audit_logs.sign_ins": ["66ea54eb-6301-4ee5-be62-ff5a759b0100"],
    "audit_logs.sign_ins_non_interactive": ["1691d37b-8579-43a7-966a-0f35583c1300"],
    "audit_logs.sign_ins_service_principal": ["1691d37b-8579-43a7-966a-0f35583c1300"],
    "audit_logs.sign_ins_managed_identity": ["1691d37b-8579-43a7-966a-0f35583c1300"],
    "audit_logs.directory_audits": ["id", "SSGM_b662f17a-4e4d-4e1c-9248-cdec180024b2_MCDC4_88453290"],
    "audit_logs.provisioning": ["75b5b0ae-9fc5-8d0e-e0a9-7y6a4728de56", "gc532ff9-r265-ec76-861e-42e2970a8218"],
    "directory.users": [
        "ffff7b1a-13b6-477b-8c0c-380905cd99f7",
        "605d1257-ffff-40b6-8e6f-528a53f5dc55",
        "86462606-fde0-4fc4-9e0c-a20eb73e54c6",
        "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0",
        "d8c37826-ffff-4cae-b348-e2725b1e814b",
        "8b1ee412-cd8f-4d59-ffff-24010edb9f1f",
        "25dcffff-959e-4ece-9973-e5d9b800e8cc",
        "f6ede700-27d0-4c42-bfb9-4dffff43c74a",
        # round 2 (the deltaLink): a changed user and a soft-deleted one
        "25dcffff-959e-4ece-9973-e5d9b800e8cc",
        "8ffff70c-1c63-4860-b963-e34ec660931d",
    ],
    "directory.groups": [
        "c2f798fd-f95d-4623-8824-63aec21fffff",
        "ec22655c-8eb2-432a-b4ea-8b8a254bffff",
        "2e5807ce-58f3-4a94-9b37-ffff2e085957",
        "421e797f-9406-4934-b778-4908421e3505",
        "bed7f0d4-750e-4e7e-ffff-169002d06fc9",
        "421e797f-9406-ffff-b778-4908421e3505",
        # round 2 (the deltaLink): TestGroup3's description and members changed
        "2e5807ce-58f3-4a94-9b37-ffff2e085957",
    ],
    "directory.devices": ["c9d9f9b3-0c91-4080-b392-78f775903b3a", "000005c3-b7a6-4c61-89fc-80bf5ccfc366"],
    "directory.applications": [
        "89e9e6c6-a7de-4ac0-8eed-12bd867d8f27",
        "c6cb7240-c684-4e24-93f5-eb29d0d9f43b",
        "d7151835-284e-4416-adc6-96fef8a77690",
    ],
    "directory.service_principals": ["59e617e5-e447-4adc-8b88-00af644d7c92", "00af5dfb-85da-4b41-a677-0c6b86dd34f8"],
    "governance.app_consent_requests": ["af330b30-dd59-4482-a848-0fd81b0438ed"],
    "intune.managed_devices": ["705c034c-034c-705c-4c03-5c704c035c70"],
    "intune.compliance_policies": ["4214b716-b716-4214-16b7-144216b71442"],
    "intune.device_configurations": ["34977265-7265-3497-6572-973465729734"],
    "intune.audit_events": ["59653ce8-3ce8-5965-e83c-6559e83c6559"],
    "reports.user_registration_details": [
        "86462606-fde0-4fc4-9e0c-a20eb73e54c6",
        "c6ad1942-4afa-47f8-8d48-afb5d8d69d2f",
        "c8096958-797c-44fa-8fde-a6fb62567cf0",
    ],
    # sha256("userprincipalname-value\x1ffalse\x1f")[:32]: (UPN, Is Deleted, Deleted Date) of the row.
    "reports.office365_active_users": ["93ba444aeecbc809be1796110650941e"],
}
ENVELOPE = {"tenant", "tenant_id", "source", "id", "event_time", "collected_at", "data"}


def response_body(run, played) -> bytes:
    raw = run.replay.cassette.data[played.index][1]["body"]["string"]
    return raw if isinstance(raw, bytes) else raw.encode("utf-8")


def graph_pages(run) -> list[dict]:
    """The decoded JSON pages vcrpy played to td-graph, in order."""
    out = []
    for p in run.graph:
        if p.status == 200 and p.header("Accept") == "application/json":
            out.append(orjson.loads(response_body(run, p)))
    return out


def decoded_query(uri: str) -> list[tuple[str, str]]:
    return sorted(parse_qsl(urlsplit(uri).query, keep_blank_values=True))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every source run once against its cassette (module-wide: the whole set takes ~1 s)."""
    out = {}
    for name in SOURCES:
        out[name] = run_source(
            name, f"sources/{name}.yaml", tmp_path_factory.mktemp(name.replace(".", "_")), runs=RUNS.get(name, 1)
        )
    return out


def test_every_catalogue_source_has_a_cassette():
    files = {p.stem for p in (CASSETTES / "sources").glob("*.yaml")}
    assert files == set(SOURCES)
    assert set(EXPECTED_IDS) == set(SOURCES)


@pytest.mark.parametrize("name", SOURCES)
def test_source_replays_documented_response(runs, name):
    run, spec = runs[name], catalogue()[name]
    assert [r.status for r in run.results] == ["ok"] * RUNS.get(name, 1), run.result.error
    # Every recorded interaction was played exactly once: nothing missing, nothing extra.
    assert run.replay.unplayed() == []
    assert sorted(p.index for p in run.played) == list(range(len(run.replay.cassette.data)))
    # MSAL: the tenant's OpenID configuration, then one client-credentials POST.
    login = [p for p in run.played if p.host == "login.microsoftonline.com"]
    assert [(p.request.method, p.path) for p in login] == [
        ("GET", f"/{TENANT_ID}/v2.0/.well-known/openid-configuration"),
        ("POST", f"/{TENANT_ID}/oauth2/v2.0/token"),
    ]
    # At least two Graph pages (the second through @odata.nextLink), the expected records.
    assert len(run.played) - 2 >= 2
    assert run.ids() == EXPECTED_IDS[name]
    if RUNS.get(name, 1) == 1:
        assert len(set(run.ids())) == len(run.ids()), "a replayed object was emitted twice"


@pytest.mark.parametrize("name", SOURCES)
def test_records_are_the_contract_envelope_around_unchanged_data(runs, name):
    run, spec = runs[name], catalogue()[name]
    if name == "reports.office365_active_users":
        download = run.played[-1]
        documented = list(csv.DictReader(io.StringIO(response_body(run, download).decode("utf-8"))))
    else:
        documented = [item for page in graph_pages(run) for item in page["value"]]
    assert run.records
    for rec in run.records:
        keys = set(rec)
        assert keys == ENVELOPE | ({"removed"} if "removed" in rec else set())
        assert rec["tenant"] == "contoso" and rec["tenant_id"] == TENANT_ID and rec["source"] == name
        assert rec["collected_at"] == format_time(NOW) == "2026-11-26T12:00:00Z"
        # data is exactly one of the objects Graph sent (orjson round trip, nothing added; a
        # report row also carries td-graph's row id, its identity without an object id).
        data = rec["data"]
        if name == "reports.office365_active_users":
            data = {k: v for k, v in data.items() if k != "td_graph_row_id"}
        assert data in documented
        assert rec["id"] == rec["data"][spec.id_field]
        if "removed" in rec:
            assert rec["removed"] == rec["data"]["@removed"]["reason"]
        _check_event_time(name, rec)


# When each source's thing happened, written by hand from the resources' documentation (the
# contract: event_time is never null; an object with no timestamp gets the time td-graph saw it).
EVENT_TIME_FIELD = {
    "audit_logs.directory_audits": "activityDateTime",  # directoryAudit: when the activity was performed
    "audit_logs.provisioning": "activityDateTime",
    "audit_logs.sign_ins": "createdDateTime",  # signIn: when the sign-in was initiated
    "audit_logs.sign_ins_managed_identity": "createdDateTime",
    "audit_logs.sign_ins_non_interactive": "createdDateTime",
    "audit_logs.sign_ins_service_principal": "createdDateTime",
    "identity_protection.risk_detections": "activityDateTime",  # riskDetection: when the risky activity occurred
    "identity_protection.service_principal_risk_detections": "activityDateTime",
    "identity_protection.risky_users": "riskLastUpdatedDateTime",
    "identity_protection.risky_service_principals": "riskLastUpdatedDateTime",
    "intune.audit_events": "activityDateTime",
    "intune.compliance_policies": "lastModifiedDateTime",
    "intune.device_configurations": "lastModifiedDateTime",
    "intune.managed_devices": "lastSyncDateTime",
    "reports.office365_active_users": "Report Refresh Date",  # a date: midnight UTC
    "reports.user_registration_details": "lastUpdatedDateTime",
    "security.alerts_v2": "lastUpdateDateTime",
    "security.incidents": "lastUpdateDateTime",
    "security.secure_score_control_profiles": "lastModifiedDateTime",
    "security.secure_scores": "createdDateTime",
}
OBSERVED = "2026-11-26T12:00:00Z"  # the replay's clock (tests/vcr_support.NOW), written out
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z")


def _instant(value):
    """The standard library's reading of an RFC 3339 value (not td-graph's parser), to the µs."""
    from datetime import datetime, timezone

    if not isinstance(value, str):
        return None
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2}))?", value)
    if m is None:
        return None
    day, clock, frac, zone = m.groups()
    if clock is None:  # a date (report refresh date): midnight UTC
        return datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
    text = f"{day}T{clock}" + (f".{(frac + '000000')[:6]}" if frac else "") + ("+00:00" if zone == "Z" else zone)
    try:
        return datetime.fromisoformat(text).astimezone(timezone.utc)
    except ValueError:
        return None


def _check_event_time(name, rec):
    assert RFC3339_UTC.fullmatch(rec["event_time"] or ""), f"{name}: event_time {rec['event_time']!r}"
    field = EVENT_TIME_FIELD.get(name)
    happened = _instant(rec["data"].get(field)) if field and "removed" not in rec else None
    if happened is None:  # no timestamp, a removal, or one that is not a time: observed now
        assert rec["event_time"] == OBSERVED, (name, rec["data"].get(field))
    else:
        assert _instant(rec["event_time"]) == happened, (name, field, rec["data"].get(field))


@pytest.mark.parametrize("name", SOURCES)
def test_requests_are_what_the_spec_says(runs, name):
    run, spec = runs[name], catalogue()[name]
    graph = run.graph
    first, rest = graph[0], graph[1:]
    assert first.path == f"/{spec.version}{spec.path}"
    for p in graph:
        assert p.request.method == "GET"
        assert p.path.startswith(f"/{spec.version}/")
        assert p.header("Authorization") == "Bearer REDACTED"  # the (scrubbed) MSAL token
        assert p.header("User-Agent") == user_agent()
        uuid.UUID(p.header("client-request-id"))
        for header, value in spec.headers.items():  # resent on every page (paging.md)
            assert p.header(header) == value, (header, p.uri)
        if spec.pager is None:
            assert p.header("Accept") == "application/json"
        # The header names are exactly the recorded ones (the cassette is td-graph's request).
        assert {k.lower() for k in p.request.headers} == {k.lower() for k in p.recorded.headers}
        assert decoded_query(p.uri) == decoded_query(p.recorded.uri)
    first_pages = [p for p in graph if "$skiptoken" not in p.query and "$deltatoken" not in p.query]
    for p in first_pages:
        if spec.page_size is not None:
            assert p.query["$top"] == str(spec.page_size)
        else:
            assert "$top" not in p.query
        assert "$expand" not in p.query and "$orderby" not in p.query
    if spec.max_offset is not None:  # bounded offset paging asks the first page's count
        assert all(p.query.get("$count") == "true" for p in first_pages)
    if spec.mode == "window" and spec.shapes[0].client_side_window:
        # The endpoint documents no range on the field: one unfiltered read, window client-side.
        assert len(first_pages) == 1 and "$filter" not in first_pages[0].query
    elif spec.mode == "window":
        expected = [
            build_time_filter(spec.time_field, spec.filter_ops, lo, hi, spec.extra_filter)
            for lo, hi in planned_windows(spec, NOW)
        ]
        assert [p.query["$filter"] for p in first_pages] == expected
        lo_op, hi_op = spec.filter_ops
        for f in expected:
            assert f" {lo_op} " in f and f" {hi_op} " in f
    else:
        assert all("$filter" not in p.query for p in graph)
    # Every later page is the whole @odata.nextLink of the page before it, unchanged.
    if spec.pager is None:
        pages = graph_pages(run)
        links = [pg.get("@odata.nextLink") for pg in pages]
        followed = [p for p in rest if "$skiptoken" in p.query]
        assert followed, "no second page was requested"
        for p in followed:
            link = next(lk for lk in links if lk and decoded_query(lk) == decoded_query(p.uri))
            assert urlsplit(link).path == urlsplit(p.uri).path


def test_a_request_not_in_the_cassette_fails_the_test(tmp_path):
    # $top=999 is not what the cassette holds ($top=1000): vcrpy must refuse, and run_source
    # must surface it instead of reporting a "failing" source.
    with pytest.raises(CannotOverwriteExistingCassetteException):
        run_source("audit_logs.sign_ins", "sources/audit_logs.sign_ins.yaml", tmp_path, settings=SourceSettings(page_size=999))


# --- per-source facts ----------------------------------------------------------------
def record(run, obj_id):
    (rec,) = [r for r in run.records if r["id"] == obj_id]
    return rec


def test_alerts_send_prefer_enum_header_and_keep_evidence(runs):
    run = runs["security.alerts_v2"]
    assert all(p.header("Prefer") == "include-unknown-enum-members" for p in run.graph)
    data = run.records[0]["data"]
    assert [e["@odata.type"] for e in data["evidence"]] == [
        "#microsoft.graph.security.deviceEvidence",
        "#microsoft.graph.security.fileEvidence",
        "#microsoft.graph.security.processEvidence",
        "#microsoft.graph.security.registryKeyEvidence",
    ]
    assert run.records[0]["event_time"] == "2021-05-02T14:19:01.326666Z"  # lastUpdateDateTime
    assert "\ufffd\tReview the machine timeline" in data["recommendedActions"]


def test_incidents_page_size_is_50_and_never_expand(runs):
    run = runs["security.incidents"]
    first = run.graph[0]
    assert first.query["$top"] == "50"
    assert not any("$expand" in p.query for p in run.graph)
    assert record(run, "2972395")["data"]["classification"] == "TruePositive"


def test_replayed_object_on_the_next_page_is_emitted_once(runs):
    # Page 2 of these cassettes repeats the documented object: one record, two pages read.
    for name in ("security.alerts_v2", "security.incidents", "audit_logs.sign_ins", "identity_protection.risk_detections"):
        run = runs[name]
        pages = graph_pages(run)
        assert sum(len(pg["value"]) for pg in pages) == 2
        assert len(run.records) == 1


def test_risk_detection_additional_info_stays_a_json_string(runs):
    rec = record(runs["identity_protection.risk_detections"], "6a5874ca-abcd-9d82-5ad39bd71600")
    info = rec["data"]["additionalInfo"]
    assert isinstance(info, str)
    assert info.startswith('[{"Key":"userAgent","Value":"Mozilla/5.0 (Windows NT 10.0;')
    assert orjson.loads(info)[0]["Key"] == "userAgent"
    # activityDateTime of Microsoft's example (2018-09-05T00:09:18.7822851Z) to the microsecond;
    # lastUpdatedDateTime (2018-09-05T00:11:27.773602Z) stays the polling cursor.
    assert rec["event_time"] == "2018-09-05T00:09:18.782285Z"
    first = runs["identity_protection.risk_detections"].graph[0]
    assert first.query["$top"] == "500"


def test_identity_protection_walks_seven_daily_windows(runs):
    for name in ("identity_protection.risky_users", "identity_protection.risk_detections"):
        run, spec = runs[name], catalogue()[name]
        windows = planned_windows(spec, NOW)
        assert len(windows) == 7 and windows[0][0] == NOW - spec.duration("lookback")
        assert len(run.graph) == 8  # seven windows, the first one with a second page
        assert run.pacing, "identity protection is paced (1 request/s): the virtual clock waited"


def test_risky_user_placeholder_doc_example_is_kept_verbatim(runs):
    run = runs["identity_protection.risky_users"]
    placeholder = record(run, "d1d4a5d4-a5d4-d1d4-d4a5-d4d1d4a5d4d1")
    assert placeholder["event_time"] == "2026-11-26T12:00:00Z"  # "String (timestamp)" is not a time: observed
    assert placeholder["data"]["isDeleted"] == "Boolean"
    jon = record(run, "c2b6c2b9-dddc-acd0-2b39-d519d803dbc3")
    assert jon["event_time"] == "2018-09-22T00:04:49.119596Z" and jon["data"]["riskState"] == "atRisk"


def test_malformed_documented_timestamp_is_parsed_not_rewritten(runs):
    rec = record(runs["identity_protection.service_principal_risk_detections"], "2856d6e87c5c3a74021ff70291fa68107570c150d8dc145bdea5")
    assert rec["data"]["lastUpdatedDateTime"] == "2021-10-26T16:28:17.8202975Z)"
    # The record's time is its activityDateTime; the malformed lastUpdatedDateTime is the cursor.
    assert rec["event_time"] == "2021-10-26T00:00:00Z"


def test_sign_ins_use_ge_le_and_beta_adds_the_event_type_filter(runs):
    v1 = runs["audit_logs.sign_ins"].graph[0]
    assert v1.path == "/v1.0/auditLogs/signIns"
    assert re.fullmatch(r"createdDateTime ge \S+Z and createdDateTime le \S+Z", v1.query["$filter"])
    assert v1.query["$top"] == "1000"
    for suffix, event_type in (("non_interactive", "nonInteractiveUser"), ("service_principal", "servicePrincipal"),
                               ("managed_identity", "managedIdentity")):
        p = runs[f"audit_logs.sign_ins_{suffix}"].graph[0]
        assert p.path == "/beta/auditLogs/signIns"
        assert p.query["$filter"].startswith(f"signInEventTypes/any(t: t eq '{event_type}') and createdDateTime ge ")
    sign_in = runs["audit_logs.sign_ins"].records[0]["data"]
    assert sign_in["location"]["geoCoordinates"]["longitude"] == -122.12094116210938


def test_provisioning_uses_gt_lt(runs):
    (first, _) = runs["audit_logs.provisioning"].graph
    f = first.query["$filter"]
    assert re.fullmatch(r"activityDateTime gt \S+Z and activityDateTime lt \S+Z", f)
    assert " ge " not in f and " le " not in f
    failed = record(runs["audit_logs.provisioning"], "gc532ff9-r265-ec76-861e-42e2970a8218")
    assert failed["data"]["provisioningStatusInfo"]["errorInformation"]["errorCode"] == "ContosoEntryConflict"


def test_directory_audit_annotations_are_not_records(runs):
    run = runs["audit_logs.directory_audits"]
    assert graph_pages(run)[1]["@microsoft.graph.tips"].startswith("Use $select")
    assert run.ids() == EXPECTED_IDS["audit_logs.directory_audits"]
    assert record(run, "id")["data"]["targetResources"][0]["Type"] == "Group"  # casing kept


def test_intune_times_with_offsets_become_utc(runs):
    rec = runs["intune.managed_devices"].records[0]
    assert rec["data"]["lastSyncDateTime"] == "2017-01-01T00:02:49.3205976-08:00"
    assert rec["event_time"] == "2017-01-01T08:02:49.320597Z"
    audit = runs["intune.audit_events"].records[0]
    assert audit["event_time"] == "2017-01-01T07:59:51.636308Z"


def test_users_delta_full_round_then_delta_link(runs):
    run = runs["directory.users"]
    graph = run.graph
    assert not any("$top" in p.query for p in graph), "user delta rejects $top"
    # $select on the first request only (later links carry it encoded): without it only the
    # default properties are tracked (user-delta, Example 1), so a disabled account is no record.
    selected = graph[0].query["$select"].split(",")
    assert {"id", "accountEnabled", "userType", "createdDateTime", "onPremisesSyncEnabled", "externalUserState"} <= set(selected)
    assert graph[0].path == "/v1.0/users/delta" and not any("$select" in p.query for p in graph[1:])
    # Round 2 starts from the stored deltaLink, verbatim.
    assert graph[3].query["$deltatoken"].startswith("oEcOySpF_hWYmTIUZBOIfPzcwisr_rPe8o9M54L45qEXQ")
    first_round, second_round = run.records[:8], run.records[8:]
    assert [r["id"] for r in first_round] == EXPECTED_IDS["directory.users"][:8]
    removed = [r for r in first_round if "removed" in r]
    assert [(r["id"], r["removed"]) for r in removed] == [("86462606-fde0-4fc4-9e0c-a20eb73e54c6", "deleted")]
    assert [(r["id"], r.get("removed")) for r in second_round] == [
        ("25dcffff-959e-4ece-9973-e5d9b800e8cc", None),  # Lidia Holloway -> MOD Administrator
        ("8ffff70c-1c63-4860-b963-e34ec660931d", "changed"),
    ]
    assert second_round[0]["data"]["displayName"] == "MOD Administrator"


def test_groups_delta_tracks_member_changes(runs):
    run = runs["directory.groups"]
    assert not any("$top" in p.query for p in run.graph), "group delta rejects $top"
    assert [r["id"] for r in run.records[:6]] == EXPECTED_IDS["directory.groups"][:6]
    (changed,) = run.records[6:]
    assert changed["id"] == "2e5807ce-58f3-4a94-9b37-ffff2e085957"
    assert changed["data"]["members@delta"][0]["@removed"] == {"reason": "deleted"}
    assert changed["data"]["description"] == "A test group for change tracking"


def test_office365_report_download_carries_no_authorization(runs):
    run = runs["reports.office365_active_users"]
    report, download = run.played[-2], run.played[-1]
    assert report.host == GRAPH_HOST and report.path == "/v1.0/reports/getOffice365ActiveUserDetail(period='D7')"
    assert report.status == 302 and report.header("Authorization") == "Bearer REDACTED"
    location = run.replay.cassette.data[report.index][1]["headers"]["Location"][0]
    assert download.uri == location
    assert download.host == "reports.office.com"
    assert download.header("Authorization") is None, "the bearer token leaked to the report download host"
    assert "authorization" not in {k.lower() for k in download.recorded.headers}
    (rec,) = run.records
    assert rec["data"]["User Principal Name"] == "userprincipalname-value"
    assert rec["data"]["Assigned Products"] == "Microsoft 365 ENTERPRISE E5"
    assert list(rec["data"])[0] == "Report Refresh Date"


def test_user_registration_details_across_two_pages(runs):
    run = runs["reports.user_registration_details"]
    pages = graph_pages(run)
    assert [len(p["value"]) for p in pages] == [2, 1]
    assert record(run, "c8096958-797c-44fa-8fde-a6fb62567cf0")["data"]["methodsRegistered"] == [
        "mobilePhone", "microsoftAuthenticatorPush", "softwareOneTimePasscode"]
