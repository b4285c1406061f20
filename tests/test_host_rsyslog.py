"""td-graph with a real rsyslog (Debian's package, unpacked into .cache/rsyslog by scripts/test.sh).

Debian's rsyslog 8.2302 ships no ``improg`` module, so rsyslog is tested here with what it does
ship: ``imfile`` tailing td-graph's exactly-once file output (conf/rsyslog/td-graph-imfile.conf,
used verbatim apart from the paths).  The ``improg`` snippet is checked against improg's
documented parameters, and rsyslogd itself is asked to load it (which fails without improg.so,
the reason it cannot run here; docs/hosts.md).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import signal
import subprocess
from collections import Counter
from datetime import timedelta

import pytest

import host_support as hs
from td_graph_plugin.simulator import GraphSimulator
from td_graph_plugin.timeutil import utcnow

pytestmark = pytest.mark.hosts

IMFILE = os.path.join(hs.ROOT, "conf", "rsyslog", "td-graph-imfile.conf")
IMPROG = os.path.join(hs.ROOT, "conf", "rsyslog", "td-graph-improg.conf")
RECORDS = "/var/log/td-graph/records.ndjson"
FORWARDED = "/var/log/td-graph/forwarded.ndjson"

# improg's instance parameters (rsyslog contrib/improg/improg.c, inppdescr; the module doc):
# binary and tag are required.
IMPROG_PARAMETERS = {
    "binary", "tag", "severity", "facility", "ruleset",
    "confirmmessages", "signalonclose", "closetimeout", "killunresponsive",
}


def _rsyslog_conf(tmp_path, snippet: str, records: str, forwarded: str) -> str:
    work = tmp_path / "rsyslog-work"
    work.mkdir(exist_ok=True)
    text = open(snippet, encoding="utf-8").read().replace(RECORDS, records).replace(FORWARDED, forwarded)
    (tmp_path / "snippet.conf").write_text(text)
    main = tmp_path / "rsyslog.conf"
    main.write_text(
        f'global(workDirectory="{work}" maxMessageSize="256k")\n'
        f'include(file="{tmp_path / "snippet.conf"}")\n'
    )
    return str(main)


def _td_graph_once(td_graph_cmd, config: str, secret: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TD_GRAPH_DEMO_SECRET=secret)
    env.pop("TD_GRAPH_TEST_CRASH_AT", None)
    env.update(extra_env)
    return subprocess.run([*td_graph_cmd, "run", "-c", config, "--once"], env=env, capture_output=True,
                          text=True, timeout=120)


@contextlib.contextmanager
def _rsyslogd(tmp_path, conf: str):
    """rsyslogd in the foreground on ``conf``; yields a check that it is still running."""
    rsyslogd, moddir = hs.rsyslogd_binary()
    log = open(tmp_path / "rsyslogd.log", "wb")
    proc = subprocess.Popen([rsyslogd, "-n", "-f", conf, "-M", moddir, "-i", str(tmp_path / "rsyslogd.pid")],
                            stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path), start_new_session=True)

    def alive() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"rsyslogd exited with {proc.returncode}: {(tmp_path / 'rsyslogd.log').read_text()}")
        return True

    try:
        yield alive
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


def _output_files(records: str) -> list[str]:
    """td-graph's file and the files it rotated (``.1`` newest), oldest first."""
    rotated = [p for p in glob.glob(records + ".*") if p.rsplit(".", 1)[1].isdigit()]
    return sorted(rotated, key=lambda p: -int(p.rsplit(".", 1)[1])) + [records]


