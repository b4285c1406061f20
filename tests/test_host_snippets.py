"""The shipper snippets in conf/: parsed, checked against the shippers' documented behaviour,
and their commands run for real.

Vector, Fluent Bit, Logstash and Filebeat are not Debian packages, so they are not started
here (syslog-ng and rsyslog are: tests/test_host_syslog_ng.py, tests/test_host_rsyslog.py).
Instead each snippet is parsed (TOML / YAML / the classic Fluent Bit format) and the part of the
shipper that decides whether records arrive is modelled from its documentation and source, cited
at each test, then run against td-graph's real output:

* Fluent Bit: exec with Oneshot must be Threaded, because in_exec reads until the command
  exits and td-graph never does; the parser's Time_Format, run through a model of Fluent Bit's
  strptime/%L code (and Python's strptime), yields each record's event_time.
* Logstash: pipe hands the codec one chomped line at a time: the json codec decodes every record,
  json_lines (the old choice) would emit none.
* Vector: the remap's chrono format parses every event_time / collected_at into ``.timestamp``.
* Filebeat: the timestamp processors' Go layouts parse every value into ``@timestamp``.

The command every exec-style snippet runs is executed exactly as written (paths swapped for the
test's, plus ``--once``) against the Graph simulator, proving it yields the contract's NDJSON on
stdout with lines that fit the shipper's buffer.  Per-source Elasticsearch routing is in
tests/test_es_routing.py.  The systemd unit is checked with ``systemd-analyze verify`` (and
``security --offline``).
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
from datetime import datetime, timedelta, timezone

import orjson
import pytest
import yaml

import host_support as hs
from td_graph_plugin.simulator import GraphSimulator
from td_graph_plugin.timeutil import parse_time

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
    # Each line fits the shipper's line buffer: in_exec's fgets() splits a longer line into
    # pieces that no longer parse; Vector's newline framing drops a line over max_length.
    longest = max(len(line) for line in proc.stdout.splitlines(keepends=True))
    if host == "fluent-bit":
        assert longest < fluent_bit_buf_size(), longest
    if host == "vector":
        assert longest <= tomllib.loads(_read("vector", "td-graph.toml"))["sources"]["td_graph"]["framing"]["newline_delimited"]["max_length"]
    by_source = hs.ids_by_source(records)
    for source, ids in hs.simulator_ids(tenant).items():
        assert Counter(by_source[source]) == Counter(ids), source
    assert b'"tenant_id"' not in proc.stderr  # no record leaked into the log stream


# --- sample timestamps ------------------------------------------------------------------------------
# Graph's own forms (up to 7 fraction digits) and td-graph's canonical event_time (UTC, 0 to 6).
GRAPH_SAMPLES = ["2026-11-26T10:00:00Z", "2026-11-26T10:00:00.1Z", "2026-11-26T10:00:00.123Z",
                 "2026-11-26T10:00:00.123456Z", "2026-11-26T10:00:00.1234567Z", "2026-02-28T23:59:59.9999999Z"]


@pytest.fixture(scope="module")
def documented_records(tmp_path_factory) -> list[dict]:
    """The records td-graph emits for Microsoft's documented example responses (every cassette
    replayed through the real collector stack, as tests/test_cassettes_sources.py does)."""
    from tests.vcr_support import catalogue, run_source

    out: list[dict] = []
    for spec in catalogue():
        if spec.reads_graph:
            run = run_source(spec.name, f"sources/{spec.name}.yaml", tmp_path_factory.mktemp(spec.name.replace(".", "_")),
                             runs=2 if spec.name in ("directory.users", "directory.groups") else 1)
            out.extend(run.records)
    # The contract: event_time is never null (objects without a timestamp carry the observed time).
    assert out and all(isinstance(r["event_time"], str) and r["event_time"] for r in out)
    return out


def _timestamp_samples(records: list[dict]) -> list[str]:
    values = {r["event_time"] for r in records if r["event_time"]} | {r["collected_at"] for r in records}
    return sorted(values | set(GRAPH_SAMPLES))


def _expected(value: str) -> datetime:
    dt = parse_time(value)
    assert dt is not None, value
    return dt


def _frac_ns(digits: str | None) -> int:
    return int((digits or "").ljust(9, "0")[:9] or 0)


def _same_instant(got: tuple[datetime, int], value: str) -> None:
    """``got`` = (whole seconds, nanoseconds); td-graph's parse_time keeps microseconds."""
    whole, ns = got
    want = _expected(value)
    assert whole == want.replace(microsecond=0), (value, whole)
    assert ns // 1000 == want.microsecond, (value, ns)


