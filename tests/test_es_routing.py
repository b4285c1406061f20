"""Per-source Elasticsearch routing: no two kinds of Graph object ever share an index.

td-graph's 26 sources put different Graph objects under ``data``.  Elasticsearch maps a field
from the first document that has it (dynamic mapping) and rejects a later document whose value
cannot be indexed as that type: ``data.status`` is an object in sign-ins
(``{"errorCode": 0, ...}``) and a string in alerts_v2 (``"new"``), so in one shared index
whichever kind arrives second is rejected (and Filebeat drops a rejected event, after td-graph
has checkpointed it).  The shipper examples (conf/filebeat, conf/logstash, conf/vector) write
each record to ``td_graph.<source>`` and conf/elasticsearch/td-graph-template.json maps every
``td_graph.*`` index.

What is proven here, over every record td-graph emits from the recorded cassettes
(``cassettes/sources/*.yaml``, Microsoft's documented responses replayed through the real
collector stack) and from ``td-graph run --once`` against the simulator's all-licensed tenant:

* each shipper's index expression, evaluated the way the shipper documents it, names
  ``td_graph.<source>``, a valid Elasticsearch index name matched by the template's pattern;
* within each index, no field path is seen with two types one of which Elasticsearch's
  dynamic mapping would refuse after the other (object vs scalar, number vs non-numeric
  string, boolean vs number...), in either arrival order;
* the template's fixed envelope fields accept every record's values (keyword fields get
  strings, ``event_time``/``collected_at`` parse with ``strict_date_optional_time``);
* the field count and depth of each index stay under the template's limits;
* and the check can fail: the same derivation over one shared index finds ``data.status``.

Elasticsearch semantics modelled (and cited):
* dynamic field mapping, https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-field-mapping.html
  (JSON null and [] add no field; true/false -> boolean; integer -> long; floating point ->
  float; object -> object; array -> the type of its first non-null value; string -> text with a
  ``.keyword`` sub-field when date_detection/numeric_detection are off, as in the template);
* dotted field names are expanded into objects (``@odata.type`` -> ``@odata`` / ``type``),
  https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic.html;
* ``coerce`` (default true) lets a numeric field take a numeric string,
  https://www.elastic.co/guide/en/elasticsearch/reference/current/coerce.html; a boolean field
  takes true/false and "true"/"false"/"",
  https://www.elastic.co/guide/en/elasticsearch/reference/current/boolean.html; keyword and
  text take any scalar (its string form), never an object;
* ``strict_date_optional_time``: elastic/elasticsearch
  server/src/main/java/org/elasticsearch/common/time/DateFormatters.java
  (STRICT_DATE_OPTIONAL_TIME_FORMATTER: yyyy[-MM[-dd]][T HH[:mm[:ss[.f{1,9}][,f{1,9}]]]
  [zone id or offset | +HHmm | Z]], ResolverStyle.STRICT);
* index names: lowercase, not starting with -, _ or +, none of \\ / * ? " < > | space , # :,
  not . or .., at most 255 bytes,
  https://www.elastic.co/guide/en/elasticsearch/reference/current/indices-create-index.html.

The conflict check does not count on ``index.mapping.ignore_malformed`` (set in the template
as a safety net for future Graph changes): every type clash is reported as a conflict.
"""

from __future__ import annotations

import calendar
import collections
import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
from typing import Any, Iterator

import orjson
import pytest
import yaml

from td_graph_plugin.cli.demo import demo_config
from td_graph_plugin.simulator import GraphSimulator
from td_graph_plugin.timeutil import parse_time
from tests.vcr_support import catalogue, run_source

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = os.path.join(ROOT, "conf")
TEMPLATE_PATH = os.path.join(CONF, "elasticsearch", "td-graph-template.json")
ENVELOPE_KEYS = ("tenant", "tenant_id", "source", "id", "event_time", "collected_at", "removed", "data")
# Delta sources whose cassette also holds the documented deltaLink round (as test_cassettes_sources).
RUNS = {"directory.users": 2, "directory.groups": 2}

pytestmark = pytest.mark.timeout(180)


def _read(*parts: str) -> str:
    with open(os.path.join(CONF, *parts), encoding="utf-8") as fh:
        return fh.read()


