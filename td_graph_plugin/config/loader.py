"""Load and validate td-graph YAML before anything touches the network.

Every problem names the file and the dotted key (``tenants[0].client_secret``) so an operator
can fix it without reading code; all problems are collected and reported together.  ``${NAME}``
in a string is replaced by the environment variable NAME; an unset one is an error naming it.
"""

from __future__ import annotations

import os
import re
from dataclasses import fields
from datetime import timedelta
from typing import Any, Callable, Iterable, Mapping

import yaml

from ..catalogue import selects
from ..clouds import CLOUD_NAMES
from ..durations import parse_duration
from ..errors import ConfigError
from .model import (
    CertificateConfig,
    Config,
    HttpConfig,
    Secret,
    SourceSettings,
    SourcesConfig,
    TenantConfig,
    ThrottleOverride,
)

__all__ = ["load_config", "parse_config", "CLOUD_NAMES", "OUTPUT_TYPES"]

OUTPUT_TYPES = ("stdout", "file")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_THUMB = re.compile(r"^[0-9A-Fa-f:]{40,95}$")


class _Problems:
    """Collects every problem in one pass, so one run shows the operator all of them."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{key}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            head = f"{self.file}: " if self.file else ""
            if len(self.items) == 1:
                raise ConfigError(head + self.items[0], file=self.file)
            lines = "\n  - ".join(self.items)
            raise ConfigError(f"{head}{len(self.items)} problems:\n  - {lines}", file=self.file)


def load_config(path: str, *, env: Mapping[str, str] | None = None, source_names: Iterable[str] | None = None) -> Config:
    """Read ``path`` and validate it. ``source_names`` (the catalogue) enables name checks."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError("file not found", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"not valid YAML{where}: {problem}", file=path) from None
    return parse_config(data, file=path, env=env, source_names=source_names)


def parse_config(
    data: Any,
    *,
    file: str = "<config>",
    env: Mapping[str, str] | None = None,
    source_names: Iterable[str] | None = None,
) -> Config:
    p = _Problems(file)
    env = os.environ if env is None else env
    if data is None:
        p.add("tenants", "the file is empty; at least one tenant is required")
        p.raise_if_any()
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of keys (tenants, sources, ...)", file=file)
    data = _expand(data, "", env, p)
    top = _Mapping(data, "", p, required=("tenants",), optional=(
        "sources", "state", "output", "metrics", "isolation", "hooks_dir", "http", "engine", "logging",
        "throttling",
    ))

    tenants = tuple(_tenants(top.get("tenants"), p))
    sources = _sources(top.get("sources"), p, source_names)
    state = _Mapping(top.get("state") or {}, "state", p, optional=("path",))
    output = _Mapping(top.get("output") or {}, "output", p, optional=("type", "path"))
    metrics = _Mapping(top.get("metrics") or {}, "metrics", p, optional=("listen", "unhealthy_after"))
    isolation = _Mapping(top.get("isolation") or {}, "isolation", p, optional=("protected_users", "state_path"))
    http = _Mapping(top.get("http") or {}, "http", p, optional=(
        "connect_timeout", "read_timeout", "max_retries", "max_retry_wait",
    ))
    engine = _Mapping(top.get("engine") or {}, "engine", p, optional=("workers",))
    logging_ = _Mapping(top.get("logging") or {}, "logging", p, optional=("level",))

    output_type = output.str("type", default="stdout", choices=OUTPUT_TYPES)
    output_path = output.str("path")
    if output_type == "file" and not output_path:
        p.add("output.path", "required when output.type is file")
    listen = metrics.str("listen")
    if listen is not None and not re.match(r"^[^\s:]*:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$", listen):
        p.add("metrics.listen", f"expected HOST:PORT such as 127.0.0.1:9464, got {listen!r}")
    unhealthy_after = metrics.seconds("unhealthy_after", 900.0)
    protected = isolation.str_list("protected_users", default=())
    hooks_dir = top.str("hooks_dir")

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
    p.raise_if_any()
    return Config(
        tenants=tenants,
        sources=sources,
        state_path=state_path,
        output_type=output_type,
        output_path=output_path,
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
    )


# --- sections ------------------------------------------------------------------------------

_TENANT_KEYS = (
    "name", "tenant_id", "client_id", "client_secret", "certificate", "cloud",
    "login_endpoint", "graph_endpoint", "ca_bundle", "proxy",
)


