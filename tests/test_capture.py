"""``td-graph capture`` against the simulator: scrubbed cassettes that replay to the same records.

The capture runs the real client and collectors against an all-licensed simulated tenant whose
every identifier, name, address, token and secret the test knows, then:
* replays the written folder through ``tests/test_captured_cassettes.replay_capture`` (the
  function that replays ``cassettes/captured/``) and compares each record with the record the
  capture saw: same shape, same non-text values, and every changed string replaced by one
  placeholder used for it everywhere (joins survive) and by no other original;
* scans every file written for every original GUID, UPN, mail address, IP, person, device and
  app name, the client secret and the tokens the simulator issued, and checks structurally that
  every name field in every body holds a placeholder.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from td_graph_plugin.capture import DEFAULT_PAGES, capture
from td_graph_plugin.capture.scrub import Origins, Scrubber
from td_graph_plugin.cli.demo import demo_config
from td_graph_plugin.runtime import load_validated
from td_graph_plugin.simulator import GraphSimulator
from tests.test_captured_cassettes import check_replay, replay_capture

pytestmark = pytest.mark.timeout(180)

# Endpoints read without $top get small pages here, so some sources are cut at --pages.
SMALL_PAGES = {"/users/delta": 30, "/groups/delta": 10, "/auditLogs/directoryAudits": 30,
               "/identityProtection/riskyUsers": 8}
PAGES = 2
GUID = re.compile(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
MAIL = re.compile(r"(?i)^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
# Name fields, written by hand (Graph's property names); a placeholder or empty in every body.
NAME_FIELDS = {"displayName", "userDisplayName", "givenName", "surname", "deviceName", "mailNickname",
               "userPrincipalName", "mail", "servicePrincipalDisplayName", "appDisplayName", "accountName",
               "hostName", "deviceDnsName", "emailAddress", "resourceDisplayName", "initiatedBy"}
# Microsoft's public vocabulary the capture keeps on purpose: Graph's permission names and the
# scopes a consent request asks for.
PUBLIC_CONTAINERS = {"appRoles", "pendingScopes"}
PLACEHOLDER = re.compile(r"^(?:(?:name|text|serial|phone)-[0-9a-f]{10}|user-[0-9a-f]{10}@example\.invalid)$")
GEO = {"latitude", "longitude", "altitude"}


def _write_config(sim: GraphSimulator, tenant, folder: Path) -> Path:
    path = folder / "td-graph.yaml"
    path.write_text(yaml.safe_dump(demo_config(sim, tenant, str(folder / "state.db"))))
    return path


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """One capture of every source of an all-licensed simulated tenant (and the tenant)."""
    root = tmp_path_factory.mktemp("capture")
    with GraphSimulator(workdir=str(root / "sim")) as sim, pytest.MonkeyPatch.context() as mp:
        tenant = sim.add_tenant(profile="all")
        for path, size in SMALL_PAGES.items():
            sim.set_page_size(path, size)
        mp.setenv("TD_GRAPH_DEMO_SECRET", tenant.client_secret)
        config, _pm, cat = load_validated(str(_write_config(sim, tenant, root)), load_entrypoints=False)
        result = capture(config, cat, "demo", root / "out", pages=PAGES)
        tokens = set(sim.tokens._tokens)  # every access token the simulator issued (test-only peek)
        downloads = {r.path.rsplit("/", 1)[-1].split(".")[0] for r in sim.requests if r.path.startswith("/_download/")}
        yield {"sim": sim, "tenant": tenant, "result": result, "out": root / "out", "root": root,
               "tokens": tokens, "downloads": downloads}


# --- capture -> replay --------------------------------------------------------------------------
def _walk(a: Any, b: Any, where: str, pairs: list[tuple[str, str, str]]) -> None:
    """Same shape; equal leaves, or string pairs collected in ``pairs`` (changed by scrubbing)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} != {list(b) if isinstance(b, dict) else b}"
        for k in a:
            _walk(a[k], b[k], f"{where}.{k}", pairs)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: list length"
        for x, y in zip(a, b):
            _walk(x, y, f"{where}[]", pairs)
    elif isinstance(a, str) and isinstance(b, str):
        if a != b:
            pairs.append((a, b, where))
    elif isinstance(a, (int, float)) and not isinstance(a, bool) and where.rsplit(".", 1)[-1] in GEO:
        assert b == 0.0, where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_capture_then_replay_gives_the_same_records_modulo_scrubbing(captured, tmp_path):
    result, out = captured["result"], captured["out"]
    assert result.ok, result.problems
    replayed = replay_capture(out, tmp_path)
    check_replay(out, replayed)
    assert set(replayed.sources) == set(result.sources)
    pairs: list[tuple[str, str, str]] = []
    for name, original in result.sources.items():
        again = replayed.sources[name].records
        assert len(again) == len(original.records) > 0, name
        for o, r in zip(original.records, again):
            assert (o["source"], o.get("removed")) == (r["source"], r.get("removed"))
            _walk(o["data"], r["data"], f"{name}", pairs)
            _walk(o["id"], r["id"], f"{name}.id", pairs)
    forward: dict[str, str] = {}
    backward: dict[str, str] = {}
    for orig, repl, where in pairs:
        key = orig.casefold()
        if not repl.startswith("text-"):  # free text is replaced whole (joins are on identifiers)
            assert forward.setdefault(key, repl) == repl, f"{where}: {orig!r} became {repl!r} and {forward[key]!r}"
        assert backward.setdefault(repl, key) == key, f"{where}: {repl!r} stands for two originals"
    # Joins survive: a sign-in's userId is the (replaced) id of a user in the users delta.
    users = {r["data"]["id"] for r in replayed.sources["directory.users"].records}
    sign_in_users = {r["data"]["userId"] for r in replayed.sources["audit_logs.sign_ins"].records}
    assert users & sign_in_users