# --- Vector ---------------------------------------------------------------------------------------------
def test_vector_exec_snippet():
    src = tomllib.loads(_read("vector", "td-graph.toml"))["sources"]["td_graph"]
    assert src["type"] == "exec" and src["mode"] == "streaming"
    assert src["include_stderr"] is False  # logs are not records
    assert src["decoding"]["codec"] == "json"
    assert src["framing"]["method"] == "newline_delimited"
    assert src["framing"]["newline_delimited"]["max_length"] >= 1 << 20
    assert src["streaming"]["respawn_on_exit"] is True and src["streaming"]["respawn_interval_secs"] > 0


def chrono_format_regex(fmt: str) -> re.Pattern:
    """A chrono strftime format (what VRL's parse_timestamp takes) as a regular expression, for
    the specifiers used here (chronotope/chrono src/format/strftime.rs):
    ``%+`` = ``%Y-%m-%dT%H:%M:%S%.f%:z``, also "supports having a Z or UTC in place of %:z", T/Z
    case-insensitive, and (src/format/parse.rs, RFC 3339) any number of fraction digits, the
    first 9 kept; ``%.f`` "consumes the leading dot" and reads nothing when the next character
    is not a dot."""
    fmt = fmt.replace("%+", "%Y-%m-%dT%H:%M:%S%.f%:z")
    tokens = {"%Y": r"(?P<Y>\d{4})", "%m": r"(?P<m>\d{2})", "%d": r"(?P<d>\d{2})", "%H": r"(?P<H>\d{2})",
              "%M": r"(?P<M>\d{2})", "%S": r"(?P<S>\d{2})", "%.f": r"(?:\.(?P<f>\d+))?",
              "%:z": r"(?P<z>[Zz]|UTC|[+-]\d{2}:\d{2})"}
    out, i = "", 0
    while i < len(fmt):
        for tok, rx in tokens.items():
            if fmt.startswith(tok, i):
                out, i = out + rx, i + len(tok)
                break
        else:
            assert fmt[i] != "%", f"chrono specifier not modelled: {fmt[i:i + 3]!r}"
            out += "[Tt]" if fmt[i] == "T" else re.escape(fmt[i])
            i += 1
    return re.compile(out + r"\Z")


def chrono_parse(value: str, fmt: str) -> tuple[datetime, int] | None:
    m = chrono_format_regex(fmt).match(value)
    if not m:
        return None
    dt = datetime(int(m["Y"]), int(m["m"]), int(m["d"]), int(m["H"]), int(m["M"]), int(m["S"]), tzinfo=timezone.utc)
    z = m["z"]
    if z not in ("Z", "z", "UTC"):
        sign = 1 if z[0] == "+" else -1
        dt -= sign * timedelta(hours=int(z[1:3]), minutes=int(z[4:6]))
    return dt, _frac_ns(m["f"])


def test_vector_remap_takes_the_timestamp_from_event_time(documented_records):
    """The exec source stamps each event with the time Vector read it; the remap transform
    replaces ``.timestamp`` with event_time (collected_at when event_time is null).

    VRL (https://vector.dev/docs/reference/vrl/functions/#parse_timestamp): parse_timestamp
    parses with a chrono strftime format; a format with a zone specifier (``%+``, ``%z``...) is
    parsed with DateTime::parse_from_str, so the zone comes from the value and Vector's
    ``timezone`` setting plays no part (vectordotdev/vrl src/compiler/conversion/mod.rs,
    format_has_zone).  ``string(x)`` fails on null and ``??`` then takes the next value."""
    doc = tomllib.loads(_read("vector", "td-graph.toml"))
    remap = doc["transforms"]["td_graph_timestamp"]
    assert remap["type"] == "remap" and remap["inputs"] == ["td_graph"]
    vrl = "\n".join(l for l in remap["source"].splitlines() if not l.lstrip().startswith("#"))
    m = re.search(r'(\w+), (\w+) = parse_timestamp\(string\(\.event_time\) \?\? string\(\.collected_at\) \?\? "", '
                  r'format: "([^"]+)"\)\s*if \2 == null \{\s*\.timestamp = \1\s*\}', vrl)
    assert m, vrl
    fmt = m.group(3)
    for value in _timestamp_samples(documented_records):
        got = chrono_parse(value, fmt)
        assert got is not None, (value, fmt)
        _same_instant(got, value)
    # A value without a zone would not parse (and would otherwise take Vector's local zone).
    assert chrono_parse("2026-11-26T10:00:00", fmt) is None
    for r in documented_records:
        chosen = r["event_time"] if isinstance(r["event_time"], str) else r["collected_at"]
        _same_instant(chrono_parse(chosen, fmt), r["event_time"] or r["collected_at"])


