"""Load and validate td-graph YAML before anything touches the network.

Every problem names the file, the dotted key (``tenants[0].client_secret``) and its line, so
an operator can fix it without reading code; all problems are collected and reported together.
``${NAME}`` in a string is replaced by the environment variable NAME; an unset one is an error
naming it (inside a tenant's ``isolation:`` block it is deferred to isolate/release instead).
The pieces: ``yamlfile`` (strict YAML, duplicate keys, lines), ``typed`` (typed access that
collects problems), ``tenants`` (identities and credentials); this module assembles ``Config``.
"""

from __future__ import annotations

import os
import re
from dataclasses import fields
from datetime import timedelta
from typing import Any, Iterable, Mapping as MappingType

from ..catalogue import selects
from ..clouds import CLOUD_NAMES
from ..errors import ConfigError
from .model import (
    DEFAULT_LEASE_TTL,
    MIN_LEASE_TTL,
    ClusterConfig,
    Config,
    HttpConfig,
    default_replica,
)
from .model import SourceSettings, SourcesConfig, ThrottleOverride
from .tenants import is_isolation_block, tenants
from .typed import Mapping, Problems, expand
from .yamlfile import read_yaml

__all__ = ["load_config", "parse_config", "CLOUD_NAMES", "OUTPUT_TYPES", "OUTPUT_FORMATS"]

OUTPUT_TYPES = ("stdout", "file")
OUTPUT_FORMATS = ("raw", "ecs", "ocsf")
_LISTEN = re.compile(r"^[^\s:]*:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$")


def load_config(path: str, *, env: MappingType[str, str] | None = None, source_names: Iterable[str] | None = None) -> Config:
    """Read ``path`` and validate it. ``source_names`` (the catalogue) enables name checks.

    Relative paths that name td-graph's own code (``hooks_dir``) are taken from the config
    file's folder, not from wherever the process happened to start.
    """
    data, lines = read_yaml(path)
    base_dir = os.path.dirname(os.path.abspath(path))
    return parse_config(data, file=path, env=env, source_names=source_names, base_dir=base_dir, lines=lines)


def parse_config(
    data: Any,
    *,
    file: str = "<config>",
    env: MappingType[str, str] | None = None,
    source_names: Iterable[str] | None = None,
    base_dir: str | None = None,
    lines: MappingType[str, int] | None = None,
) -> Config:
    """Validate already-parsed YAML. ``base_dir`` anchors a relative ``hooks_dir``; ``lines``
    (dotted key -> line, from ``read_yaml``) puts the line into each message."""
    p = Problems(file, lines)
    env = os.environ if env is None else env
    if data is None:
        p.add("tenants", "the file is empty; at least one tenant is required")
        p.raise_if_any()
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of keys (tenants, sources, ...)", file=file)
    data = expand(data, "", env, p, defer=is_isolation_block)
    top = Mapping(data, "", p, required=("tenants",), optional=(
        "sources", "state", "output", "metrics", "isolation", "hooks_dir", "http", "engine", "logging",
        "throttling", "cluster",
    ))

    tenant_list = tuple(tenants(top.get("tenants"), p, env))
    sources = _sources(top.get("sources"), p, source_names)
    state = Mapping(top.get("state") or {}, "state", p, optional=("path", "url"))
    output = _output(top.get("output"), p)
    metrics = Mapping(top.get("metrics") or {}, "metrics", p, optional=("listen", "unhealthy_after"))
    isolation = Mapping(top.get("isolation") or {}, "isolation", p, optional=("protected_users", "state_path"))
    http = Mapping(top.get("http") or {}, "http", p, optional=(
        "connect_timeout", "read_timeout", "max_retries", "max_retry_wait",
    ))
    engine = Mapping(top.get("engine") or {}, "engine", p, optional=("workers",))
    logging_ = Mapping(top.get("logging") or {}, "logging", p, optional=("level",))

    listen = metrics.str("listen")
    if listen is not None and not _LISTEN.match(listen):
        p.add("metrics.listen", f"expected HOST:PORT such as 127.0.0.1:9464, got {listen!r}")
    unhealthy_after = metrics.seconds("unhealthy_after", 900.0)
    protected = isolation.str_list("protected_users", default=())
    hooks_dir = top.str("hooks_dir")
    if hooks_dir is not None and base_dir is not None:
        hooks_dir = os.path.normpath(os.path.join(base_dir, hooks_dir))

    http_cfg = HttpConfig(
        connect_timeout=http.seconds("connect_timeout", 10.0),
        read_timeout=http.seconds("read_timeout", 60.0),
        max_retries=http.int("max_retries", 6, minimum=0),
        max_retry_wait=http.seconds("max_retry_wait", 300.0),
    )
    workers = engine.int("workers", 8, minimum=1)
    throttling = _throttling(top.get("throttling"), p)
    level = logging_.str("level", default="info", choices=("debug", "info", "warning", "error"))
    state_path = state.str("path", default="./td-graph-state.db")
    state_url = _state_url(state, p, file)
    cluster = _cluster(top.get("cluster"), state_url, p)
    p.raise_if_any()
    return Config(
        tenants=tenant_list,
        sources=sources,
        state_path=state_path,
        state_url=state_url,
        cluster=cluster,
        metrics_listen=listen,
        unhealthy_after=unhealthy_after,
        protected_users=tuple(protected),
        isolation_state=isolation.str("state_path"),
        hooks_dir=hooks_dir,
        http=http_cfg,
        workers=workers,
        throttling=throttling,
        log_level=level,
        source_file=file,
        **output,
    )