def test_a_source_cut_at_n_pages_says_so_and_ends_where_its_cassette_ends(captured):
    meta = json.loads((captured["out"] / "capture.json").read_text())
    users = meta["sources"]["directory.users"]
    assert users["truncated"] and users["pages"] == PAGES and users["records"] == PAGES * SMALL_PAGES["/users/delta"]
    assert not meta["sources"]["audit_logs.sign_ins"]["truncated"]
    assert DEFAULT_PAGES == 2  # the CLI's help text says so
    cassette = yaml.safe_load((captured["out"] / users["cassette"]).read_text())
    graph = [i for i in cassette["interactions"] if "/v1.0/" in i["request"]["uri"]]
    assert len(graph) == PAGES and "@odata.nextLink" in graph[-1]["response"]["body"]["string"]


# --- nothing original survives -------------------------------------------------------------------
def _strings(obj: Any, key: str = "", inside: tuple[str, ...] = ()) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every string leaf with its key and the keys above it."""
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in _strings(v, k, inside + (k,))]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v, key, inside)]
    return [(key, obj, inside)] if isinstance(obj, str) else []


# The names the tenant holds: its people, groups, devices and its own apps (Microsoft's first-party
# apps have public names that Microsoft's own permission texts quote).
OWN_NAMES = {"users": {"displayName", "givenName", "surname", "mailNickname"}, "groups": {"displayName", "mailNickname"},
             "devices": {"displayName"}, "managed_devices": {"deviceName"}, "applications": {"displayName"},
             "service_principals": {"displayName", "appDisplayName"}}


def _needles(tenant) -> set[str]:
    """Every identifier and name the simulated tenant holds (and its secret)."""
    found = {tenant.tenant_id, tenant.client_id, tenant.client_secret, tenant.domain}
    names: set[str] = set()
    for cname, coll in tenant.collections.items():
        for item in coll.items:
            own = item.get("appOwnerOrganizationId") in (None, tenant.tenant_id)
            for key, value, inside in _strings(item):
                if GUID.fullmatch(value) or MAIL.match(value):
                    found.add(value)
                    continue
                try:
                    if not ipaddress.ip_address(value).is_loopback:
                        found.add(value)
                    continue
                except ValueError:
                    pass
                if (own and key in OWN_NAMES.get(cname, ()) and len(inside) == 1) or key == "userDisplayName" \
                        or inside[-2:] == ("deviceDetail", "displayName"):
                    names.add(value)
    # A text scan cannot tell a one-word name ("Finance") from ordinary words: those are checked
    # structurally (every name field holds a placeholder) by the next test.
    found |= {n for n in names if len(n) >= 4 and (" " in n or re.search(r"[\d-]", n))}
    found.discard("00000003-0000-0000-c000-000000000000")  # Microsoft Graph's appId, public
    return found


def test_no_original_identifier_token_or_secret_survives_anywhere(captured):
    files = [p for p in captured["out"].rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"capture.json", "scrub-report.json", "discovery.yaml"}
    text = "\n".join(p.read_text(encoding="utf-8") for p in files)
    needles = _needles(captured["tenant"]) | captured["tokens"] | captured["downloads"]
    assert len(needles) > 500
    low = text.lower()
    leaked = sorted(n for n in needles if n.lower() in low
                    and re.search(rf"(?<![A-Za-z0-9]){re.escape(n)}(?![A-Za-z0-9])", text, re.IGNORECASE))
    assert not leaked, f"{len(leaked)} originals survive, e.g. {leaked[:5]}"
    assert not re.search(r"(?i)bearer\s+[\w.~+/=-]{8,}", text)  # no Authorization value anywhere
    assert "client_secret=" not in text and "client_assertion=" not in text and "eyJ" not in text


def _bodies(folder: Path):
    for path in sorted(folder.rglob("*.yaml")):
        for i in yaml.safe_load(path.read_text())["interactions"]:
            yield path.name, i


def test_every_name_field_holds_a_placeholder_and_every_token_is_the_fixed_fake(captured):
    bad = []
    for name, i in _bodies(captured["out"]):
        body = i["response"]["body"]["string"]
        if i["request"]["uri"].endswith("/oauth2/v2.0/token"):
            assert json.loads(body)["access_token"] == "REDACTED"
            assert set(i["request"]["body"].split("&")) >= {"grant_type=client_credentials"}
            assert "secret" not in i["request"]["body"]
            continue
        assert not {k.lower() for k in i["request"]["headers"]} & {"authorization", "cookie"}
        if not body.lstrip().startswith("{"):
            continue
        for key, value, inside in _strings(json.loads(body)):
            if key in NAME_FIELDS and value and not set(inside) & PUBLIC_CONTAINERS and not PLACEHOLDER.match(value):
                bad.append((name, ".".join(inside), value[:3] + "..."))
    assert not bad, bad[:10]


def test_every_cassette_passes_the_repository_secret_scan(captured):
    import test_cassettes_scrub as repository_scan  # the scan every cassettes/**/*.yaml gets

    paths = sorted(captured["out"].rglob("*.yaml"))
    assert len(paths) == 1 + len(captured["result"].sources)
    for path in paths:
        repository_scan.test_cassette_holds_no_secret(path)


def test_the_scrub_report_counts_per_field_and_names_no_original(captured):
    report = json.loads((captured["out"] / "scrub-report.json").read_text())
    sign_ins = report["cassettes"]["sources/audit_logs.sign_ins.yaml"]
    assert sign_ins["replaced"]["response.body.value[].userPrincipalName"]["email"] > 0
    assert sign_ins["replaced"]["response.body.value[].ipAddress"]["ipv4"] > 0
    assert report["cassettes"]["discovery.yaml"]["removed"]["request.headers.Authorization"] > 0
    assert report["totals"]["guid"] > 0 and report["totals"]["name"] > 0
    text = json.dumps(report)
    assert not [n for n in _needles(captured["tenant"]) if n in text]


# --- the scrubber on hand-written input ---------------------------------------------------------------
ORIGINS = Origins("https://127.0.0.1:9", "https://127.0.0.1:9", "https://graph.microsoft.com",
                  "https://login.microsoftonline.com", frozenset({"reports.office.com"}))


def test_placeholders_are_consistent_shaped_and_keyed_per_capture():
    a, b = Scrubber(ORIGINS, key=b"k" * 32), Scrubber(ORIGINS, key=b"j" * 32)
    guid = "1ba6cc61-eaf9-4919-a69b-79717f9b76ef"
    assert a.patterns(guid, "p") == a.patterns(guid.upper(), "p") != guid
    assert GUID.fullmatch(a.patterns(guid, "p")) and a.patterns(guid, "p") != b.patterns(guid, "p")
    assert a.patterns("Megan.Wei@Contoso.com", "p") == a.patterns("megan.wei@contoso.com", "p")
    assert ipaddress.ip_address(a.patterns("20.190.151.157", "p")) in ipaddress.ip_network("198.18.0.0/15")
    assert ipaddress.ip_address(a.patterns("2603:1026:c06::1", "p")) in ipaddress.ip_network("2001:db8::/32")
    assert a.patterns("00000003-0000-0000-c000-000000000000", "p") == "00000003-0000-0000-c000-000000000000"
    assert a.patterns("12:30:22 and 10.0.19045.2965 and S-1-5-18", "p") == "12:30:22 and 10.0.19045.2965 and S-1-5-18"


def test_links_land_on_the_cloud_host_with_opaque_tokens_and_the_download_url_hashed():
    s = Scrubber(ORIGINS, key=b"k" * 32)
    link = "https://127.0.0.1:9/v1.0/users/delta?$skiptoken=abc%2Bdef"
    assert s.url(link, "p") == s.url("https://127.0.0.1:9/v1.0/users/delta?%24skiptoken=abc%2Bdef", "p")
    assert re.fullmatch(r"https://graph\.microsoft\.com/v1\.0/users/delta\?\$skiptoken=captured-[0-9a-f]{16}", s.url(link, "p"))
    assert s.url("https://127.0.0.1:9/t/oauth2/v2.0/token", "p") == "https://login.microsoftonline.com/t/oauth2/v2.0/token"
    download = s.url("https://reports.office.com/data/download/JDFKdf2_eJXKS034dbc7e0t__XDe", "p")
    assert download.startswith("https://reports.office.com/_captured/") and "JDFK" not in download


def test_json_rules_keep_what_discovery_and_delta_read_and_replace_the_rest():
    s = Scrubber(ORIGINS, key=b"k" * 32)
    out = s.json({
        "value": [{"id": "x", "@removed": {"reason": "changed"}, "displayName": "Adele Vance",
                   "servicePlans": [{"servicePlanName": "AAD_PREMIUM", "provisioningStatus": "Success"}],
                   "additionalInfo": "[{\"Key\":\"clientIp\",\"Value\":\"20.1.2.3\"}]", "description": "Ask Adele",
                   "location": {"geoCoordinates": {"latitude": 47.6}}}],
        "@odata.nextLink": "https://127.0.0.1:9/v1.0/x?$skiptoken=t"})
    item = out["value"][0]
    assert item["@removed"] == {"reason": "changed"} and item["servicePlans"][0]["servicePlanName"] == "AAD_PREMIUM"
    assert PLACEHOLDER.match(item["displayName"]) and PLACEHOLDER.match(item["description"])
    assert json.loads(item["additionalInfo"])[0]["Value"].startswith("198.1")
    assert item["location"]["geoCoordinates"]["latitude"] == 0.0
    assert out["@odata.nextLink"].startswith("https://graph.microsoft.com/v1.0/x?$skiptoken=captured-")


def test_a_usage_report_csv_keeps_its_columns_and_loses_its_people():
    s = Scrubber(ORIGINS, key=b"k" * 32)
    csv_in = "\ufeffReport Refresh Date,User Principal Name,Display Name,Is Deleted\r\n2026-11-25,adele@contoso.com,Adele Vance,False\r\n"
    lines = s.csv(csv_in, "p").splitlines()
    assert lines[0] == "\ufeffReport Refresh Date,User Principal Name,Display Name,Is Deleted"
    date, upn, name, deleted = lines[1].split(",")
    assert (date, deleted) == ("2026-11-25", "False") and upn.endswith("@example.invalid") and PLACEHOLDER.match(name)


# --- the command --------------------------------------------------------------------------------------
def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "td_graph_plugin.cli.main", "capture", *args],
                          capture_output=True, env=env, timeout=120)


def test_the_command_captures_and_refuses_bad_usage(tmp_path):
    with GraphSimulator(workdir=str(tmp_path / "sim")) as sim:
        tenant = sim.add_tenant(profile="all")
        config = str(_write_config(sim, tenant, tmp_path))
        env = dict(os.environ, TD_GRAPH_DEMO_SECRET=tenant.client_secret)
        ok = _cli("-c", config, "--tenant", "demo", "--out", str(tmp_path / "a"), "--sources", "security", "--pages", "1", env=env)
        assert ok.returncode == 0, ok.stderr.decode()[-2000:]
        assert b"security.incidents: ok" in ok.stdout
        assert sorted(p.name for p in (tmp_path / "a" / "sources").iterdir()) == [
            "security.alerts_v2.yaml", "security.incidents.yaml",
            "security.secure_score_control_profiles.yaml", "security.secure_scores.yaml"]
        again = _cli("-c", config, "--tenant", "demo", "--out", str(tmp_path / "a"), env=env)
        assert again.returncode == 2 and b"--out" in again.stderr
        assert _cli("-c", config, "--tenant", "nobody", "--out", str(tmp_path / "b"), env=env).returncode == 2
        assert _cli("-c", config, "--tenant", "demo", "--out", str(tmp_path / "b"), "--pages", "0", env=env).returncode == 2
        assert _cli("-c", config, "--tenant", "demo", "--out", str(tmp_path / "b"), "--sources", "nope", env=env).returncode == 2
        wrong = dict(env, TD_GRAPH_DEMO_SECRET="not-the-secret-" + "x" * 20)
        denied = _cli("-c", config, "--tenant", "demo", "--out", str(tmp_path / "c"), env=wrong)
        assert denied.returncode == 1 and b"token" in denied.stdout + denied.stderr
        written = "".join(p.read_text() for p in (tmp_path / "c").rglob("*") if p.is_file())
        assert "not-the-secret" not in written and tenant.tenant_id not in written