def _tenants(value: Any, p: _Problems) -> Iterable[TenantConfig]:
    if not isinstance(value, list) or not value:
        p.add("tenants", "must be a non-empty list of tenants")
        return
    seen: dict[str, int] = {}
    for i, raw in enumerate(value):
        key = f"tenants[{i}]"
        if not isinstance(raw, dict):
            p.add(key, "must be a mapping with name, tenant_id, client_id and a credential")
            continue
        m = _Mapping(raw, key, p, required=("name", "tenant_id", "client_id"), optional=_TENANT_KEYS)
        name = m.str("name")
        if name is not None and not _LABEL.match(name):
            p.add(f"{key}.name", "use letters, digits, '.', '_' or '-' (it becomes a metric label)")
        if name in seen:
            p.add(f"{key}.name", f"duplicate tenant name {name!r} (also tenants[{seen[name]}])")
        elif name is not None:
            seen[name] = i
        tenant_id = m.str("tenant_id")
        if tenant_id is not None and not (_GUID.match(tenant_id) or re.match(r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$", tenant_id)):
            p.add(f"{key}.tenant_id", "expected the directory (tenant) id GUID or a verified domain")
        client_id = m.str("client_id")
        if client_id is not None and not _GUID.match(client_id):
            p.add(f"{key}.client_id", "expected the application (client) id GUID")
        secret = m.str("client_secret", secret=True)
        cert = _certificate(raw.get("certificate"), f"{key}.certificate", p) if "certificate" in raw else None
        if secret is None and cert is None and "client_secret" not in raw:
            p.add(key, "needs client_secret or certificate")
        if secret is not None and cert is not None:
            p.add(key, "give client_secret or certificate, not both")
        cloud = m.str("cloud", default="global", choices=CLOUD_NAMES)
        login = m.url("login_endpoint")
        graph = m.url("graph_endpoint")
        ca = m.str("ca_bundle")
        if ca is not None and not os.path.isfile(ca):
            p.add(f"{key}.ca_bundle", f"file not found: {ca}")
        proxy = m.str("proxy")
        if proxy is not None and not re.match(r"^(https?|socks5h?)://", proxy):
            p.add(f"{key}.proxy", "expected a URL such as http://proxy.corp:3128")
        if name is None or tenant_id is None or client_id is None:
            continue
        yield TenantConfig(
            name=name,
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=Secret(secret) if secret is not None else None,
            certificate=cert,
            cloud=cloud or "global",
            login_endpoint=login,
            graph_endpoint=graph,
            ca_bundle=ca,
            proxy=proxy,
        )


def _certificate(value: Any, key: str, p: _Problems) -> CertificateConfig | None:
    if not isinstance(value, dict):
        p.add(key, "must be a mapping {path: ..., thumbprint: ...}")
        return None
    m = _Mapping(value, key, p, required=("path", "thumbprint"), optional=("path", "thumbprint", "passphrase"))
    path = m.str("path")
    thumb = m.str("thumbprint")
    passphrase = m.str("passphrase", secret=True)
    if path is not None and not os.path.isfile(path):
        p.add(f"{key}.path", f"file not found: {path}")
    if thumb is not None and not _THUMB.match(thumb):
        p.add(f"{key}.thumbprint", "expected the certificate's SHA-1 thumbprint in hex (40 hex digits)")
    if path is None or thumb is None:
        return None
    return CertificateConfig(
        path=path,
        thumbprint=thumb.replace(":", "").upper(),
        passphrase=Secret(passphrase) if passphrase else None,
    )


def _setting_kinds() -> dict[str, str]:
    """Setting name -> kind, from the settings model itself (one owner of the names)."""
    kinds = {"timedelta": "duration", "int": "int", "bool": "bool"}
    return {f.name: kinds[str(f.type).split(" ")[0]] for f in fields(SourceSettings)}


_SETTING_KEYS = _setting_kinds()


def _sources(value: Any, p: _Problems, names: Iterable[str] | None) -> SourcesConfig:
    if value is None:
        return SourcesConfig()
    m = _Mapping(value, "sources", p, optional=("include", "exclude", "settings"))
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
            sm = _Mapping(raw, key, p, optional=tuple(_SETTING_KEYS))
            kwargs: dict[str, Any] = {}
            for k, kind in _SETTING_KEYS.items():
                if k not in raw:
                    continue
                if kind == "duration":
                    kwargs[k] = sm.duration(k)
                elif kind == "int":
                    kwargs[k] = sm.int(k, None, minimum=1)
                else:
                    kwargs[k] = sm.bool(k)
            if kwargs.get("interval") is not None and kwargs["interval"] < timedelta(seconds=1):
                p.add(f"{key}.interval", "must be at least 1s")
            settings[str(name)] = SourceSettings(**kwargs)
    return SourcesConfig(include=include, exclude=exclude, settings=settings)


def _throttling(value: Any, p: _Problems) -> dict[str, ThrottleOverride]:
    """Override a class's pacing budget (e.g. when Microsoft raises a limit for the tenant)."""
    from ..spec import THROTTLE_CLASSES

    if value is None:
        return {}
    m = _Mapping(value, "throttling", p, optional=THROTTLE_CLASSES)
    out: dict[str, ThrottleOverride] = {}
    for name in THROTTLE_CLASSES:
        if name not in m.data:
            continue
        key = f"throttling.{name}"
        sm = _Mapping(m.data[name], key, p, required=("requests", "per"), optional=("requests", "per", "concurrency"))
        requests = sm.int("requests", None, minimum=1)
        per = sm.duration("per")
        concurrency = sm.int("concurrency", None, minimum=1)
        if per is not None and per.total_seconds() <= 0:
            p.add(f"{key}.per", "must be longer than 0s")
            per = None
        if requests is not None and per is not None:
            out[name] = ThrottleOverride(requests, per.total_seconds(), concurrency)
    return out


# --- typed access with problem collection ---------------------------------------------------

class _Mapping:
    def __init__(self, data: Any, prefix: str, p: _Problems, *, required: Iterable[str] = (), optional: Iterable[str] = ()):
        self.p = p
        self.prefix = prefix
        if not isinstance(data, dict):
            p.add(prefix or "(top level)", "must be a mapping")
            data = {}
        self.data = data
        allowed = set(required) | set(optional)
        for k in data:
            if k not in allowed:
                hint = _closest(str(k), allowed)
                p.add(self.key(str(k)), "unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))
        for k in required:
            if k not in data or data[k] is None:
                p.add(self.key(k), "required key is missing")

    def key(self, k: str) -> str:
        return f"{self.prefix}.{k}" if self.prefix else k

    def get(self, k: str) -> Any:
        return self.data.get(k)

    def _typed(self, k: str, check: Callable[[Any], bool], want: str) -> Any:
        v = self.data.get(k)
        if v is None:
            return None
        if not check(v):
            self.p.add(self.key(k), f"expected {want}, got {type(v).__name__} {_show(v)}")
            return None
        return v

    def str(self, k: str, default: Any = None, choices: Iterable[str] | None = None, secret: bool = False) -> Any:
        v = self.data.get(k)
        if v is None:
            return default
        if not isinstance(v, str):
            shown = "" if secret else f" {_show(v)}"
            self.p.add(self.key(k), f"expected a string, got {type(v).__name__}{shown}")
            return default
        if not v.strip():
            self.p.add(self.key(k), "must not be empty")
            return default
        if choices is not None and v not in choices:
            self.p.add(self.key(k), f"must be one of {', '.join(choices)}, got {v!r}")
            return default
        return v

    def url(self, k: str) -> str | None:
        v = self.str(k)
        if v is None:
            return None
        if not re.match(r"^https://[^/\s]+", v):
            self.p.add(self.key(k), f"expected an https:// URL, got {v!r}")
            return None
        return v.rstrip("/")

    def int(self, k: str, default: Any, minimum: int | None = None) -> Any:
        v = self._typed(k, lambda x: isinstance(x, int) and not isinstance(x, bool), "an integer")
        if v is None:
            return default
        if minimum is not None and v < minimum:
            self.p.add(self.key(k), f"must be at least {minimum}, got {v}")
            return default
        return v

    def bool(self, k: str) -> Any:
        return self._typed(k, lambda x: isinstance(x, bool), "true or false")

    def duration(self, k: str) -> timedelta | None:
        v = self.data.get(k)
        if v is None:
            return None
        try:
            return parse_duration(v)
        except ValueError as exc:
            self.p.add(self.key(k), str(exc))
            return None

    def seconds(self, k: str, default: float) -> float:
        d = self.duration(k)
        return default if d is None else d.total_seconds()

    def str_list(self, k: str, default: Iterable[str]) -> list[str]:
        v = self.data.get(k)
        if v is None:
            return list(default)
        if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
            self.p.add(self.key(k), "expected a list of strings")
            return list(default)
        return list(v)


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _closest(word: str, options: Iterable[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.75)
    return match[0] if match else None


def _expand(value: Any, key: str, env: Mapping[str, str], p: _Problems) -> Any:
    """Replace ``${NAME}`` everywhere; an unset variable is an error naming key and variable."""
    if isinstance(value, dict):
        return {k: _expand(v, f"{key}.{k}" if key else str(k), env, p) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{key}[{i}]", env, p) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                p.add(key, f"environment variable {name} is not set")
                return ""
            return env[name]

        return _ENV.sub(sub, value)
    return value
