"""``td-graph capture``: a real tenant's answers as scrubbed cassettes the test suite replays.

The discovery calls ``td-graph doctor`` makes (``/subscribedSkus``, the app's service principal
and its ``appRoleAssignments``) and the first N pages of each chosen source are read by the
real client and collectors (the engine runs each job as ``run`` would, against a throwaway
state: the operator's checkpoints never move) while the session records every exchange.  Then
everything is scrubbed at once (``scrub``) and written under ``--out``::

    capture.json        what was captured: cloud, replaced tenant/client ids, per source its
                        cassette, settings, status, pages and whether it stopped at N pages
    scrub-report.json   what was replaced or removed, per cassette, field path and category
    discovery.yaml      the discovery calls (with the login service's token exchange)
    sources/NAME.yaml   each source's pages (each cassette starts with the login exchange)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import orjson

from .. import __version__
from ..catalogue import Catalogue
from ..clouds import CLOUDS
from ..collector import Engine, Job, SyncSink
from ..config.model import Config, SourceSettings, TenantConfig
from ..discovery import discover
from ..errors import ConfigError, TdGraphError
from ..graph.client import GraphClient
from ..graph.clouds import resolve_endpoints
from ..graph.http import build_session
from ..graph.ratelimit import Budget, RateLimiter
from ..metrics import Metrics
from ..sources.reports import DOWNLOAD_HOSTS
from ..spec import SourceSpec
from ..state import StateStore
from ..timeutil import format_time, utcnow
from .cassette import dump_cassette, interaction, is_openid_request, is_token_request, learn
from .recorder import Exchange, Recorder, install
from .scrub import Origins, Scrubber

__all__ = ["SourceCapture", "CaptureResult", "capture", "select_sources", "DEFAULT_PAGES"]

log = logging.getLogger("td_graph_plugin.capture")

DEFAULT_PAGES = 2
DISCOVERY = "discovery"


@dataclass
class SourceCapture:
    """One source's capture. ``records`` are the unscrubbed records, in memory only."""

    name: str
    cassette: str
    status: str
    pages: int
    interactions: int = 0
    truncated: bool = False
    started: str = ""
    error: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)


@dataclass
class CaptureResult:
    out: Path
    token_ok: bool
    sources: dict[str, SourceCapture]
    discovery: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.token_ok and not self.problems


class _MemoryOutput:
    """The capture's output: records stay in memory (never the operator's output)."""

    name = "capture"

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def open(self, committed_position: int | None) -> None:
        return None

    def write(self, lines: Sequence[bytes]) -> int | None:
        self.lines.extend(lines)
        return None

    def close(self) -> None:
        return None


def select_sources(config: Config, catalogue: Catalogue, tenant: TenantConfig, names: Sequence[str] | None) -> list[SourceSpec]:
    """``--sources`` (names or areas), else the config's enabled sources; Graph sources offered
    in the tenant's cloud only."""
    specs = catalogue.resolve(names) if names else catalogue.select(config.sources.include, config.sources.exclude)
    return [s for s in specs if s.reads_graph and tenant.cloud in s.clouds]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _origins(tenant: TenantConfig) -> Origins:
    endpoints = resolve_endpoints(tenant)
    cloud = CLOUDS[(tenant.cloud or "global").lower()]
    hosts = set(DOWNLOAD_HOSTS) | {c.graph_host for c in CLOUDS.values()} | {c.login_host for c in CLOUDS.values()}
    return Origins(_origin(endpoints.graph_base), _origin(endpoints.login_base),
                   f"https://{cloud.graph_host}", f"https://{cloud.login_host}", frozenset(hosts))


def _settings_json(settings: SourceSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, timedelta):
            value = value.total_seconds()
        elif isinstance(value, tuple):
            value = list(value)
        if value is not None:
            out[f.name] = value
    return out


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty folder; give a new one", key="--out")


