"""National clouds' endpoints: where to get a token and where Graph lives (graph-facts §0.1).

The table of clouds itself is ``td_graph_plugin/clouds.py`` (the config and the source specs
read their names from it too).

A token is only valid in the cloud that issued it, so the scope is always the cloud's own
Graph resource, even when ``graph_endpoint`` points somewhere else (a proxy, a private
endpoint, the simulator).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..clouds import CLOUDS, Cloud
from ..config.model import TenantConfig
from ..errors import ConfigError

__all__ = [
    "Cloud", "CLOUDS", "Endpoints", "resolve_endpoints", "same_origin", "link_problem", "origin",
    "format_origin", "display_host",
]


@dataclass(frozen=True)
class Endpoints:
    login_base: str  # "https://login.microsoftonline.com", no trailing slash
    graph_base: str  # "https://graph.microsoft.com", no trailing slash
    scope: str  # always the cloud's Graph resource + "/.default"
    authority: str  # f"{login_base}/{tenant_id}"
    instance_discovery: bool  # False when login_endpoint is overridden


def _override(tenant: TenantConfig, key: str, value: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise ConfigError(
            f"tenant {tenant.name!r}: {key} must be an https:// URL (TLS is always verified), "
            f"got {value!r}",
            key=key,
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            f"tenant {tenant.name!r}: {key} must not carry a query or fragment", key=key
        )
    return value


def resolve_endpoints(tenant: TenantConfig) -> Endpoints:
    """The login and Graph bases, scope and MSAL authority for one tenant."""
    cloud = CLOUDS.get((tenant.cloud or "global").lower())
    if cloud is None:
        raise ConfigError(
            f"tenant {tenant.name!r}: unknown cloud {tenant.cloud!r} "
            f"(expected one of {', '.join(CLOUDS)})",
            key="cloud",
        )
    login_base = f"https://{cloud.login_host}"
    graph_base = f"https://{cloud.graph_host}"
    instance_discovery = True
    if tenant.login_endpoint:
        login_base = _override(tenant, "login_endpoint", tenant.login_endpoint)
        instance_discovery = False
    if tenant.graph_endpoint:
        graph_base = _override(tenant, "graph_endpoint", tenant.graph_endpoint)
    return Endpoints(
        login_base=login_base,
        graph_base=graph_base,
        scope=cloud.scope,
        authority=f"{login_base}/{tenant.tenant_id}",
        instance_discovery=instance_discovery,
    )


_DEFAULT_PORTS = {"https": 443, "http": 80}

# What a followed link may not contain at all.  urllib.parse and urllib3 split an authority
# differently at a backslash ("https://evil\@graph.microsoft.com/": urllib.parse sees Graph,
# urllib3 connects to "evil"), so the check refuses every character either parser treats
# specially instead of trying to agree with both: userinfo ('@'), '\', a fragment ('#'),
# whitespace and control characters; and anything that is not plain ASCII (IDNA folding).
_FORBIDDEN = {
    "\\": "a backslash",
    "@": "'@' (user information)",
    "#": "a fragment",
}


# The first character of a URL that _FORBIDDEN, whitespace or a control character rules out,
# found in C: the check runs on every request URL and page link (a per-character Python loop
# was 1.4% of a 500-tenant pass).
_BAD_CHAR = re.compile(r"[\x00-\x20\x7f\\@#]")


def _text_problem(url: str) -> str | None:
    if not url.isascii():
        return "characters that are not plain ASCII"
    bad = _BAD_CHAR.search(url)
    if bad is None:
        return None
    return _FORBIDDEN.get(bad.group(), "whitespace or a control character")


def origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) exactly as urllib3 (and so requests) will connect for ``url``:
    scheme and host lower-cased, the scheme's default port filled in.  None when urllib3
    cannot parse it or it names no host."""
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    try:
        u = parse_url(url)
    except (LocationParseError, ValueError):
        return None
    if not u.scheme or not u.host:
        return None
    scheme = u.scheme.lower()
    return scheme, u.host.lower(), u.port if u.port is not None else _DEFAULT_PORTS.get(scheme)


# The few bases links are checked against (each tenant's Graph and login endpoints), parsed once.
_base_origin = functools.lru_cache(maxsize=256)(origin)


def format_origin(o: tuple[str, str, int | None]) -> str:
    """``host`` or ``host:port`` (the port when it is not the scheme's default)."""
    scheme, host, port = o
    return host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"


def _authority(url: str) -> str:
    """The text between "//" and the first of "/?#" (unambiguous once '@' and '\\' are out)."""
    rest = url.split("//", 1)[1] if "//" in url else url
    for sep in "/?#":
        rest = rest.split(sep, 1)[0]
    return rest


def display_host(url: object) -> str:
    """The host (and non-default port) a URL names, for an error message: never the path or
    query, which may carry tokens (skiptokens, report signatures)."""
    if not isinstance(url, str):
        return "(not a string)"
    if _text_problem(url) is None and "%" not in _authority(url):
        o = origin(url)
        if o is not None:
            return format_origin(o)
    # An unusual URL: its authority as written, made printable.
    rest = _authority(url)
    return (rest[:80].encode("ascii", "backslashreplace").decode("ascii") or "(no host)")


def link_problem(url: object, base: str, what: str = "the Graph endpoint") -> str | None:
    """None when ``url`` may be requested with the token for ``base`` (the tenant's Graph
    endpoint); otherwise why not, in words that hold no part of ``url`` but its host.

    The rule: plain ASCII without '\\', '@', '#', whitespace or control characters, and the
    scheme, host and port urllib3 will connect to equal ``base``'s (host case-insensitive,
    default port normalised).  No other normalisation: a percent-encoded or IDNA spelling of
    the host is a different host."""
    if not isinstance(url, str) or not url:
        return "it is not a URL"
    problem = _text_problem(url)
    if problem:
        return f"it contains {problem}"
    if "%" in _authority(url):  # urllib3 would decode it: a host must be spelt out as it is
        return "it contains a percent-encoded host"
    got, want = origin(url), _base_origin(base)
    if got is None:
        return "it cannot be parsed as a URL"
    if want is None or got != want:
        where = f"{got[0]}://{format_origin(got)}"
        expected = f"{want[0]}://{format_origin(want)}" if want else base
        return f"it points to {where}, not to {what} {expected}"
    return None


def same_origin(url: str, base: str) -> bool:
    """True when ``url`` is safe to send ``base``'s token to (``link_problem`` is None)."""
    return link_problem(url, base) is None