def template() -> dict:
    with open(TEMPLATE_PATH, encoding="utf-8") as fh:
        return json.load(fh)


# --- the records ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cassette_records(tmp_path_factory) -> list[dict]:
    """Every catalogue source replayed from its cassette through the real collector stack."""
    out: list[dict] = []
    names = [spec.name for spec in catalogue() if spec.reads_graph]
    for name in names:
        run = run_source(name, f"sources/{name}.yaml", tmp_path_factory.mktemp(name.replace(".", "_")),
                         runs=RUNS.get(name, 1))
        assert run.records, f"the cassette of {name} yields no record"
        out.extend(run.records)
    assert {r["source"] for r in out} == set(names)
    return out


@pytest.fixture(scope="module")
def simulator_records(tmp_path_factory) -> list[dict]:
    """``td-graph run --once`` (the real process) against the simulator's all-licensed tenant."""
    tmp = tmp_path_factory.mktemp("sim_all")
    with GraphSimulator(workdir=str(tmp / "sim")) as sim:
        tenant = sim.add_tenant(profile="all")
        out = tmp / "records.ndjson"
        cfg = demo_config(sim, tenant, str(tmp / "state.db"), output={"type": "file", "path": str(out)})
        # The simulator does not enforce Graph's budgets here; pace loosely (as test_simulator_e2e).
        cfg.setdefault("throttling", {cls: {"requests": 10000, "per": "10s"}
                                      for cls in ("default", "security", "identity_protection", "identity_reports",
                                                  "directory", "intune")})
        path = tmp / "td-graph.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        env = dict(os.environ, TD_GRAPH_DEMO_SECRET=tenant.client_secret)
        proc = subprocess.run([sys.executable, "-m", "td_graph_plugin.cli.main", "run", "-c", str(path), "--once"],
                              capture_output=True, env=env, timeout=150)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
        records = [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()]
    names = {spec.name for spec in catalogue() if spec.reads_graph}
    assert names <= {r["source"] for r in records}, names - {r["source"] for r in records}
    return records


# Microsoft's riskyUser example (riskyuser-list.md, kept verbatim in its cassette) is a schema
# placeholder, not data: each property holds its type's name ("isDeleted": "Boolean",
# "riskLastUpdatedDateTime": "String (timestamp)").  Graph never sends it; were it indexed
# after a real risky user, "Boolean" could not go into the boolean isDeleted (the template's
# ignore_malformed would keep the document with that value unindexed).  It is left out of the
# type derivation, and the test below proves that it is exactly such a placeholder.
PLACEHOLDERS = {("identity_protection.risky_users", "d1d4a5d4-a5d4-d1d4-d4a5-d4d1d4a5d4d1")}
_TYPE_NAMES = re.compile(r"^(String|Boolean|Int32|Int64|Double|DateTimeOffset)( \(\w+\))?$")


def is_placeholder(record: dict) -> bool:
    return (record["source"], record["id"]) in PLACEHOLDERS


@pytest.fixture(scope="module")
def all_records(cassette_records, simulator_records) -> list[dict]:
    return [r for r in cassette_records + simulator_records if not is_placeholder(r)]


def test_left_out_records_are_documentation_placeholders(cassette_records):
    left_out = [r for r in cassette_records if is_placeholder(r)]
    assert {(r["source"], r["id"]) for r in left_out} == PLACEHOLDERS
    for r in left_out:
        values = {k: v for k, v in r["data"].items() if k not in ("id", "@odata.type")}
        assert values and all(isinstance(v, str) and _TYPE_NAMES.match(v) for v in values.values()), values


# --- the documents each shipper indexes ---------------------------------------------------------------
def vector_document(record: dict) -> dict:
    """Vector's exec source + json codec: the envelope's fields at the root, plus the
    ``timestamp`` the remap transform sets (conf/vector/td-graph.toml)."""
    return {**record, "timestamp": record.get("event_time") or record["collected_at"]}


def nested_document(record: dict) -> dict:
    """Filebeat (ndjson ``target: td_graph``) and Logstash (json codec ``target => "[td_graph]"``):
    the envelope under ``td_graph``, plus ``@timestamp``."""
    return {"td_graph": record, "@timestamp": record.get("event_time") or record["collected_at"]}