def capture(
    config: Config,
    catalogue: Catalogue,
    tenant_name: str,
    out: str | os.PathLike[str],
    *,
    sources: Sequence[str] | None = None,
    pages: int = DEFAULT_PAGES,
    now: Callable[[], datetime] = utcnow,
) -> CaptureResult:
    """Capture ``tenant_name``'s discovery and the first ``pages`` pages of each source."""
    if pages < 1:
        raise ConfigError("--pages must be at least 1", key="--pages")
    try:
        tenant = config.tenant(tenant_name)
    except (KeyError, ValueError, TdGraphError):
        known = ", ".join(t.name for t in config.tenants)
        raise ConfigError(f"unknown tenant {tenant_name!r}; configured: {known}", key="--tenant") from None
    out_dir = Path(out)
    _check_out(out_dir)
    specs = select_sources(config, catalogue, tenant, sources)
    recorder = Recorder(pages=pages)
    session = build_session(tenant)
    install(session, recorder)
    budgets = {n: Budget(o.requests, o.per, concurrency=o.concurrency, per_key=(n == "usage_reports"))
               for n, o in config.throttling.items()}
    metrics = Metrics()
    client = GraphClient(tenant, config.http, metrics, session=session, limiter=RateLimiter(budgets))
    captured: dict[str, SourceCapture] = {}
    discovered: dict[str, Any] = {}
    started_at = now()
    try:
        recorder.use(DISCOVERY, limited=False)
        try:
            client.tokens.token()
            token_ok = True
        except TdGraphError as exc:
            log.error("%s: no token: %s", tenant.name, exc)
            token_ok = False
        if token_ok:
            found = discover(client, tenant.client_id)
            discovered = {
                "capabilities": sorted(found.capabilities) if found.capabilities is not None else None,
                "skus": list(found.skus),
                "permissions": sorted(found.permissions) if found.permissions is not None else None,
                "errors": sorted(found.errors),
            }
            log.info("discovery: %d capabilities, %s permissions", len(found.capabilities or ()),
                     len(found.permissions) if found.permissions is not None else "no")
            captured = _run_sources(config, catalogue, tenant, client, recorder, specs, metrics, now)
    finally:
        recorder.use("-", limited=False)
        client.close()
        session.close()
    result = CaptureResult(out_dir, token_ok, captured, discovered)
    _write(out_dir, tenant, recorder, result, pages, started_at)
    for name, sc in captured.items():
        if sc.interactions == 0:
            result.problems.append(f"{name}: nothing was captured ({sc.error or sc.status})")
    if not token_ok:
        result.problems.append("the token could not be had: see discovery.yaml and the log")
    return result


def _run_sources(config: Config, catalogue: Catalogue, tenant: TenantConfig, client: GraphClient,
                 recorder: Recorder, specs: list[SourceSpec], metrics: Metrics,
                 now: Callable[[], datetime]) -> dict[str, SourceCapture]:
    captured: dict[str, SourceCapture] = {}
    with tempfile.TemporaryDirectory(prefix="td-graph-capture-") as tmp:
        state = StateStore(str(Path(tmp) / "state.db"))
        output = _MemoryOutput()
        sink = SyncSink(output, state)
        sink.open()
        run_config = dataclasses.replace(config, tenants=(tenant,), workers=1, state_path=str(Path(tmp) / "state.db"),
                                         output_type="stdout", output_path=None, metrics_listen=None)
        engine = Engine(run_config, catalogue, state=state, sink=sink, metrics=metrics, client_factory=lambda t: client, now=now)
        try:
            for spec in specs:
                name = f"sources/{spec.name}"
                recorder.use(name, limited=True)
                settings = _capture_settings(spec, config.sources.settings.get(spec.name, SourceSettings()))
                first = len(output.lines)
                started = format_time(now())
                result = engine.run_job(Job(tenant, spec, settings))
                recorder.use("-", limited=False)  # waits for a prefetch still in flight
                records = [orjson.loads(line) for line in output.lines[first:]]
                captured[spec.name] = SourceCapture(
                    name=spec.name, cassette=f"{name}.yaml", status=result.status,
                    pages=recorder.counted[name], interactions=len(recorder.exchanges[name]),
                    truncated=name in recorder.truncated, started=started,
                    error=None if result.error is None or name in recorder.truncated else str(result.error),
                    settings=_settings_json(settings), records=records,
                )
                log.info("%s: %d page(s), %d record(s)%s", spec.name, captured[spec.name].pages, len(records),
                         f" (first {recorder.pages} page(s))" if captured[spec.name].truncated else "")
        finally:
            engine.close()
            sink.close()
            state.close()
    return captured


