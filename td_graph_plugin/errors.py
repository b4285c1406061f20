"""The error hierarchy: every message is written for the operator who has to act on it.

Graph errors carry the HTTP status, Graph's ``error.code`` (which can be empty), the
request-id Microsoft support asks for, and a ``kind`` that doubles as the bounded
``kind`` label of ``td_graph_errors_total``.  No secret is ever placed in a message.
"""

from __future__ import annotations

__all__ = [
    "TdGraphError",
    "ConfigError",
    "PluginError",
    "StateError",
    "StateLocked",
    "LeaseLost",
    "OutputError",
    "AuthError",
    "GraphError",
    "GraphBadRequest",
    "GraphNotFound",
    "GraphThrottled",
    "GraphTransient",
    "GraphUnauthorized",
    "GraphForbidden",
    "GraphPermissionError",
    "GraphLicenceError",
    "GraphConditionalAccess",
    "GraphResyncRequired",
    "GraphResponseError",
    "GraphStopped",
    "SourceSkipped",
]


class TdGraphError(Exception):
    """Base of every error td-graph raises on purpose."""

    kind = "internal"


class ConfigError(TdGraphError):
    """The configuration file is wrong; the process exits 2 before any network call."""

    kind = "config"

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        where = ""
        if file and key:
            where = f"{file}: {key}: "
        elif file:
            where = f"{file}: "
        elif key:
            where = f"{key}: "
        super().__init__(where + message)


class PluginError(TdGraphError):
    """A plugin is broken: bad hook, duplicate source name, invalid source spec."""

    kind = "plugin"


class StateError(TdGraphError):
    """The state store is locked, corrupt or from a newer version. Never reset silently."""

    kind = "state"


class StateLocked(StateError):
    """Another td-graph process holds the state database's lock (a running collector).

    Typed so callers (``isolate`` defers its audit record to the running collector) decide on
    the type, never on the message text."""

    def __init__(self, path: str, owner: str) -> None:
        self.path = path
        self.owner = owner
        super().__init__(
            f"state database {path} is in use by another td-graph process (pid {owner}); "
            "give each process its own state.path"
        )


class LeaseLost(StateError):
    """This replica no longer holds the tenant's lease (another replica took it over, or the
    lease expired while this one was frozen): the page's checkpoint was not written and this
    replica must drop the tenant (the new owner re-reads from the last committed checkpoint)."""

    def __init__(self, tenant: str, replica: str, epoch: int | None) -> None:
        self.tenant = tenant
        self.replica = replica
        self.epoch = epoch
        held = f"epoch {epoch}" if epoch is not None else "no lease"
        super().__init__(
            f"tenant {tenant}: replica {replica} lost its lease ({held}); the tenant was taken over "
            f"by another replica (or the lease expired), so replica {replica} drops it without "
            "committing"
        )


class OutputError(TdGraphError):
    """The output could not accept records (disk full, closed pipe, bad path)."""

    kind = "output"


class AuthError(TdGraphError):
    """A token could not be acquired: wrong secret or certificate, unknown tenant, no route."""

    kind = "auth"


class GraphError(TdGraphError):
    """A Graph call failed after the client's own retries."""

    kind = "graph"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        request_id: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
    ):
        self.status = status
        self.code = code or ""
        self.request_id = request_id
        self.path = path
        self.retry_after = retry_after
        self.detail = message
        parts = [message]
        meta = []
        if status is not None:
            meta.append(f"HTTP {status}")
        if self.code:
            meta.append(f"code {self.code}")
        if path:
            meta.append(f"on {path}")
        if request_id:
            meta.append(f"request-id {request_id}")
        if meta:
            parts.append("(" + ", ".join(meta) + ")")
        super().__init__(" ".join(parts))


class GraphBadRequest(GraphError):
    """400: the request broke an endpoint constraint. A bug in a source spec, not transient."""

    kind = "bad_request"


class GraphNotFound(GraphError):
    kind = "not_found"


class GraphThrottled(GraphError):
    """429 that persisted past the retry budget."""

    kind = "throttled"


class GraphTransient(GraphError):
    """5xx, connection reset, timeout: worth retrying on the next interval."""

    kind = "transient"


class GraphUnauthorized(GraphError):
    """401 even with a freshly acquired token."""

    kind = "auth"


class GraphForbidden(GraphError):
    """403 that could not be attributed to a licence, a permission or Conditional Access."""

    kind = "forbidden"


class GraphPermissionError(GraphForbidden):
    """The app lacks an application permission (admin consent missing)."""

    kind = "permission"


class GraphLicenceError(GraphForbidden):
    """The tenant lacks the licence the endpoint needs (Entra ID P1/P2, Intune, Defender...)."""

    kind = "licence"


class GraphConditionalAccess(GraphForbidden):
    """A Conditional Access policy blocks the app (403 insufficient_claims)."""

    kind = "conditional_access"


class GraphResyncRequired(GraphError):
    """A delta token expired (410 Gone, syncStateNotFound, resyncRequired): start a full sync."""

    kind = "resync"


class GraphResponseError(GraphError):
    """Graph answered 2xx with a body that is not the JSON page it should be."""

    kind = "bad_response"


class GraphStopped(GraphTransient):
    """The stop event was set (SIGTERM) while a request was waiting or about to be sent."""

    kind = "stopped"


class SourceSkipped(TdGraphError):
    """Not an error: the plan says this source cannot run now (licence, permission, cloud)."""

    kind = "skipped"


class GraphForeignLink(GraphResponseError):
    """Graph's answer named a link (``@odata.nextLink``, a report download) that td-graph will
    not follow: another origin than the tenant's Graph endpoint, or a URL that parsers read
    differently.  The message names the host, never the link (it may carry tokens)."""


__all__.append("GraphForeignLink")