# --- index expressions, evaluated as each shipper documents them ----------------------------------------
def _uncommented_block(text: str, first_line: str) -> str:
    """The commented-out example that starts at ``# <first_line>``, without its ``# ``."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip() == f"# {first_line}")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:] if line.startswith("# ") else line[1:])
    return "\n".join(block)


def _get_dotted(doc: dict, dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        cur = cur[part]
    return cur


def filebeat_output() -> dict:
    """output.elasticsearch and setup.* of conf/filebeat/td-graph.yml (the commented example)."""
    return yaml.safe_load(_uncommented_block(_read("filebeat", "td-graph.yml"), "output.elasticsearch:"))


def filebeat_index(doc: dict) -> str:
    """Beats format strings: ``%{[field.path]}`` reads an event field (libbeat
    outputs/elasticsearch docs, ``index``: "You can set the index dynamically by using a
    format string to access any event field", e.g. ``%{[fields.log_type]}``)."""
    fmt = filebeat_output()["output.elasticsearch"]["index"]
    return re.sub(r"%\{\[([^\]]+)\]\}", lambda m: str(_get_dotted(doc, m.group(1))), fmt)


def logstash_output() -> str:
    return _uncommented_block(_read("logstash", "td-graph.conf"), "output {")


def logstash_index(doc: dict) -> str:
    """Logstash sprintf: ``%{[a][b]}`` is the field [a][b] (logstash-output-elasticsearch docs,
    ``index``: "This can be dynamic using the %{foo} syntax")."""
    m = re.search(r'index\s*=>\s*"([^"]+)"', logstash_output())
    assert m, "no index => in the Logstash elasticsearch output"

    def field(ref: str) -> str:
        parts = re.findall(r"\[([^\]]+)\]", ref)
        cur: Any = doc
        for p in parts:
            cur = cur[p]
        return str(cur)

    return re.sub(r"%\{((?:\[[^\]]+\])+)\}", lambda mm: field(mm.group(1)), m.group(1))


def vector_sink() -> dict:
    return tomllib.loads(_uncommented_block(_read("vector", "td-graph.toml"), "[sinks.siem]"))["sinks"]["siem"]


def vector_index(doc: dict) -> str:
    """Vector template syntax: ``{{ field }}`` is the event's field
    (https://vector.dev/docs/reference/configuration/template-syntax/)."""
    fmt = vector_sink()["bulk"]["index"]
    return re.sub(r"\{\{\s*([^}\s]+)\s*\}\}", lambda m: str(_get_dotted(doc, m.group(1))), fmt)


_FORBIDDEN = set('\\/*?"<>| ,#:')


def valid_index_name(name: str) -> bool:
    return (name == name.lower() and name not in (".", "..") and not name.startswith(("-", "_", "+"))
            and not (set(name) & _FORBIDDEN) and len(name.encode("utf-8")) <= 255)


def test_each_shipper_routes_every_record_to_its_source_index(all_records):
    tpl = template()
    patterns = tpl["index_patterns"]
    for r in all_records:
        expected = f"td_graph.{r['source']}"
        nested, flat = nested_document(r), vector_document(r)
        got = {"filebeat": filebeat_index(nested), "logstash": logstash_index(nested), "vector": vector_index(flat)}
        assert set(got.values()) == {expected}, (r["source"], got)
        assert valid_index_name(expected), expected
        assert any(fnmatch.fnmatchcase(expected, p) for p in patterns), (expected, patterns)


def test_shipper_outputs_do_not_override_the_index():
    """Settings under which each shipper would ignore ``index`` are off, as their docs say."""
    fb = filebeat_output()
    # libbeat docs: "The index setting is ignored when index lifecycle management is enabled";
    # "If you change this setting, you also need to configure setup.template.name and
    # setup.template.pattern" (Filebeat's own template stays off: ours is loaded instead).
    assert fb["setup.ilm.enabled"] is False
    assert fb["setup.template.enabled"] is False
    assert fb["setup.template.name"] and fnmatch.fnmatchcase("td_graph.audit_logs.sign_ins", fb["setup.template.pattern"])
    ls = logstash_output()
    # logstash-output-elasticsearch docs: ILM (ilm_enabled defaults to auto) writes to the
    # rollover alias, and "If both index and ilm_rollover_alias are specified,
    # ilm_rollover_alias takes precedence"; data_stream defaults to auto in 8.x.
    assert re.search(r'ilm_enabled\s*=>\s*"?false"?', ls)
    assert re.search(r'data_stream\s*=>\s*"?false"?', ls)
    assert re.search(r"manage_template\s*=>\s*false", ls)
    sink = vector_sink()
    assert sink["type"] == "elasticsearch" and sink.get("mode", "bulk") == "bulk"
    assert sink["inputs"] == ["td_graph_timestamp"]  # after the remap that sets the timestamp
    assert "index" not in sink  # removed in Vector 0.19: bulk.index


# --- Elasticsearch's dynamic mapping, modelled ----------------------------------------------------------
def _value_class(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "long"
    if isinstance(v, float):
        return "float"
    if isinstance(v, dict):
        return "object"
    assert isinstance(v, str), type(v)
    try:
        float(v)
        return "string:numeric"
    except ValueError:
        pass
    if v in ("true", "false", ""):
        return "string:boolean"
    return "string"


def _mapped_type(value_class: str) -> str:
    """What dynamic mapping makes of the first value (detection off: strings are text)."""
    return "text" if value_class.startswith("string") else value_class


def accepts(mapped: str, value_class: str) -> bool:
    if mapped == "object":
        return value_class == "object"
    if value_class == "object":
        return False
    if mapped in ("text", "keyword"):
        return True
    if mapped in ("long", "float"):
        return value_class in ("long", "float", "string:numeric")  # coerce
    if mapped == "boolean":
        return value_class in ("boolean", "string:boolean")
    raise AssertionError(mapped)


def field_values(doc: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) for every value Elasticsearch would index, objects included; dotted keys
    expand into objects, arrays index each element under the same path, null adds nothing."""
    if isinstance(doc, list):
        for item in doc:
            yield from field_values(item, prefix)
        return
    if doc is None:
        return
    if prefix:
        yield prefix, doc
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from field_values(value, prefix + tuple(key.split(".")))


def observed_types(docs: list[dict]) -> dict[tuple[str, ...], set[str]]:
    seen: dict[tuple[str, ...], set[str]] = collections.defaultdict(set)
    for doc in docs:
        for path, value in field_values(doc):
            seen[path].add(_value_class(value))
    return seen


def fixed_mappings(properties: dict, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], dict]:
    out = {}
    for name, spec in properties.items():
        path = prefix + tuple(name.split("."))
        out[path] = spec
        if "properties" in spec:
            out.update(fixed_mappings(spec["properties"], path))
    return out


def conflicts(docs: list[dict], tpl: dict) -> dict[str, set[str]]:
    """Field paths whose observed types cannot all be indexed, whichever document comes first.
    A path the template maps is held to the template's type instead."""
    fixed = fixed_mappings(tpl["template"]["mappings"]["properties"])
    out: dict[str, set[str]] = {}
    for path, classes in observed_types(docs).items():
        spec = fixed.get(path)
        if spec is not None:
            mapped_types = {"object" if spec.get("type", "object") == "object" or "properties" in spec else spec["type"]}
            if mapped_types == {"date"}:
                continue  # checked value by value in test_envelope_fields_fit_the_template
        else:
            mapped_types = {_mapped_type(c) for c in classes}
        bad = {c for c in classes for m in mapped_types if not accepts(m, c)}
        if bad:
            out[".".join(path)] = classes
    return out


def by_index(records: list[dict], document) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = collections.defaultdict(list)
    for r in records:
        out[f"td_graph.{r['source']}"].append(document(r))
    return out


@pytest.mark.parametrize("layout", ["vector", "filebeat-logstash"])
def test_no_field_type_conflict_within_any_source_index(all_records, layout):
    document = vector_document if layout == "vector" else nested_document
    tpl = template()
    indices = by_index(all_records, document)
    assert len(indices) == len({spec.name for spec in catalogue() if spec.reads_graph})
    found = {name: c for name, docs in indices.items() if (c := conflicts(docs, tpl))}
    assert not found, found


def test_a_single_shared_index_has_the_known_status_conflict(all_records):
    """The check can fail: all sources in one index collide on data.status (object in
    sign-ins, string in alerts) -- the reason for per-source routing."""
    tpl = template()
    for document, status in ((vector_document, "data.status"), (nested_document, "td_graph.data.status")):
        found = conflicts([document(r) for r in all_records], tpl)
        assert status in found, sorted(found)[:20]
        assert {"object", "string"} <= found[status]


# --- the template's own fields ----------------------------------------------------------------------------
_STRICT_DATE_OPTIONAL_TIME = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2}))?)?"
    r"(?:T(?:(?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.\d{1,9})?(?:,\d{1,9})?)?)?)?"
    r"(?:Z|[+-]\d{2}:\d{2}(?::\d{2})?|[+-]\d{4}|[+-]\d{2})?)?$"
)


