"""Assemble td-graph from a config file: plugins, catalogue, state, metrics, engine.

The CLI and the shipper hosts (syslog-ng) build the same runtime; only the sink differs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import pluggy

from .collector import Engine, Sink
from .config import Config, load_config
from .errors import ConfigError
from .logsetup import register_secrets
from .metrics import Metrics
from .plan import TenantPlanner
from .plugins import Catalogue, create_plugin_manager, load_catalogue
from .state import StateStore

__all__ = ["Runtime", "load_validated", "build_runtime"]


def load_validated(path: str, *, load_entrypoints: bool = True) -> tuple[Config, pluggy.PluginManager, Catalogue]:
    """Config checked against the catalogue (which itself depends on the config's hooks_dir)."""
    first = load_config(path)
    pm = create_plugin_manager(hooks_dir=first.hooks_dir, load_entrypoints=load_entrypoints)
    catalogue = load_catalogue(pm)
    config = load_config(path, source_names=catalogue.names())
    _check_page_sizes(config, catalogue)
    register_secrets(_secret_values(config))
    return config, pm, catalogue


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


def _secret_values(config: Config) -> list[str]:
    out = []
    for t in config.tenants:
        if t.client_secret is not None:
            out.append(t.client_secret.reveal())
        if t.certificate is not None and t.certificate.passphrase is not None:
            out.append(t.certificate.passphrase.reveal())
    return out


@dataclass
class Runtime:
    config: Config
    pm: pluggy.PluginManager
    catalogue: Catalogue
    state: StateStore
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
    state = StateStore(config.state_path)
    try:
        sink = make_sink(state)
        metrics = metrics or Metrics()
        stop = stop or threading.Event()
        engine = Engine(
            config, catalogue, state=state, sink=sink, metrics=metrics, pm=pm, stop=stop, planner=TenantPlanner()
        )
    except BaseException:
        state.close()
        raise
    return Runtime(config, pm, catalogue, state, metrics, engine, stop)
