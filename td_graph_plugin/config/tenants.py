"""The ``tenants`` list: identities, credentials, endpoints, and the optional isolation app.

A tenant's ``isolation:`` block is a separate app registration used by isolate/release only.
The collector's host need not hold its secret, so what the *environment* lacks there (an unset
``${VAR}``, an absent secret or certificate file) does not fail loading: it becomes
``IsolationCredential.problem``, which isolate/release report and refuse on.  What the *file*
gets wrong (an unknown key, a wrong type, a malformed id) is an error like anywhere else.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterable, Mapping as MappingType

from ..clouds import CLOUD_NAMES
from .model import CertificateConfig, IsolationCredential, Secret, TenantConfig
from .typed import Mapping, Problems, expand

__all__ = ["tenants", "is_isolation_block", "TENANT_KEYS", "ISOLATION_KEYS"]

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_THUMB = re.compile(r"^[0-9A-Fa-f:]{40,95}$")
_ISOLATION_BLOCK = re.compile(r"^tenants\[\d+\]\.isolation$")

TENANT_KEYS = (
    "name", "tenant_id", "client_id", "client_secret", "certificate", "cloud",
    "login_endpoint", "graph_endpoint", "ca_bundle", "proxy", "isolation",
)
ISOLATION_KEYS = ("client_id", "client_secret", "certificate")


def is_isolation_block(key: str) -> bool:
    """The dotted keys whose ``${VAR}`` the top-level expansion leaves to ``_isolation``."""
    return _ISOLATION_BLOCK.match(key) is not None


def tenants(value: Any, p: Problems, env: MappingType[str, str]) -> Iterable[TenantConfig]:
    if not isinstance(value, list) or not value:
        p.add("tenants", "must be a non-empty list of tenants")
        return
    seen: dict[str, int] = {}
    for i, raw in enumerate(value):
        key = f"tenants[{i}]"
        if not isinstance(raw, dict):
            p.add(key, "must be a mapping with name, tenant_id, client_id and a credential")
            continue
        m = Mapping(raw, key, p, required=("name", "tenant_id", "client_id"), optional=TENANT_KEYS)
        name = m.str("name")
        if name is not None and not _LABEL.match(name):
            p.add(f"{key}.name", "use letters, digits, '.', '_' or '-' (it becomes a metric label)")
        if name in seen:
            p.add(f"{key}.name", f"duplicate tenant name {name!r} (also tenants[{seen[name]}])")
        elif name is not None:
            seen[name] = i
        tenant_id = m.str("tenant_id")
        if tenant_id is not None and not (_GUID.match(tenant_id) or _DOMAIN.match(tenant_id)):
            p.add(f"{key}.tenant_id", "expected the directory (tenant) id GUID or a verified domain")
        client_id = _client_id(m)
        secret = m.str("client_secret", secret=True)
        cert = _certificate(raw.get("certificate"), f"{key}.certificate", p) if "certificate" in raw else None
        if raw.get("client_secret") is None and "certificate" not in raw:  # absent or left empty
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
        isolation = _isolation(raw.get("isolation"), f"{key}.isolation", p, env)
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
            isolation=isolation,
        )


def _client_id(m: Mapping) -> str | None:
    client_id = m.str("client_id")
    if client_id is not None and not _GUID.match(client_id):
        m.p.add(m.key("client_id"), "expected the application (client) id GUID")
        return None
    return client_id


def _certificate(value: Any, key: str, p: Problems, missing: Problems | None = None) -> CertificateConfig | None:
    """``{path, thumbprint, passphrase}``; an absent file goes to ``missing`` when given."""
    if not isinstance(value, dict):
        p.add(key, "must be a mapping {path: ..., thumbprint: ...}")
        return None
    m = Mapping(value, key, p, required=("path", "thumbprint"), optional=("path", "thumbprint", "passphrase"))
    path = m.str("path")
    thumb = m.str("thumbprint")
    passphrase = m.str("passphrase", secret=True)
    if path is not None and not os.path.isfile(path):
        (missing or p).add(f"{key}.path", f"file not found: {path}")
        path = None
    if thumb is not None and not _THUMB.match(thumb):
        p.add(f"{key}.thumbprint", "expected the certificate's SHA-1 thumbprint in hex (40 hex digits)")
    if path is None or thumb is None:
        return None
    return CertificateConfig(
        path=path,
        thumbprint=thumb.replace(":", "").upper(),
        passphrase=Secret(passphrase) if passphrase else None,
    )


def _isolation(value: Any, key: str, p: Problems, env: MappingType[str, str]) -> IsolationCredential | None:
    """The tenant's isolation app. File mistakes go to ``p``; environment gaps to ``problem``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        p.add(key, "must be a mapping {client_id: ..., client_secret: ... or certificate: {...}}")
        return None
    unset = Problems(p.file, p.lines)  # the unset variables: deferred, they name no value
    data = expand(value, key, env, unset)
    gaps = {k for k, _ in unset.items}  # keys whose value is empty only for want of a variable
    q = Problems(p.file, p.lines)  # everything else found in the block
    missing = Problems(p.file, p.lines)  # a credential the environment does not provide
    m = Mapping(data, key, q, required=("client_id",), optional=ISOLATION_KEYS)
    client_id = _client_id(m)
    secret = m.str("client_secret", secret=True)
    cert = _certificate(data["certificate"], m.key("certificate"), q, missing) if "certificate" in data else None
    if "client_secret" in value and "certificate" in value:
        q.add(key, "give client_secret or certificate, not both")
    elif data.get("client_secret") is None and data.get("certificate") is None:
        missing.add(key, "needs client_secret or certificate")
    for k, message in q.items:  # a problem at a key that lost its variable is a consequence
        if k not in gaps:
            p.add(k, message)
    deferred = unset.rendered() + missing.rendered()
    return IsolationCredential(
        client_id=client_id,
        client_secret=Secret(secret) if secret is not None and not deferred else None,
        certificate=cert if not deferred else None,
        problem="; ".join(deferred) or None,
    )