# --- sections ------------------------------------------------------------------------------

_PG_SCHEMES = ("postgresql://", "postgres://")


def _state_url(state: Mapping, p: Problems, file: str) -> str | None:
    """``state.url``: a PostgreSQL URL, instead of (never together with) ``state.path``."""
    url = state.str("url")
    if url is None:
        return None
    if state.get("path") is not None:
        p.add("state.url", f"state.url and state.path are both set in {file}: keep one (state.path: "
              "SQLite for one process; state.url: PostgreSQL shared by a cluster of replicas)")
    if not url.startswith(_PG_SCHEMES):
        # never echo the value: it may carry a password
        p.add("state.url", "must be a PostgreSQL URL such as postgresql://td-graph@db.internal/tdgraph")
        return None
    return url


def _cluster(value: Any, state_url: str | None, p: Problems) -> ClusterConfig | None:
    """``cluster``: this replica's name and the lease TTL; only meaningful with shared state."""
    if value is None:
        return ClusterConfig() if state_url else None
    m = Mapping(value, "cluster", p, optional=("replica", "lease_ttl"))
    if state_url is None:
        p.add("cluster", "needs state.url (PostgreSQL): with state.path (SQLite) one process owns every "
              "tenant and there is no cluster to configure")
    replica = m.str("replica")
    if replica is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,62}", replica):
        p.add("cluster.replica", "must be 1-63 letters, digits or . _ - @ : (it names this replica in "
              "status, leases and connection names)")
        replica = None
    ttl = m.duration("lease_ttl")
    if ttl is not None and ttl < timedelta(seconds=MIN_LEASE_TTL):
        p.add("cluster.lease_ttl", f"must be at least {MIN_LEASE_TTL:.0f}s (replicas renew at a fraction of it)")
        ttl = None
    return ClusterConfig(
        replica=replica or default_replica(),
        lease_ttl=ttl.total_seconds() if ttl is not None else DEFAULT_LEASE_TTL,
    )


def _output(value: Any, p: Problems) -> dict[str, Any]:
    """``output``: where records go, in which shape, and (file) when td-graph rotates it."""
    m = Mapping(value or {}, "output", p, optional=("type", "path", "format", "max_bytes", "keep"))
    kind = m.str("type", default="stdout", choices=OUTPUT_TYPES)
    path = m.str("path")
    if kind == "file" and not path:
        p.add("output.path", "required when output.type is file")
    max_bytes = m.size("max_bytes")
    keep = m.int("keep", 10, minimum=1)
    if kind != "file":
        for k in ("max_bytes", "keep"):
            if m.get(k) is not None:
                p.add(m.key(k), f"applies only to type: file (td-graph rotates only its own file), not {kind}")
    return {
        "output_type": kind,
        "output_path": path,
        "output_format": m.str("format", default="raw", choices=OUTPUT_FORMATS),
        "output_max_bytes": max_bytes,
        "output_keep": keep,
    }


