"""The validated configuration as plain, typed objects. Built only by ``config.loader``."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterable
from urllib.parse import unquote, urlsplit

__all__ = [
    "Secret",
    "CertificateConfig",
    "TenantConfig",
    "IsolationCredential",
    "SourceSettings",
    "SourcesConfig",
    "HttpConfig",
    "ThrottleOverride",
    "Config",
    "ClusterConfig",
    "default_replica",
]

DEFAULT_LEASE_TTL = 30.0
MIN_LEASE_TTL = 3.0


def default_replica() -> str:
    """``<hostname>-<pid>``: unique per process, so two processes never share a replica's
    output position unless the operator names them alike."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ClusterConfig:
    """``cluster``: set (with defaults) whenever ``state.url`` is, None with SQLite."""

    replica: str = field(default_factory=default_replica)
    lease_ttl: float = DEFAULT_LEASE_TTL  # seconds


class Secret:
    """A value that must never be printed: repr/str/format all give ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = lambda self: "***"  # noqa: E731

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # never pickled in clear by accident
        raise TypeError("Secret values cannot be pickled")


@dataclass(frozen=True)
class CertificateConfig:
    path: str
    thumbprint: str
    passphrase: Secret | None = None


@dataclass(frozen=True)
class IsolationCredential:
    """A tenant's optional separate app registration for isolate/release only.

    The collector (``run``, syslog-ng) never uses it.  ``problem`` holds what is wrong with it
    (an unset ``${VAR}``, a missing secret): an error only for isolate/release, which report it.
    """

    client_id: str | None = None
    client_secret: Secret | None = None
    certificate: CertificateConfig | None = None
    problem: str | None = None


@dataclass(frozen=True)
class TenantConfig:
    name: str
    tenant_id: str
    client_id: str
    client_secret: Secret | None = None
    certificate: CertificateConfig | None = None
    cloud: str = "global"
    login_endpoint: str | None = None
    graph_endpoint: str | None = None
    ca_bundle: str | None = None
    proxy: str | None = None
    isolation: IsolationCredential | None = None


@dataclass(frozen=True)
class SourceSettings:
    """Per-source overrides from ``sources.settings``; None means the spec's default."""

    interval: timedelta | None = None
    lookback: timedelta | None = None
    overlap: timedelta | None = None
    delay: timedelta | None = None
    window_chunk: timedelta | None = None
    full_resync: timedelta | None = None
    page_size: int | None = None
    emit_unchanged: bool | None = None
    fetch_alerts: bool | None = None
    # ``$select``: replaces the spec's property list (directory delta: what is tracked).
    select: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SourcesConfig:
    include: tuple[str, ...] = ("all",)
    exclude: tuple[str, ...] = ()
    settings: dict[str, SourceSettings] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpConfig:
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retries: int = 6
    max_retry_wait: float = 300.0


@dataclass(frozen=True)
class ThrottleOverride:
    """``throttling.CLASS``: replaces the documented budget td-graph paces itself to."""

    requests: int
    per: float
    concurrency: int | None = None


@dataclass(frozen=True)
class Config:
    tenants: tuple[TenantConfig, ...]
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    state_path: str = "./td-graph-state.db"
    # PostgreSQL (cluster), instead of state.path; repr=False: the URL may hold a password
    state_url: str | None = field(default=None, repr=False)
    cluster: ClusterConfig | None = None  # set whenever state_url is
    output_type: str = "stdout"
    output_path: str | None = None
    output_format: str = "raw"  # raw | ecs | ocsf
    output_max_bytes: int | None = None  # file: rotate at this size (None: never)
    output_keep: int = 10  # file: rotated files kept
    metrics_listen: str | None = None
    unhealthy_after: float = 900.0
    protected_users: tuple[str, ...] = ()
    isolation_state: str | None = None
    hooks_dir: str | None = None
    http: HttpConfig = field(default_factory=HttpConfig)
    workers: int = 8
    throttling: dict[str, ThrottleOverride] = field(default_factory=dict)
    log_level: str = "info"
    source_file: str | None = None

    @property
    def isolation_state_path(self) -> str:
        """The isolation audit store: shared by the analyst's CLI and the running collector."""
        if self.isolation_state:
            return self.isolation_state
        base = self.state_path[:-3] if self.state_path.endswith(".db") else self.state_path
        return base + "-isolation.db"

    def secret_values(self) -> list[str]:
        """Every secret this config holds (the isolation app's included), for log redaction.

        ``logsetup.register_secrets(config.secret_values())`` keeps them out of every log line,
        even one a third-party library writes."""
        out: list[str] = []
        for t in self.tenants:
            creds: list[object] = [t.client_secret, t.certificate and t.certificate.passphrase]
            if t.isolation is not None:
                iso = t.isolation
                creds += [iso.client_secret, iso.certificate and iso.certificate.passphrase]
            out += [c.reveal() for c in creds if isinstance(c, Secret)]
        if self.state_url:
            password = urlsplit(self.state_url).password
            if password:
                out += [password, unquote(password)]
        return out

    def unknown_tenants(self, names: Iterable[str]) -> list[str]:
        """The names (``--tenants``, syslog-ng ``options("tenants")``) no tenant is configured as."""
        known = {t.name for t in self.tenants}
        return [n for n in names if n not in known]

    def select_tenants(self, names: Iterable[str] | None) -> list[TenantConfig]:
        """The tenants ``names`` selects (all when None or empty), in configuration order."""
        if not names:
            return list(self.tenants)
        wanted = set(names)
        return [t for t in self.tenants if t.name in wanted]

    def tenant(self, name: str) -> TenantConfig:
        for t in self.tenants:
            if t.name == name:
                return t
        raise KeyError(name)