def strict_date_optional_time(value: str) -> bool:
    """Elasticsearch's strict_date_optional_time parser (DateFormatters.java, ResolverStyle.STRICT:
    the fields must form a real date and time)."""
    m = _STRICT_DATE_OPTIONAL_TIME.match(value)
    if not m:
        return False
    y, mo, d = int(m["y"]), int(m["mo"] or 1), int(m["d"] or 1)
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1]):
        return False
    return int(m["h"] or 0) <= 23 and int(m["mi"] or 0) <= 59 and int(m["s"] or 0) <= 59


def test_date_format_model_matches_elasticsearch_examples():
    for ok in ("2026-11-26", "2026-11-26T10:00:00Z", "2026-11-26T10:00:00.123Z", "2026-11-26T10:00:00.123456789Z",
               "2026-11-26T10:00:00.1234567+01:00", "2026-11-26T10:00:00,5Z", "2026-11-26T10Z"):
        assert strict_date_optional_time(ok), ok
    for bad in ("2026-13-01T00:00:00Z", "2026-02-30", "26-11-26", "2026-11-26 10:00:00Z",
                "2026-11-26T10:00:00.1234567890Z", "2026-11-26T25:00:00Z"):
        assert not strict_date_optional_time(bad), bad


def test_envelope_fields_fit_the_template(all_records):
    tpl = template()
    props = tpl["template"]["mappings"]["properties"]
    nested = props["td_graph"]["properties"]
    for mapping in (props, nested):
        for key in ("tenant", "tenant_id", "source", "id", "removed"):
            assert mapping[key]["type"] == "keyword", key
        for key in ("event_time", "collected_at"):
            assert mapping[key]["type"] == "date" and mapping[key]["format"] == "strict_date_optional_time", key
        assert mapping["data"]["type"] == "object" and mapping["data"]["dynamic"] is True
    assert set(nested) == set(ENVELOPE_KEYS)
    assert set(props) == set(ENVELOPE_KEYS) | {"@timestamp", "timestamp", "td_graph"}
    for timestamp in ("@timestamp", "timestamp"):
        assert props[timestamp]["type"] == "date"
    mappings = tpl["template"]["mappings"]
    assert mappings["date_detection"] is False and mappings["numeric_detection"] is False
    for r in all_records:
        assert set(r) <= set(ENVELOPE_KEYS), set(r) - set(ENVELOPE_KEYS)
        for key in ("tenant", "tenant_id", "source", "id"):
            assert isinstance(r[key], str) and r[key], (key, r[key])
        assert r.get("removed") is None or isinstance(r["removed"], str)
        assert isinstance(r["data"], dict)
        assert strict_date_optional_time(r["collected_at"]), r["collected_at"]
        if r["event_time"] is not None:
            assert strict_date_optional_time(r["event_time"]), r["event_time"]
            # ... and it is the instant the record describes.
            assert parse_time(r["event_time"]) is not None


def _field_count(docs: list[dict]) -> int:
    """Mapped fields as index.mapping.total_fields.limit counts them: objects, leaves, and the
    .keyword multi-field dynamic mapping adds to every text field."""
    n = 0
    for classes in observed_types(docs).values():
        n += 1 + (1 if any(c.startswith("string") for c in classes) else 0)
    return n


def test_each_index_stays_under_the_field_and_depth_limits(all_records):
    settings = template()["template"]["settings"]
    limit = settings["index.mapping.total_fields.limit"]
    depth_limit = settings.get("index.mapping.depth.limit", 20)  # Elasticsearch's default
    for name, docs in by_index(all_records, nested_document).items():
        paths = observed_types(docs)
        assert _field_count(docs) + 20 < limit, (name, _field_count(docs))
        assert max(len(p) for p in paths) < depth_limit, name
