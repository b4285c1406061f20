"""Configuration: the YAML contract, validated before any network call."""

from .loader import CLOUD_NAMES, OUTPUT_FORMATS, OUTPUT_TYPES, load_config, parse_config
from .model import (
    CertificateConfig,
    ClusterConfig,
    Config,
    HttpConfig,
    IsolationCredential,
    Secret,
    SourceSettings,
    SourcesConfig,
    TenantConfig,
)

__all__ = [
    "CLOUD_NAMES",
    "OUTPUT_FORMATS",
    "OUTPUT_TYPES",
    "load_config",
    "parse_config",
    "CertificateConfig",
    "ClusterConfig",
    "Config",
    "HttpConfig",
    "IsolationCredential",
    "Secret",
    "SourceSettings",
    "SourcesConfig",
    "TenantConfig",
]
