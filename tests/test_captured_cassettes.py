"""Replay every capture under ``cassettes/captured/`` (made by ``td-graph capture``) through the
real stack: MSAL, the Graph client, discovery and the collectors, ``record_mode="none"``.

A capture is a folder with ``capture.json``; ``replay_capture`` signs in with the capture's
replaced tenant and client ids, re-runs discovery and compares it with what the capture saw,
then runs each source at the instant it was captured with the settings it was captured with.
A source cut at its first N pages ends where its cassette ends: the next request is the one
the capture refused to send, and nothing else may be missing.  With no capture in the
repository this still replays one: a capture of the simulator written to a temporary folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from td_graph_plugin.collector import Engine, Job, SyncSink
from td_graph_plugin.config.model import Config, SourceSettings
from td_graph_plugin.discovery import Discovery, discover
from td_graph_plugin.state import StateStore
from td_graph_plugin.timeutil import parse_time
from tests.fakes import ListOutput
from tests.vcr_support import CASSETTES, VirtualClock, cassette_miss, catalogue, make_client, replay, tenant_config

pytestmark = pytest.mark.timeout(120)

CAPTURED = CASSETTES / "captured"


@dataclass
class SourceReplay:
    name: str
    status: str
    records: list[dict[str, Any]]
    interactions: int
    unplayed: list[int]
    cut: bool  # ended on a request past the capture's last page


@dataclass
class CaptureReplay:
    meta: dict[str, Any]
    discovery: Discovery
    discovery_unplayed: list[int]
    sources: dict[str, SourceReplay] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def captures(root: Path = CAPTURED) -> list[Path]:
    """Every capture folder under ``root`` (any depth)."""
    return sorted(p.parent for p in root.rglob("capture.json")) if root.exists() else []


def source_settings(data: dict[str, Any]) -> SourceSettings:
    """The settings a source was captured with (capture.json: seconds and lists)."""
    kinds = {f.name: f for f in fields(SourceSettings)}
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name not in kinds:
            continue
        if name in ("interval", "lookback", "overlap", "delay", "window_chunk", "full_resync"):
            value = timedelta(seconds=value)
        elif isinstance(value, list):
            value = tuple(value)
        out[name] = value
    return SourceSettings(**out)


def replay_capture(folder: Path, state_dir: Path) -> CaptureReplay:
    """Replay ``folder`` (discovery, then every source) and return what td-graph made of it."""
    meta = json.loads((folder / "capture.json").read_text(encoding="utf-8"))
    tenant = tenant_config(name="captured", tenant_id=meta["tenant_id"], client_id=meta["client_id"], cloud=meta["cloud"])
    with replay(folder / meta["discovery"]["cassette"]) as rep:
        client = make_client(tenant)
        try:
            found = discover(client, tenant.client_id)
        finally:
            client.close()
        result = CaptureReplay(meta, found, rep.unplayed())
    cat = catalogue()
    for name, info in meta["sources"].items():
        if name not in cat:
            result.skipped[name] = "not a source of this td-graph (a plugin's?)"
            continue
        result.sources[name] = _replay_source(folder, tenant, cat, name, info, state_dir / name)
    return result


def _replay_source(folder: Path, tenant, cat, name: str, info: dict[str, Any], state_dir: Path) -> SourceReplay:
    state_dir.mkdir(parents=True, exist_ok=True)
    now = parse_time(info["started"])
    clock = VirtualClock()
    state = StateStore(str(state_dir / "state.db"))
    output = ListOutput()
    sink = SyncSink(output, state)
    sink.open()
    try:
        with replay(folder / info["cassette"]) as rep:
            engine = Engine(Config(tenants=(tenant,), workers=1), cat, state=state, sink=sink, now=lambda: now,
                            client_factory=lambda t: make_client(t, clock=clock))
            try:
                job_result = engine.run_job(Job(tenant, cat[name], source_settings(info["settings"])))
            finally:
                engine.close()
            miss = cassette_miss(job_result.error)
            unplayed = rep.unplayed()
            if miss is not None and not (info["truncated"] and not unplayed):
                raise miss  # a request the capture never saw: td-graph asks something else now
            interactions = len(rep.cassette.data)
    finally:
        state.close()
    records = [orjson.loads(line) for line in output.lines]
    return SourceReplay(name, job_result.status, records, interactions, unplayed, miss is not None)


def check_replay(folder: Path, rp: CaptureReplay) -> None:
    """What every capture must replay to: the discovery it saw, every source's records."""
    meta = rp.meta
    assert not rp.discovery_unplayed, f"{folder}: discovery interactions never asked for: {rp.discovery_unplayed}"
    disc = meta["discovery"]
    if "capabilities" in disc:
        assert sorted(rp.discovery.capabilities or ()) == sorted(disc["capabilities"] or ())
        assert (sorted(rp.discovery.permissions) if rp.discovery.permissions is not None else None) == disc["permissions"]
        assert sorted(rp.discovery.errors) == disc["errors"]
    for name, sr in rp.sources.items():
        info = meta["sources"][name]
        assert not sr.unplayed, f"{name}: interactions never asked for: {sr.unplayed}"
        assert len(sr.records) == info["records"], f"{name}: {len(sr.records)} records, the capture had {info['records']}"
        if not info["truncated"]:
            assert sr.status == info["status"] and not sr.cut, f"{name}: {sr.status}, captured {info['status']}"
        assert all(r["source"] == name and r["tenant"] == "captured" for r in sr.records)


def test_every_capture_in_the_repository_replays(tmp_path):
    """Every folder under cassettes/captured/ (none yet: operators contribute them); a loop, not a
    parametrization, so an empty folder is a passing test rather than a skipped one."""
    for n, folder in enumerate(captures()):
        check_replay(folder, replay_capture(folder, tmp_path / str(n)))


def test_a_fresh_capture_of_the_simulator_replays(tmp_path, monkeypatch):
    """The same function on a capture written now (runs whether or not the repository has any)."""
    from td_graph_plugin.capture import capture
    from td_graph_plugin.cli.demo import demo_config
    from td_graph_plugin.runtime import load_validated
    from td_graph_plugin.simulator import GraphSimulator

    with GraphSimulator(workdir=str(tmp_path / "sim")) as sim:
        tenant = sim.add_tenant(profile="all")
        sim.set_page_size("/users/delta", 50)
        path = tmp_path / "td-graph.yaml"
        path.write_text(yaml.safe_dump(demo_config(sim, tenant, str(tmp_path / "state.db"))))
        monkeypatch.setenv("TD_GRAPH_DEMO_SECRET", tenant.client_secret)
        config, _pm, cat = load_validated(str(path), load_entrypoints=False)
        result = capture(config, cat, "demo", tmp_path / "out",
                         sources=["directory.users", "audit_logs.sign_ins", "reports.office365_active_users"], pages=2)
    assert result.ok, result.problems
    rp = replay_capture(tmp_path / "out", tmp_path / "replay")
    check_replay(tmp_path / "out", rp)
    assert rp.sources["directory.users"].cut and len(rp.sources["directory.users"].records) == 100
    assert set(rp.sources) == {"directory.users", "audit_logs.sign_ins", "reports.office365_active_users"}