def _capture_settings(spec: SourceSpec, settings: SourceSettings) -> SourceSettings:
    """A window source reads its whole lookback as one window (unless the config sets a
    chunk), so its first N pages hold the newest events rather than an empty oldest day."""
    if spec.mode != "window" or settings.window_chunk is not None:
        return settings
    lookback = spec.duration("lookback", settings.lookback)
    return dataclasses.replace(settings, window_chunk=max(lookback, spec.duration("window_chunk")))


def _login_prelude(exchanges: list[Exchange]) -> list[Exchange]:
    """The login service's exchanges the capture began with, up to the first token issued
    (OpenID configuration, instance discovery if MSAL made one): each replay signs in anew."""
    out: list[Exchange] = []
    for ex in exchanges:
        if not (is_openid_request(ex) or is_token_request(ex) or "/discovery/" in ex.url):
            break
        out.append(ex)
        if is_token_request(ex) and 200 <= ex.status < 300:
            return out
    return [e for e in out if not is_token_request(e)] + [e for e in exchanges if is_token_request(e) and 200 <= e.status < 300][:1]


def _write(out: Path, tenant: TenantConfig, recorder: Recorder, result: CaptureResult, pages: int, started: datetime) -> None:
    scrubber = Scrubber(_origins(tenant))
    everything = [e for name in list(recorder.exchanges) for e in recorder.exchanges[name]]
    learn(scrubber, everything)
    prelude = _login_prelude(recorder.exchanges.get(DISCOVERY, []))
    report: dict[str, Any] = {}
    files: dict[str, str] = {}
    cassettes = [DISCOVERY] + [f"sources/{n}" for n in result.sources]
    for name in cassettes:
        exchanges = list(recorder.exchanges.get(name, []))
        if name != DISCOVERY and not any(is_openid_request(e) for e in exchanges):
            exchanges = prelude + exchanges
        scrubber.scope = f"{name}.yaml"
        removed: dict[str, int] = {}
        interactions = [interaction(scrubber, e, removed) for e in exchanges]
        header = (f"Captured by td-graph {__version__} `capture` ({'first %d page(s)' % pages if name != DISCOVERY else 'discovery calls'}).\n"
                  "Scrubbed: no token, secret or Authorization header; identifiers and names replaced consistently\n"
                  "with a per-capture key that was never written; see scrub-report.json.")
        files[f"{name}.yaml"] = dump_cassette(interactions, header)
        report[f"{name}.yaml"] = {"interactions": len(interactions), "removed": removed}
    scrubber.scope = "capture.json"
    meta = {
        "format": 1,
        "generator": f"td-graph {__version__}",
        "captured_at": format_time(started),
        "cloud": tenant.cloud,
        "tenant_id": scrubber.patterns(tenant.tenant_id, "tenant_id"),
        "client_id": scrubber.patterns(tenant.client_id, "client_id"),
        "pages": pages,
        "discovery": {"cassette": f"{DISCOVERY}.yaml", **result.discovery},
        "sources": {
            sc.name: {"cassette": sc.cassette, "status": sc.status, "pages": sc.pages, "truncated": sc.truncated,
                      "started": sc.started, "records": len(sc.records),
                      "settings": sc.settings}
            for sc in result.sources.values()
        },
    }
    replaced = scrubber.report()
    for name, entry in report.items():
        entry["replaced"] = replaced["replaced"].get(name, {})
    full_report = {
        "format": 1,
        "generator": f"td-graph {__version__}",
        "method": "HMAC-SHA256 of each original under a random key made for this capture and never written; "
                  "the same original has the same placeholder in every file of the capture",
        "cassettes": report,
        "capture.json": replaced["replaced"].get("capture.json", {}),
        "totals": replaced["totals"],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "sources").mkdir(exist_ok=True)
    for rel, text in files.items():
        (out / rel).write_text(text, encoding="utf-8")
    (out / "capture.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (out / "scrub-report.json").write_text(json.dumps(full_report, indent=2) + "\n", encoding="utf-8")