# --- Fluent Bit -----------------------------------------------------------------------------------------
def _flb_bool(value: str) -> bool:
    """flb_utils_bool: "true", "on", "yes" (any case) and "1" are true."""
    return value.strip().lower() in ("true", "on", "yes", "1")


def test_fluent_bit_exec_snippet_is_threaded_because_td_graph_never_exits():
    """in_exec (fluent/fluent-bit plugins/in_exec/in_exec.c, in_exec_collect) popen()s the
    command and loops ``while (fgets(...) != NULL)`` appending each line, returning only at EOF,
    i.e. when the command exits.  ``td-graph run`` (no --once) never exits, so the collector never
    returns: unthreaded it occupies Fluent Bit's main event loop, which then never flushes
    (fluent/fluent-bit#6947: records "only getting sent ... when the fluent-bit service is
    stopped"; the maintainer's fix: "add threaded on").  ``threaded`` runs the input in its own
    thread (fluent-bit-docs administration/multithreading.md, pipeline/inputs/exec.md)."""
    sections = _fluent_bit_sections(_read("fluent-bit", "td-graph.conf"))
    (inp,) = [s for name, s in sections if name == "INPUT"]
    assert inp["name"] == "exec" and inp["tag"] == "td_graph"
    assert _flb_bool(inp["oneshot"])  # one long-running process, started once
    argv = shlex.split(inp["command"])
    assert argv[1] == "run" and "--once" not in argv  # the command never exits on its own...
    assert _flb_bool(inp.get("threaded", "false"))  # ... so the input must run in its own thread
    assert inp.get("exit_after_oneshot", "false").lower() in ("false", "off", "no", "0")


def fluent_bit_buf_size() -> int:
    (inp,) = [s for name, s in _fluent_bit_sections(_read("fluent-bit", "td-graph.conf")) if name == "INPUT"]
    m = re.fullmatch(r"(\d+)([KMG]?)B?", inp["buf_size"].upper())
    assert m, inp["buf_size"]
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


def _conv_num(value: str, i: int, low: int, high: int) -> tuple[int, int] | None:
    """BSD strptime's _conv_num, as in fluent-bit src/flb_strptime.c: read digits while the
    result times ten stays within ``high``."""
    if i >= len(value) or not value[i].isdigit():
        return None
    result, limit = 0, high
    while True:
        result = result * 10 + int(value[i])
        i += 1
        limit //= 10
        if not (result * 10 <= high and limit and i < len(value) and value[i].isdigit()):
            break
    return (result, i) if low <= result <= high else None


def flb_strptime(value: str, fmt: str, tm: dict) -> int | None:
    """fluent-bit src/flb_strptime.c for the conversions a parser here may use: fills ``tm``
    as it goes and returns the index after the match, or None where matching stops (the fields
    read before that stay in ``tm``, as in the C struct)."""
    tm["gmtoff"] = 0  # flb_strptime(): initialize=1 resets the offset
    numeric = {"Y": (0, 9999), "m": (1, 12), "d": (1, 31), "H": (0, 23), "M": (0, 59), "S": (0, 60)}
    i = f = 0
    while f < len(fmt):
        c = fmt[f]
        if c.isspace():
            while i < len(value) and value[i].isspace():
                i += 1
            f += 1
            continue
        if i >= len(value):
            return None
        if c != "%":
            if value[i] != c:
                return None
            i, f = i + 1, f + 1
            continue
        spec, f = fmt[f + 1], f + 2
        if spec in numeric:
            got = _conv_num(value, i, *numeric[spec])
            if got is None:
                return None
            tm[spec], i = got
        elif spec == "z":  # ISO 8601: Z, +hh, +hhmm, +hh:mm
            while i < len(value) and value[i].isspace():
                i += 1
            sign = value[i] if i < len(value) else ""
            i += 1
            if sign == "Z":
                tm["gmtoff"] = 0
                continue
            if sign not in "+-" or not value[i:i + 2].isdigit():
                return None
            offs = int(value[i:i + 2]) * 3600
            i += 2
            if value[i:i + 1] == ":":
                i += 1
            if value[i:i + 1].isdigit():
                if not value[i + 1:i + 2].isdigit():
                    return None
                offs += int(value[i:i + 2]) * 60
                i += 2
            tm["gmtoff"] = -offs if sign == "-" else offs
        else:
            raise AssertionError(f"strptime conversion not modelled: %{spec}")
    return i


