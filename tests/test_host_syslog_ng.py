"""td-graph inside a real syslog-ng (Debian's syslog-ng-core + syslog-ng-mod-python).

syslog-ng's embedded interpreter imports td-graph from a virtualenv built on the system Python
from this checkout (host_support.syslog_ng_site_packages: the commands docs/hosts.md gives).
The Graph simulator runs in this pytest process; syslog-ng reaches it over loopback TLS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from collections import Counter

import pytest

import host_support as hs
from td_graph_plugin.simulator import GraphSimulator

pytestmark = pytest.mark.hosts

FETCHER = 'python-fetcher(class("td_graph_plugin.hosts.syslog_ng.GraphFetcher") options("config" "{cfg}") {extra});'
SCL_BLOCK = os.path.join(hs.ROOT, "conf", "syslog-ng", "td-graph.conf")
EXAMPLE = os.path.join(hs.ROOT, "conf", "syslog-ng", "syslog-ng-example.conf")


@pytest.fixture(scope="module")
def slng_site() -> str:
    binary = hs.syslog_ng_binary()
    return hs.syslog_ng_site_packages(hs.syslog_ng_python_version(binary))


@pytest.fixture
def sim():
    with GraphSimulator() as s:
        yield s


@pytest.fixture
def slng_factory(tmp_path, slng_site):
    started: list[hs.SyslogNg] = []

    def make(secret: str) -> hs.SyslogNg:
        proc = hs.SyslogNg(str(tmp_path), slng_site, env={"TD_GRAPH_DEMO_SECRET": secret})
        started.append(proc)
        return proc

    yield make
    for proc in started:
        if proc.alive():
            proc.stop(signal.SIGKILL)


def _parse_tsv(path: str) -> list[tuple[dict, dict]]:
    """Lines written by the template below: name-value pairs, PROGRAM, then MESSAGE."""
    import json

    out = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                continue
            tenant, source, obj_id, event_time, program, message = line.rstrip("\n").split("\t", 5)
            nv = {"tenant": tenant, "source": source, "id": obj_id, "event_time": event_time, "program": program}
            out.append((nv, json.loads(message)))
    return out


TSV_TEMPLATE = r'"${.td_graph.tenant}\t${.td_graph.source}\t${.td_graph.id}\t${.td_graph.event_time}\t${PROGRAM}\t${MESSAGE}\n"'


def test_scl_block_delivers_every_record_with_name_value_pairs(tmp_path, sim, slng_factory):
    """Through the shipped SCL block: every simulated record of the four sources arrives once,
    MESSAGE is the contract's NDJSON envelope, the name-value pairs match it, the checkpoint is
    complete, and /metrics inside syslog-ng counts the committed records."""
    tenant = sim.add_tenant(profile="e5")
    port = hs.free_port()
    cfg = hs.write_td_graph_config(sim, tenant, str(tmp_path), extra={"metrics": {"listen": f"127.0.0.1:{port}"}})
    out = str(tmp_path / "out.tsv")
    slng = slng_factory(tenant.client_secret)
    slng.start(hs.syslog_ng_config(
        f'td_graph(config("{cfg}"));',
        f"file(\"{out}\" template({TSV_TEMPLATE}));",
        include=f'@include "{SCL_BLOCK}"',
    ))
    want = hs.simulator_ids(tenant)
    total = sum(len(v) for v in want.values())
    hs.wait_for(lambda: slng.check_alive() and len(_parse_tsv(out)) >= total, 60, f"{total} records in {out}")

    rows = _parse_tsv(out)
    by_source: dict[str, list[str]] = {s: [] for s in want}
    for nv, record in rows:
        assert nv["program"] == "td-graph"
        assert (nv["tenant"], nv["source"], nv["id"]) == (record["tenant"], record["source"], record["id"])
        assert nv["event_time"] == (record["event_time"] or "")
        assert record["data"]["id"] == record["id"] and record["tenant_id"] == tenant.tenant_id
        by_source[record["source"]].append(record["id"])
    for source, ids in want.items():
        assert Counter(by_source[source]) == Counter(ids), f"{source}: missing or duplicated records"

    # The checkpoint follows the acknowledgements: every source finished its pass (window
    # complete / full inventory read), and the metrics endpoint served from inside syslog-ng
    # counts exactly the committed records.
    def metrics_total() -> float:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        except OSError:
            return -1
        return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                   if line.startswith("td_graph_records_total{"))

    hs.wait_for(lambda: metrics_total() == total, 20, f"td_graph_records_total == {total} on /metrics")
    assert slng.stop() == 0
    log_text = slng.log_text()
    assert "Traceback" not in log_text and "engine stopped" not in log_text, log_text[-4000:]

    from td_graph_plugin.state import StateStore

    state = StateStore(str(tmp_path / "state.db"))
    try:
        for source in ("audit_logs.sign_ins", "audit_logs.directory_audits", "security.alerts_v2"):
            cursor = state.cursor("demo", source)
            assert cursor and cursor["active"] is None and cursor["done"], (source, cursor)
        users = state.cursor("demo", "directory.users")
        assert users and users.get("delta_link") and not users.get("next_link"), users
        assert state.count("objects", "demo", "directory.users") == len(want["directory.users"])
    finally:
        state.close()


def test_reload_resumes_from_the_checkpoint(tmp_path, sim, slng_factory):
    """SIGHUP: syslog-ng closes and deinits the old fetcher (engine stopped, state closed) and
    inits/opens a new one on the same state: only records that are new since then arrive."""
    from datetime import timedelta

    from td_graph_plugin.timeutil import utcnow

    tenant = sim.add_tenant(profile="e5")
    cfg = hs.write_td_graph_config(sim, tenant, str(tmp_path))
    out = str(tmp_path / "out.ndjson")
    slng = slng_factory(tenant.client_secret)
    slng.start(hs.syslog_ng_config(FETCHER.format(cfg=cfg, extra=""), f'file("{out}" template("$MESSAGE\\n"));'))
    total = sum(len(v) for v in hs.simulator_ids(tenant).values())
    hs.wait_for(lambda: slng.check_alive() and len(hs.read_ndjson(out)) >= total, 60, f"{total} records")
    from td_graph_plugin.state import StateStore

    def committed_sign_ins_done() -> bool:
        import sqlite3

        db = sqlite3.connect(f"file:{tmp_path / 'state.db'}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT cursor FROM checkpoints WHERE source='audit_logs.sign_ins'").fetchone()
        finally:
            db.close()
        return bool(row) and '"active":null' in row[0]

    hs.wait_for(committed_sign_ins_done, 20, "the sign-ins window committed")
    now = utcnow()
    new = tenant.add_sign_ins(5, start=now - timedelta(minutes=6), end=now - timedelta(minutes=3))
    os.kill(slng.proc.pid, signal.SIGHUP)
    hs.wait_for(lambda: slng.check_alive() and len(hs.read_ndjson(out)) >= total + 5, 60, "the new sign-ins after the reload")
    assert slng.stop() == 0
    records = hs.read_ndjson(out)
    assert {r["id"] for r in records[total:]} == {o["id"] for o in new}
    assert len(records) == total + 5  # nothing already committed came again
    assert "Configuration reload finished" in slng.log_text()
    StateStore(str(tmp_path / "state.db")).close()  # the lock was released at shutdown


def test_bad_config_is_refused_with_an_actionable_error(tmp_path, slng_factory):
    """init() validates like `td-graph run`: syslog-ng refuses to start and logs the file and key."""
    cfg = tmp_path / "td-graph.yaml"
    cfg.write_text("tenants:\n  - name: x\n    tenant_id: t\n    client_id: c\n    client_secret: s\nsourcez: {}\n")
    slng = slng_factory("unused")
    slng.start(hs.syslog_ng_config(FETCHER.format(cfg=cfg, extra=""), f'file("{tmp_path}/out.log");'))
    try:
        code = slng.proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail("syslog-ng started with an invalid td-graph config")
    text = slng.log_text()
    assert code != 0
    assert "configuration error" in text and str(cfg) in text and "sourcez" in text, text[-3000:]
    assert "init() returned FALSE" in text  # syslog-ng's own word that the source was refused


def test_shipped_configs_pass_syslog_ng_syntax_check(tmp_path):
    """conf/syslog-ng/*: the example config and the SCL block (used with its arguments)."""
    binary = hs.syslog_ng_binary()
    proc = subprocess.run([binary, "--syntax-only", "-f", EXAMPLE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    conf = tmp_path / "scl-use.conf"
    conf.write_text(hs.syslog_ng_config(
        'td_graph(config("/etc/td-graph/td-graph.yaml") sources("security") queue-size(500) log-iw-size(500));',
        'file("/dev/null");',
        include=f'@include "{SCL_BLOCK}"',
    ))
    proc = subprocess.run([binary, "--syntax-only", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    expanded = subprocess.run([binary, f"--preprocess-into={tmp_path / 'pre.conf'}", "-f", str(conf)],
                              capture_output=True, text=True, timeout=60)
    assert expanded.returncode == 0, expanded.stderr
    text = (tmp_path / "pre.conf").read_text()
    assert 'class("td_graph_plugin.hosts.syslog_ng.GraphFetcher")' in text
    assert '"config" "/etc/td-graph/td-graph.yaml"' in text and '"sources" "security"' in text
    assert '"queue-size" "500"' in text


def _dst_queued(stats: str) -> int:
    """Messages waiting in the network destination's queue (fetched, not yet written)."""
    total = 0
    for line in stats.splitlines():
        parts = line.split(";")
        if len(parts) >= 6 and parts[0].startswith("dst.") and parts[4] == "queued":
            try:
                total += int(parts[5])
            except ValueError:
                pass
    return total


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stop_with_records_in_flight_loses_nothing_and_commits_only_acknowledged(tmp_path, sim, slng_factory, stop_signal):
    """The checkpoint-after-ack guarantee, end to end.

    syslog-ng forwards to a TCP receiver that stops reading after 150 records; with
    flow-control and small buffers, syslog-ng then holds fetched-but-unwritten messages and
    td-graph holds pages waiting for their acknowledgements.  syslog-ng is stopped (SIGTERM:
    clean stop; SIGKILL: crash) while that is so, and the receiver then reads everything that
    syslog-ng did write (the kernel keeps it), until EOF.

    Asserted after the stop, from the state database vs what reached the receiver:
      * every object the state records as delivered (window sources' seen keys, the
        inventory's object table) reached the receiver: no commit for an unacknowledged record;
      * a source whose cursor says its pass is complete had every one of its records received;
      * the stop really happened mid-stream (some records had not arrived yet).
    Then syslog-ng is restarted with the receiver reading, and asserted:
      * every simulated record arrived (nothing lost);
      * a record that arrived twice was one the state had NOT recorded as delivered at the stop
        (duplicates only for records whose page was not acknowledged and committed).
    """
    tenant = sim.add_tenant(profile="e5")
    sim.set_page_size("/users/delta", 10)
    settings = {s: {"page_size": 10} for s in ("audit_logs.sign_ins", "audit_logs.directory_audits", "security.alerts_v2")}
    cfg = hs.write_td_graph_config(sim, tenant, str(tmp_path), settings=settings)
    want = hs.simulator_ids(tenant)
    total = sum(len(v) for v in want.values())
    receiver = hs.LineReceiver()
    try:
        pause_after = 150
        receiver.pause_after(pause_after)
        slng = slng_factory(tenant.client_secret)
        source = FETCHER.format(cfg=cfg, extra='log-iw-size(40)')
        destination = (f'network("127.0.0.1" port({receiver.port}) transport(tcp) template("$MESSAGE\\n") '
                       f'so-sndbuf(4096) log-fifo-size(40));')
        conf = hs.syslog_ng_config(source, destination)
        slng.start(conf)
        hs.wait_for(lambda: slng.check_alive() and receiver.count() >= pause_after, 60, f"{pause_after} records at the receiver")
        # In flight: syslog-ng holds messages it fetched but cannot write.
        hs.wait_for(lambda: _dst_queued(slng.stats()) > 0, 30, "messages queued in syslog-ng's destination")
        slng.stop(stop_signal)
        receiver.resume()
        hs.wait_for(lambda: receiver.open_connections() == 0, 30, "the receiver to read syslog-ng's connection to EOF")
        first = receiver.records()
        committed = hs.committed_ids(str(tmp_path / "state.db"))
        received_first = hs.ids_by_source(first)
        assert len(first) < total, "syslog-ng was not stopped mid-stream; the test proves nothing"
        for source, ids in committed.items():
            missing = ids - set(received_first.get(source, ()))
            assert not missing, f"{source}: {len(missing)} record(s) committed but never acknowledged/received"
        complete = _assert_complete_passes_received(str(tmp_path / "state.db"), want, received_first)

        slng.start(conf)
        hs.wait_for(
            lambda: slng.check_alive() and all(want[s] <= set(hs.ids_by_source(receiver.records()).get(s, ())) for s in want),
            60, "every simulated record at the receiver after the restart",
        )
        assert slng.stop() == 0
        everything = hs.ids_by_source(receiver.records())
        for source, ids in want.items():
            got = Counter(everything[source])
            assert set(got) == ids, f"{source}: lost {len(ids - set(got))} record(s)"
            twice = {i for i, n in got.items() if n > 1}
            assert not (twice & committed[source]), f"{source}: committed records sent again: {sorted(twice & committed[source])[:5]}"
            if source in complete:  # a finished pass is never re-sent (the overlap is deduplicated)
                assert not twice, f"{source}: pass was complete at the stop, yet {len(twice)} record(s) came again"
    finally:
        receiver.close()


def _assert_complete_passes_received(state_path: str, want: dict[str, set[str]], received: dict[str, list[str]]) -> set[str]:
    """Sources whose committed cursor says the pass finished must have had every record
    received; returns those sources."""
    from td_graph_plugin.state import StateStore

    complete: set[str] = set()
    state = StateStore(state_path)
    try:
        for source in ("audit_logs.sign_ins", "audit_logs.directory_audits", "security.alerts_v2"):
            cursor = state.cursor("demo", source)
            if cursor and cursor.get("active") is None and cursor.get("done"):
                complete.add(source)
        users = state.cursor("demo", "directory.users")
        if users and users.get("delta_link") and not users.get("next_link"):
            complete.add("directory.users")
    finally:
        state.close()
    for source in complete:
        assert want[source] <= set(received[source]), f"{source}: pass committed complete, records missing"
    return complete
