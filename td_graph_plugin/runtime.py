"""Assemble td-graph from a config file: plugins, catalogue, state, metrics, engine.

The CLI and the shipper hosts (syslog-ng) build the same runtime; only the sink differs.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pluggy

from .catalogue import Catalogue
from .collector import Engine, Sink, SourceRun, SyncSink
from .collector.modes import collector_for
from .collector.recovery import make_adopter
from .config import Config, load_config
from .config.model import SourceSettings
from .errors import ConfigError, StateLocked
from .formats import build_formatter
from .graph.appbudget import AppBudgets
from .logsetup import register_secrets
from .metrics import Metrics
from .outputs import output_from_config
from .plan import TenantPlanner
from .plugins import create_plugin_manager, load_catalogue
from .sources.isolation_feed import FEED_SPEC
from .state import StateStore
from .state.opening import open_state

__all__ = ["Runtime", "load_validated", "build_runtime", "check_selection", "file_sink", "FeedFlusher"]

log = logging.getLogger("td_graph_plugin.runtime")


def load_validated(path: str, *, load_entrypoints: bool = True) -> tuple[Config, pluggy.PluginManager, Catalogue]:
    """Config checked against the catalogue (which itself depends on the config's hooks_dir)."""
    first = load_config(path)
    pm = create_plugin_manager(hooks_dir=first.hooks_dir, load_entrypoints=load_entrypoints)
    catalogue = load_catalogue(pm)
    config = load_config(path, source_names=catalogue.names())
    _check_page_sizes(config, catalogue)
    register_secrets(config.secret_values())
    return config, pm, catalogue


def check_selection(
    config: Config,
    catalogue: Catalogue,
    tenants: Iterable[str] | None,
    sources: Iterable[str] | None,
    *,
    tenants_key: str = "--tenants",
    sources_key: str = "--sources",
) -> None:
    """Refuse tenant or source names that select nothing (a typo must not collect nothing);
    a source typo gets the closest source names or areas."""
    import difflib

    for t in config.unknown_tenants(tenants or ()):
        known = ", ".join(sorted(x.name for x in config.tenants))
        raise ConfigError(f"unknown tenant {t!r}; configured: {known}", key=tenants_key)
    for s in catalogue.unknown(sources or ()):
        names = catalogue.names() + sorted({spec.area for spec in catalogue})
        close = difflib.get_close_matches(s, names, n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"unknown source {s!r}{hint} (see `td-graph sources`)", key=sources_key)


def file_sink(config: Config, catalogue: Catalogue, state: StateStore) -> SyncSink:
    """The configured output (stdout or file) behind a sink that adopts a crashed run's tail."""
    return SyncSink(output_from_config(config), state, adopt=make_adopter(config, catalogue))


def _check_page_sizes(config: Config, catalogue: Catalogue) -> None:
    for name, settings in config.sources.settings.items():
        spec = catalogue[name]
        if settings.page_size is None:
            continue
        if spec.page_size is None and spec.mode == "delta":
            raise ConfigError(
                f"{spec.name} does not accept $top (Graph rejects it on this delta endpoint)",
                file=config.source_file,
                key=f"sources.settings.{name}.page_size",
            )
        if spec.max_page_size is not None and settings.page_size > spec.max_page_size:
            raise ConfigError(
                f"{settings.page_size} exceeds the endpoint's maximum of {spec.max_page_size}",
                file=config.source_file,
                key=f"sources.settings.{name}.page_size",
            )


@dataclass
class Runtime:
    config: Config
    pm: pluggy.PluginManager
    catalogue: Catalogue
    state: StateStore
    sink: Sink
    metrics: Metrics
    engine: Engine
    stop: threading.Event

    def close(self) -> None:
        self.engine.close()
        self.state.close()


def build_runtime(
    config: Config,
    pm: pluggy.PluginManager,
    catalogue: Catalogue,
    *,
    make_sink: Callable[[StateStore], Sink],
    metrics: Metrics | None = None,
    stop: threading.Event | None = None,
) -> Runtime:
    state = open_state(config)
    try:
        sink = make_sink(state)
        metrics = metrics or Metrics()
        stop = stop or threading.Event()
        engine = Engine(
            config, catalogue, state=state, sink=sink, metrics=metrics, pm=pm, stop=stop, planner=TenantPlanner(store=state),
            formatter=build_formatter(config.output_format, pm),
            # Graph's per-app limits, shared by this process's tenants of one client_id (a cluster
            # sets the replica's share: engine.app_budgets.set_share(coordinator.share)).
            app_budgets=AppBudgets.for_throttling(config.throttling),
        )
    except BaseException:
        state.close()
        raise
    return Runtime(config, pm, catalogue, state, sink, metrics, engine, stop)


class FeedFlusher:
    """``isolate``'s emitter: after an action is stored, if no collector holds the state
    database and the output is a file, emit the tenant's pending audit records now through it
    (the same feed the collector runs, so each record reaches the output exactly once either
    way).  With a stdout output the records wait for the collector: isolate's stdout is not
    the shipper's pipe."""

    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.deferred = False

    def __call__(self, record: dict[str, Any]) -> None:
        if self.config.output_type == "stdout":
            # stdout is the shipper's pipe when the collector runs, the operator's terminal when
            # isolate runs: printed here, the record would count as emitted and never reach the
            # SIEM.  The row stays pending; the collector's feed emits it (cursor: last row id).
            self.deferred = True
            log.warning(
                "audit record %s is stored; with output.type stdout the collector (`td-graph run`) "
                "emits it into the pipeline, not this command",
                record["id"],
            )
            return
        if self.config.state_url:
            # a cluster: the replica that owns the tenant emits the row through its feed
            self.deferred = True
            log.info("the cluster's collector emits audit record %s into the pipeline", record["id"])
            return
        try:
            state = StateStore(self.config.state_path)
        except StateLocked:
            self.deferred = True
            log.info("the running collector emits audit record %s into the pipeline", record["id"])
            return
        try:
            pm = create_plugin_manager(hooks_dir=self.config.hooks_dir)
            catalogue = load_catalogue(pm)
            sink = file_sink(self.config, catalogue, state)
            try:
                sink.open()
                run = SourceRun(
                    tenant=self.config.tenant(record["tenant"]), spec=FEED_SPEC, settings=SourceSettings(),
                    client=None, state=state, sink=sink, metrics=self.metrics or Metrics(),
                    stop=threading.Event(), config=self.config,
                    formatter=build_formatter(self.config.output_format, pm),
                )
                try:
                    collector_for(FEED_SPEC).collect(run)
                finally:
                    run.resources.close()
            finally:
                sink.close()
        finally:
            state.close()