def _setting_kinds() -> dict[str, str]:
    """Setting name -> kind, from the settings model itself (one owner of the names)."""
    kinds = {"timedelta": "duration", "int": "int", "bool": "bool", "tuple[str, ...]": "list"}
    return {f.name: kinds[str(f.type).split(" | ")[0]] for f in fields(SourceSettings)}


_SETTING_KEYS = _setting_kinds()


def _sources(value: Any, p: Problems, names: Iterable[str] | None) -> SourcesConfig:
    if value is None:
        return SourcesConfig()
    m = Mapping(value, "sources", p, optional=("include", "exclude", "settings"))
    known = set(names) if names is not None else None
    include = tuple(m.str_list("include", default=("all",)))
    exclude = tuple(m.str_list("exclude", default=()))
    for field_name, items in (("include", include), ("exclude", exclude)):
        for item in items:
            if known is not None and not any(selects(item, n) for n in known):
                p.add(f"sources.{field_name}", f"unknown source {item!r} (see `td-graph sources`)")
    settings: dict[str, SourceSettings] = {}
    raw_settings = value.get("settings") if isinstance(value, dict) else None
    if raw_settings is not None and not isinstance(raw_settings, dict):
        p.add("sources.settings", "must be a mapping of source name to settings")
    elif raw_settings:
        for name, raw in raw_settings.items():
            key = f"sources.settings.{name}"
            if known is not None and name not in known:
                p.add(key, f"unknown source {name!r} (see `td-graph sources`)")
                continue
            if raw is None:
                raw = {}
            if not isinstance(raw, dict):
                p.add(key, "must be a mapping such as {interval: 60s, lookback: 24h}")
                continue
            sm = Mapping(raw, key, p, optional=tuple(_SETTING_KEYS))
            kwargs: dict[str, Any] = {}
            for k, kind in _SETTING_KEYS.items():
                if k not in raw:
                    continue
                if kind == "duration":
                    kwargs[k] = sm.duration(k)
                elif kind == "int":
                    kwargs[k] = sm.int(k, None, minimum=1)
                elif kind == "list":
                    items = sm.str_list(k, ())
                    if isinstance(raw[k], list) and not raw[k]:
                        p.add(f"{key}.{k}", "must name at least one property")
                    kwargs[k] = tuple(i.strip() for i in items) or None
                else:
                    kwargs[k] = sm.bool(k)
            if kwargs.get("interval") is not None and kwargs["interval"] < timedelta(seconds=1):
                p.add(f"{key}.interval", "must be at least 1s")
            settings[str(name)] = SourceSettings(**kwargs)
    return SourcesConfig(include=include, exclude=exclude, settings=settings)


def _throttling(value: Any, p: Problems) -> dict[str, ThrottleOverride]:
    """Override a class's pacing budget (e.g. when Microsoft raises a limit for the tenant)."""
    from ..spec import THROTTLE_CLASSES

    if value is None:
        return {}
    m = Mapping(value, "throttling", p, optional=THROTTLE_CLASSES)
    out: dict[str, ThrottleOverride] = {}
    for name in THROTTLE_CLASSES:
        if name not in m.data:
            continue
        key = f"throttling.{name}"
        sm = Mapping(m.data[name], key, p, required=("requests", "per"), optional=("requests", "per", "concurrency"))
        requests = sm.int("requests", None, minimum=1)
        per = sm.duration("per")
        concurrency = sm.int("concurrency", None, minimum=1)
        if per is not None and per.total_seconds() <= 0:
            p.add(f"{key}.per", "must be longer than 0s")
            per = None
        if requests is not None and per is not None:
            out[name] = ThrottleOverride(requests, per.total_seconds(), concurrency)
    return out