def fluent_bit_parse_time(value: str, time_format: str, time_strict: bool) -> tuple[datetime, int] | None:
    """flb_parser_time_lookup (fluent-bit src/flb_parser.c): the format is split at %L; the
    part before is strptime'd, then up to 9 fraction digits (parse_subseconds), then the part
    after.  Where a part does not match: an error with Time_Strict on (the record keeps Fluent
    Bit's read time), and with Time_Strict off the fields read so far are used."""
    before, has_frac, after = time_format.partition("%L")
    tm: dict = {}
    ns = 0

    def result() -> tuple[datetime, int]:
        dt = datetime(tm["Y"], tm["m"], tm["d"], tm.get("H", 0), tm.get("M", 0), min(tm.get("S", 0), 59),
                      tzinfo=timezone.utc)
        return dt - timedelta(seconds=tm["gmtoff"]), ns

    p = flb_strptime(value, before, tm)
    if p is None:
        return None if time_strict else result()
    if has_frac:
        m = re.match(r"\d{1,9}", value[p:])
        if not m:
            return None if time_strict else result()
        ns = _frac_ns(m.group(0))
        q = flb_strptime(value[p + m.end():], after, tm)
        if q is None:
            return None if time_strict else result()
    return result()


def test_fluent_bit_parser_takes_the_record_time_from_event_time(documented_records):
    """The parser's Time_Key/Time_Format/Time_Strict/Time_Keep (fluent-bit-docs
    pipeline/parsers/configuring-parser.md: "Fluent Bit uses strptime(3) to parse time ... The
    %L field descriptor is supported for fractional seconds", valid only after %S; time_strict
    "Set to false when the format expects a time fraction but the time to be parsed doesn't
    include it"; time_keep keeps the key, which the parser otherwise removes).  The JSON parser
    (src/flb_parser_json.c) only parses a string value: ``"event_time": null`` (inventory) keeps
    the read time, and an unparsable value only logs a warning -- the record is never lost."""
    sections = _fluent_bit_sections(_read("fluent-bit", "td-graph.conf"))
    (inp,) = [s for name, s in sections if name == "INPUT"]
    parsers = {s["name"]: s for name, s in _fluent_bit_sections(_read("fluent-bit", "parsers-td-graph.conf")) if name == "PARSER"}
    parser = parsers[inp["parser"]]
    assert parser["format"] == "json"
    assert parser["time_key"] == "event_time"
    assert _flb_bool(parser["time_keep"])  # event_time stays in the record for the SIEM
    fmt = parser["time_format"]
    strict = _flb_bool(parser.get("time_strict", "true"))
    # %L only right after "%S." (or "%s."): documented constraint.
    assert "%L" not in fmt or re.search(r"%[Ss]\.%L", fmt)
    for value in _timestamp_samples(documented_records):
        got = fluent_bit_parse_time(value, fmt, strict)
        assert got is not None, (value, fmt)
        _same_instant(got, value)
        # The same format, as Python's strptime reads it (%L -> %f, which takes 1-6 digits).
        digits = re.search(r"\.(\d+)Z$", value)
        if digits is None:
            py = datetime.strptime(value, fmt.replace(".%L", ""))
        elif len(digits.group(1)) <= 6:
            py = datetime.strptime(value, fmt.replace("%L", "%f"))
        else:
            continue  # Graph's 7th digit: Python stops at 6; Fluent Bit reads up to 9 (checked above)
        assert py == got[0] + timedelta(microseconds=got[1] // 1000), value
    # Time_Strict matters: with the default (on) a value without a fraction would be refused.
    assert fluent_bit_parse_time("2026-11-26T10:00:00Z", fmt, True) is None
    assert strict is False


# --- Logstash -------------------------------------------------------------------------------------------
def _logstash_code() -> str:
    text = _read("logstash", "td-graph.conf")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def logstash_pipe_decode(stdout: bytes, codec: str, target: str) -> list[dict]:
    """What reaches the pipeline: logstash-input-pipe (lib/logstash/inputs/pipe.rb) reads
    ``pipe.each do |line| line = line.chomp; @codec.decode(line)``.  The json codec
    (logstash-codec-json lib/logstash/codecs/json.rb) parses the whole string it gets into one
    event; json_lines (logstash-codec-json_lines) feeds it to a BufferedTokenizer split on "\\n"
    and emits only completed lines -- its docs: "Do not use this codec if your source input is
    line-oriented JSON ... this codec cannot work with line oriented inputs"."""
    events: list[dict] = []
    buffered = ""
    for raw in stdout.decode("utf-8").splitlines(keepends=True):
        line = raw[:-1] if raw.endswith("\n") else raw  # Ruby String#chomp
        if codec == "json":
            events.append({target: json.loads(line)})
        elif codec == "json_lines":
            buffered += line
            *complete, buffered = buffered.split("\n")
            events.extend({target: json.loads(c)} for c in complete)
        else:
            raise AssertionError(codec)
    return events


def test_logstash_pipe_snippet_decodes_one_record_per_line(documented_records):
    code = _logstash_code()
    assert re.search(r"input\s*\{\s*pipe\s*\{", code)
    assert code.count("{") == code.count("}")
    m = re.search(r'codec\s*=>\s*(\w+)\s*\{\s*target\s*=>\s*"\[(\w+)\]"\s*\}', code)
    assert m, "no codec => NAME { target => \"[field]\" } in the pipe input"
    codec, target = m.groups()
    assert codec == "json" and target == "td_graph"
    stdout = b"".join(orjson.dumps(r) + b"\n" for r in documented_records)
    events = logstash_pipe_decode(stdout, codec, target)
    assert [e[target] for e in events] == documented_records
    # json_lines behind a line-oriented input would emit nothing at all.
    assert logstash_pipe_decode(stdout, "json_lines", target) == []


def test_logstash_timestamp_filter_reads_event_time_then_collected_at():
    code = _logstash_code()
    first = re.search(r'if \[td_graph\]\[event_time\] \{\s*date \{\s*match => \["\[td_graph\]\[event_time\]", "ISO8601"\]'
                      r'\s*target => "@timestamp"\s*\}\s*\} else if \[td_graph\]\[collected_at\] \{\s*date \{\s*'
                      r'match => \["\[td_graph\]\[collected_at\]", "ISO8601"\]\s*target => "@timestamp"', code)
    assert first, code


# --- Filebeat -------------------------------------------------------------------------------------------
def test_filebeat_filestream_snippet():
    doc = yaml.safe_load(_read("filebeat", "td-graph.yml"))
    (inp,) = doc["filebeat.inputs"]
    assert inp["type"] == "filestream" and inp["id"] and inp["enabled"] is True
    assert inp["paths"] == [RECORDS]
    (parser,) = inp["parsers"]
    ndjson = parser["ndjson"]
    assert ndjson["target"] == "td_graph" and "message_key" not in ndjson
    assert ndjson["add_error_key"] is True and ndjson["overwrite_keys"] is False


# Go reference-time layout tokens (https://pkg.go.dev/time#pkg-constants and time.Parse):
# "2006" year, "01" month, "02" day, "15" hour, "04" minute, "05" second, ".000..." exactly that
# many fraction digits, ".999..." an optional fraction of any length ("When parsing (only), the
# input may contain a fractional second field immediately after the seconds field, even if the
# layout does not signify its presence"), "Z07:00" "Z" or +hh:mm, "-07:00" +hh:mm only.
_GO_TOKENS = [("2006", r"(?P<Y>\d{4})"), ("01", r"(?P<m>\d{2})"), ("02", r"(?P<d>\d{2})"), ("15", r"(?P<H>\d{2})"),
              ("04", r"(?P<M>\d{2})"), ("05", r"(?P<S>\d{2})"), ("Z07:00", r"(?P<z>Z|[+-]\d{2}:\d{2})"),
              ("-07:00", r"(?P<z>[+-]\d{2}:\d{2})")]
_GO_UNMODELLED = re.compile(r"\d|Jan|Mon|MST|PM|pm|_2|Z07|-07")


def go_layout_regex(layout: str) -> re.Pattern:
    out, i = "", 0
    while i < len(layout):
        frac = re.match(r"[.,](0+|9+)(?![0-9])", layout[i:])
        if frac:
            digits = frac.group(1)
            out += rf"(?:[.,](?P<f>\d+))?" if digits[0] == "9" else rf"[.,](?P<f>\d{{{len(digits)}}})"
            i += frac.end()
            continue
        for tok, rx in _GO_TOKENS:
            if layout.startswith(tok, i):
                out += rx
                i += len(tok)
                if tok == "05" and not re.match(r"[.,](0+|9+)(?![0-9])", layout[i:]):
                    out += r"(?:[.,](?P<f>\d+))?"
                break
        else:
            assert not _GO_UNMODELLED.match(layout, i), f"Go layout element not modelled: {layout[i:]!r}"
            out += re.escape(layout[i])
            i += 1
    return re.compile(out + r"\Z")


def go_parse(value: str, layout: str) -> tuple[datetime, int] | None:
    m = go_layout_regex(layout).match(value)
    if not m:
        return None
    g = m.groupdict()
    # A layout without a zone element is read in the processor's ``timezone`` (default UTC).
    dt = datetime(int(g["Y"]), int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"]), int(g["S"]), tzinfo=timezone.utc)
    if g.get("z") not in (None, "Z"):
        sign = 1 if g["z"][0] == "+" else -1
        dt -= sign * timedelta(hours=int(g["z"][1:3]), minutes=int(g["z"][4:6]))
    return dt, _frac_ns(g.get("f"))


def test_go_layout_model_matches_the_go_documentation():
    assert go_parse("2019-06-22T16:33:51Z", "2006-01-02T15:04:05Z")  # the processor doc's example
    assert go_parse("2019-11-18T04:59:51.123Z", "2006-01-02T15:04:05.999Z")
    assert go_parse("2019-11-18T04:59:51.123Z", "2006-01-02T15:04:05Z07:00")  # fraction after seconds
    assert go_parse("2019-11-18T04:59:51Z", "2006-01-02T15:04:05.000Z07:00") is None  # .000 is required
    assert go_parse("2019-11-18T04:59:51Z", "2006-01-02T15:04:05-07:00") is None  # -07:00 takes no Z
    assert go_parse("2019-11-18T04:59:51+01:00", "2006-01-02T15:04:05Z07:00")[0] == datetime(2019, 11, 18, 3, 59, 51, tzinfo=timezone.utc)


def test_filebeat_timestamp_processors_take_event_time_then_collected_at(documented_records):
    """libbeat's timestamp processor (elastic/beats libbeat/processors/timestamp/timestamp.go and
    docs/timestamp.asciidoc): layouts are tried in order with time.ParseInLocation; ``test``
    values must parse when Filebeat loads the config; a missing field is skipped with
    ignore_missing, and a value that is not a string (null) fails -- skipped with ignore_failure,
    so inventory records keep the collected_at the processor before set."""
    (inp,) = yaml.safe_load(_read("filebeat", "td-graph.yml"))["filebeat.inputs"]
    procs = [p["timestamp"] for p in inp["processors"] if "timestamp" in p]
    assert [p["field"] for p in procs] == ["td_graph.collected_at", "td_graph.event_time"]  # last one wins
    for p in procs:
        assert p.get("target_field", "@timestamp") == "@timestamp"
        assert p["ignore_missing"] is True and p["ignore_failure"] is True
        for value in p["test"]:
            assert any(go_parse(value, layout) for layout in p["layouts"]), (value, p["layouts"])
    # Filebeat itself checks at load time the forms that matter: no fraction, and Graph's 7 digits.
    assert {"2026-11-26T10:00:00Z", "2026-11-26T10:00:00.1234567Z"} <= set(procs[1]["test"])

    def run(record: dict) -> tuple[datetime, int] | None:
        stamp = None
        for p in procs:
            value = record["td_graph"]
            for part in p["field"].split(".")[1:]:
                value = value.get(part) if isinstance(value, dict) else None
            if not isinstance(value, str):
                continue  # missing or null: ignore_missing / ignore_failure
            parsed = next((got for layout in p["layouts"] if (got := go_parse(value, layout))), None)
            assert parsed is not None, (value, p["layouts"])  # a layout that misses would fail silently
            stamp = parsed
        return stamp

    for r in documented_records:
        _same_instant(run({"td_graph": r}), r["event_time"] or r["collected_at"])
    for value in GRAPH_SAMPLES:
        _same_instant(run({"td_graph": {"event_time": value, "collected_at": "2030-01-01T00:00:00Z"}}), value)


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
    assert analyze is not None, "systemd-analyze is missing: scripts/test.sh installs Debian's systemd package"
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


# --- comments that once contradicted the code ---------------------------------------------------------
def test_conf_comments_do_not_claim_what_the_code_does_not_do():
    """The file output never shrinks (td_graph_plugin/outputs/file.py: the uncommitted tail after
    a crash is adopted, only a torn last line is cut); stdout is committed once written to the
    pipe, not once the shipper read it (collector/sink.py SyncSink); there is no registry
    release to ``pip install`` by name."""
    for folder, _, files in os.walk(CONF):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".json"):
                continue
            with open(path, encoding="utf-8") as fh:
                comments = " ".join(l.split("#", 1)[1] for l in fh if "#" in l)
            comments = re.sub(r"\s+", " ", comments)
            assert not re.search(r"truncates the file", comments), path
            assert not re.search(r"commits a page once \w+ (has )?read it", comments), path
            assert "pip install td-graph-plugin" not in comments, path


def test_systemd_unit_checks_before_each_start_and_cannot_loop_on_a_broken_config(tmp_path):
    """``td-graph check`` is ExecStartPre; a config error (2) from ``run`` is never retried, and
    since RestartPreventExitStatus= "has no effect on processes configured via ExecStartPre="
    (systemd.service(5)), the start limit is what ends retries of a failing check
    (systemd.unit(5) StartLimitIntervalSec=: "units which are configured for Restart=, and which
    reach the start limit are not attempted to be restarted anymore").  The check command is
    then run exactly as the unit writes it (paths swapped for the test's): 0, 1 and 2 as documented."""
    unit = _unit()
    svc = unit["Service"]
    assert svc["ExecStartPre"] == f"{TD_GRAPH} check -c {CONFIG}"
    assert svc["ExecStart"] == f"{TD_GRAPH} run -c {CONFIG}"
    assert "2" in svc["RestartPreventExitStatus"].split() and svc["Restart"] == "on-failure"

    def seconds(span: str) -> int:
        m = re.fullmatch(r"(\d+)(s|sec|min|h)?", span)
        assert m, span
        return int(m.group(1)) * {None: 1, "s": 1, "sec": 1, "min": 60, "h": 3600}[m.group(2)]

    burst, interval = int(unit["Unit"]["StartLimitBurst"]), seconds(unit["Unit"]["StartLimitIntervalSec"])
    # Failing starts come RestartSec apart: the limit is reached, so the loop ends (5 x 10 s < 5 min).
    assert burst >= 1 and interval > 0 and burst * seconds(svc["RestartSec"]) < interval

    argv = shlex.split(svc["ExecStartPre"])
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({
        "tenants": [{"name": "t", "tenant_id": "00000000-0000-0000-0000-000000000001",
                     "client_id": "11111111-1111-1111-1111-111111111111", "client_secret": "x"}],
        "state": {"path": str(tmp_path / "state.db")},
        "output": {"type": "file", "path": str(tmp_path / "records.ndjson")},
    }), encoding="utf-8")
    no_folder = tmp_path / "no-folder.yaml"
    no_folder.write_text(good.read_text().replace(str(tmp_path / "state.db"), str(tmp_path / "missing" / "state.db")))
    broken = tmp_path / "broken.yaml"
    broken.write_text("tenants: []\n", encoding="utf-8")
    for config, expected in ((good, 0), (no_folder, 1), (broken, 2)):
        command = _installed_td_graph() + [a.replace(CONFIG, str(config)) for a in argv[1:]]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert proc.returncode == expected, (config.name, proc.stdout, proc.stderr)
    assert not (tmp_path / "state.db").exists()  # check creates nothing