def test_rsyslog_imfile_forwards_every_record_of_the_file_output(tmp_path, td_graph_cmd):
    """td-graph run --once writes the file output; rsyslog (imfile, the shipped snippet) tails
    it and writes every record to its omfile unchanged, once; a second pass after new activity
    adds exactly the new records."""
    rsyslogd, moddir = hs.rsyslogd_binary()
    records, forwarded = str(tmp_path / "records.ndjson"), str(tmp_path / "forwarded.ndjson")
    conf = _rsyslog_conf(tmp_path, IMFILE, records, forwarded)
    check = subprocess.run([rsyslogd, "-N1", "-f", conf, "-M", moddir], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr

    with GraphSimulator() as sim:
        tenant = sim.add_tenant(profile="e5")
        config = hs.write_td_graph_config(sim, tenant, str(tmp_path), output={"type": "file", "path": records})
        pidfile = tmp_path / "rsyslogd.pid"
        log = open(tmp_path / "rsyslogd.log", "wb")
        proc = subprocess.Popen([rsyslogd, "-n", "-f", conf, "-M", moddir, "-i", str(pidfile)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path), start_new_session=True)
        try:
            def alive() -> bool:
                if proc.poll() is not None:
                    pytest.fail(f"rsyslogd exited with {proc.returncode}: {(tmp_path / 'rsyslogd.log').read_text()}")
                return True

            run = _td_graph_once(td_graph_cmd, config, tenant.client_secret)
            assert run.returncode == 0, run.stderr[-3000:]
            want = hs.simulator_ids(tenant)
            total = sum(len(v) for v in want.values())
            hs.wait_for(lambda: alive() and len(hs.read_ndjson(forwarded)) >= total, 60, f"{total} records forwarded by rsyslog")
            got = hs.read_ndjson(forwarded)
            assert got == hs.read_ndjson(records)  # byte-for-byte the same records, same order
            by_source = hs.ids_by_source(got)
            for source, ids in want.items():
                assert Counter(by_source[source]) == Counter(ids), source

            # New activity, second pass: only the new records, appended and forwarded.
            now = utcnow()
            new_sign_ins = tenant.add_sign_ins(4, start=now - timedelta(minutes=5), end=now - timedelta(minutes=3))
            run = _td_graph_once(td_graph_cmd, config, tenant.client_secret)
            assert run.returncode == 0, run.stderr[-3000:]
            hs.wait_for(lambda: alive() and len(hs.read_ndjson(forwarded)) >= total + 4, 60, "the second pass forwarded")
            again = hs.read_ndjson(forwarded)
            assert [r["id"] for r in again[total:]] and {r["id"] for r in again[total:]} == {o["id"] for o in new_sign_ins}
            assert again == hs.read_ndjson(records)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            log.close()


def test_rsyslog_forwards_every_record_once_across_rotations_and_kills(tmp_path, td_graph_cmd):
    """td-graph rotates its own file (a small ``output.max_bytes``) while rsyslog tails it with
    the shipped imfile snippet, and is killed twice inside a rotation (the documented test hook
    exits at once, as kill -9 does): once after the new file got a page whose checkpoint never
    committed, once between the rename and the new file.  Started again each time, td-graph
    finishes, and rsyslog forwards every record of every file exactly once."""
    rsyslogd, moddir = hs.rsyslogd_binary()
    records, forwarded = str(tmp_path / "records.ndjson"), str(tmp_path / "forwarded.ndjson")
    conf = _rsyslog_conf(tmp_path, IMFILE, records, forwarded)
    check = subprocess.run([rsyslogd, "-N1", "-f", conf, "-M", moddir], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr

    with GraphSimulator() as sim, _rsyslogd(tmp_path, conf) as alive:
        tenant = sim.add_tenant(profile="e5")
        config = hs.write_td_graph_config(
            sim, tenant, str(tmp_path), output={"type": "file", "path": records, "max_bytes": "48KiB", "keep": 1000},
            settings={"audit_logs.sign_ins": {"page_size": 5}, "audit_logs.directory_audits": {"page_size": 5}},
        )
        for step in ("rotate:after_write", "rotate:after_rename"):
            crashed = _td_graph_once(td_graph_cmd, config, tenant.client_secret, TD_GRAPH_TEST_CRASH_AT=step)
            assert crashed.returncode == 137, f"no rotation reached {step}: {crashed.stderr[-3000:]}"
        run = _td_graph_once(td_graph_cmd, config, tenant.client_secret)
        assert run.returncode == 0, run.stderr[-3000:]
        files = _output_files(records)
        assert len(files) >= 4, f"td-graph rotated only {len(files) - 1} times"
        written = [r for f in files for r in hs.read_ndjson(f)]
        want = hs.simulator_ids(tenant)
        total = sum(len(v) for v in want.values())
        assert Counter((r["source"], r["id"]) for r in written) == Counter(
            (source, i) for source, ids in want.items() for i in ids), "every record once across td-graph's files"
        hs.wait_for(lambda: alive() and len(hs.read_ndjson(forwarded)) >= total, 60,
                    f"{total} records forwarded by rsyslog")
        got = hs.read_ndjson(forwarded)
        assert Counter(map(repr, got)) == Counter(map(repr, written)), "rsyslog forwarded each record once, unchanged"


def _statements(text: str, kind: str) -> list[dict[str, str]]:
    """``kind(a="b" c="d")`` statements of an rsyslog RainerScript file, comments removed."""
    clean = "\n".join(line.split("#", 1)[0] if not line.lstrip().startswith("#") else "" for line in text.splitlines())
    out = []
    for body in re.findall(kind + r"\s*\((.*?)\)", clean, flags=re.S):
        out.append({k.lower(): v for k, v in re.findall(r'(\w+)\s*=\s*"([^"]*)"', body)})
    return out


def test_improg_snippet_matches_improgs_documented_parameters(tmp_path):
    text = open(IMPROG, encoding="utf-8").read()
    modules = _statements(text, "module")
    assert {"load": "improg"} in modules
    inputs = [i for i in _statements(text, "input") if i.get("type") == "improg"]
    assert len(inputs) == 1
    params = {k: v for k, v in inputs[0].items() if k != "type"}
    assert set(params) <= IMPROG_PARAMETERS, f"unknown improg parameters: {set(params) - IMPROG_PARAMETERS}"
    assert {"binary", "tag"} <= set(params)  # required by improg
    argv = params["binary"].split()
    assert argv[0].endswith("/td-graph") and argv[1:3] == ["run", "-c"] and len(argv) == 4
    assert params["confirmmessages"] == "off"  # td-graph never reads improg's ACK lines
    assert params["signalonclose"] == "on" and int(params["closetimeout"]) >= 10000
    ruleset = params["ruleset"]
    assert re.search(r'ruleset\s*\(\s*name\s*=\s*"' + re.escape(ruleset) + '"', text)


def test_improg_is_missing_from_debians_rsyslog_and_the_rest_of_the_snippet_is_valid(tmp_path):
    """Why the improg snippet is not run here: rsyslogd cannot load improg.so (Debian does not
    build it).  Everything else in the snippet passes rsyslogd's own config check."""
    rsyslogd, moddir = hs.rsyslogd_binary()
    forwarded = str(tmp_path / "forwarded.ndjson")
    conf = _rsyslog_conf(tmp_path, IMPROG, str(tmp_path / "unused"), forwarded)
    check = subprocess.run([rsyslogd, "-N1", "-f", conf, "-M", moddir], capture_output=True, text=True, timeout=60)
    if os.path.exists(os.path.join(moddir, "improg.so")):
        assert check.returncode == 0, check.stderr
        return
    assert check.returncode != 0 and "could not load module 'improg'" in check.stderr, check.stderr
    text = (tmp_path / "snippet.conf").read_text()
    text = re.sub(r'module\(load="improg"\)', "", text)
    text = re.sub(r'input\(type="improg".*?\)', "", text, flags=re.S)
    (tmp_path / "snippet.conf").write_text(text)
    check = subprocess.run([rsyslogd, "-N1", "-f", conf, "-M", moddir], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
