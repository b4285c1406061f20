"""What the isolation tests share: an in-process Graph over the simulator's routes and a World.

``InProcessGraph`` is a GraphClient look-alike that calls the simulator's route handlers
directly (no TLS, no retries); their error bodies go through td-graph's real ``classify``, so
the service sees the same typed errors and request ids as over HTTPS.  Knobs: ``fail`` (a
Graph error once), ``interrupt`` (raise any exception, e.g. ``KeyboardInterrupt``, at one
request, before Graph applies it) and ``on_request`` (a callback before each request).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from td_graph_plugin.config.model import Config, Secret, TenantConfig
from td_graph_plugin.graph.classify import classify
from td_graph_plugin.isolation import IsolationService
from td_graph_plugin.metrics import Metrics
from td_graph_plugin.simulator import GraphSimulator
from td_graph_plugin.simulator import directory_writes as dw
from td_graph_plugin.simulator import routes
from td_graph_plugin.state import StateStore

SMALL = {"users": 8, "sign_ins": 0, "directory_audits": 0, "alerts": 0}


@dataclass
class _Resp:
    status_code: int
    headers: dict[str, str]
    content: bytes
    td_json: dict


@dataclass
class _Reply:
    """``GraphClient.fetch``'s answer: the response and its decoded JSON object."""

    response: _Resp
    data: dict

    @property
    def request_id(self) -> str | None:
        return self.response.headers.get("request-id")


@dataclass
class _Page:
    items: list[dict]
    next_link: str | None
    delta_link: str | None
    request_id: str | None
    raw: dict


class StaticTokens:
    def token(self) -> str:
        return "tok-static-0123456789"

    def invalidate(self) -> None:
        pass


class InProcessGraph:
    """A GraphClient look-alike that calls the simulator's route handlers in-process."""

    def __init__(self, sim: GraphSimulator, tenant: Any) -> None:
        self.sim, self.tenant = sim, tenant
        self.tokens = StaticTokens()
        self.calls: list[tuple[str, str, dict, Any]] = []
        self.failures: list[tuple[str, re.Pattern, int]] = []  # (method, path regex, status): once each
        self.raises: list[tuple[str, re.Pattern, BaseException]] = []  # (method, path regex, exception): once each
        self.on_request: Callable[[str, str, dict], None] | None = None

    def fail(self, method: str, path_regex: str, status: int = 503) -> None:
        self.failures.append((method, re.compile(path_regex), status))

    def interrupt(self, method: str, path_regex: str, exc: BaseException | None = None) -> None:
        """The next matching request raises ``exc`` (default KeyboardInterrupt) before Graph sees it."""
        self.raises.append((method, re.compile(path_regex), exc if exc is not None else KeyboardInterrupt()))

    def url(self, version: str, path: str) -> str:
        return f"{self.sim.base_url}/{version}/{path.lstrip('/')}"

    def request(self, method: str, url: str, *, params=None, json=None, headers=None, source="-",
                throttle_class="default", expect_json=True, **kw: Any) -> _Resp:
        parts = urlsplit(url)
        path = unquote(parts.path)
        version, _, rest = path.lstrip("/").partition("/")
        rest = "/" + rest
        query = dict(parse_qsl(parts.query))
        query.update(params or {})
        query = {(k.lower() if k.startswith("$") else k): v for k, v in query.items()}
        self.calls.append((method, rest, query, json))
        if self.on_request is not None:
            self.on_request(method, rest, query)
        for i, (m, rx, exc) in enumerate(self.raises):
            if m == method and rx.fullmatch(rest):
                del self.raises[i]
                raise exc
        rid = str(uuid.uuid4())
        hdrs = {"request-id": rid}
        for i, (m, rx, status) in enumerate(self.failures):
            if m == method and rx.fullmatch(rest):
                del self.failures[i]
                body = orjson.dumps({"error": {"code": "serviceNotAvailable", "message": "injected"}})
                raise classify(status, body, hdrs, rest)
        route, match, _known = routes.match(method, version, rest)
        if route is None:
            raise classify(400, orjson.dumps({"error": {"code": "BadRequest", "message": f"no route {rest}"}}), hdrs, rest)
        for requirement in route.permissions:
            if not self.tenant.has_permission(requirement):
                raise classify(403, orjson.dumps({"error": {"code": "Authorization_RequestDenied",
                                                            "message": "Insufficient privileges to complete the operation."}}), hdrs, rest)
        body = orjson.dumps(json) if json is not None else b""
        lower = {k.lower(): v for k, v in (headers or {}).items()}
        req = routes.SimRequest(method, version, rest, query, lower, body, json, self.tenant, match, self.sim)
        status, data, rhdrs, _ctype = routes.to_wire(route.handler(req))
        hdrs.update(rhdrs)
        if not 200 <= status < 300:
            raise classify(status, data, hdrs, rest)
        return _Resp(status, hdrs, data, orjson.loads(data) if (data and expect_json) else {})

    def fetch(self, method: str, url: str, **kw: Any) -> _Reply:
        resp = self.request(method, url, **kw)
        return _Reply(resp, resp.td_json)

    def pages(self, url: str, *, params=None, prefetch=True, headers=None, **kw: Any):
        first = True
        while url:
            resp = self.request("GET", url, params=params if first else None, headers=headers)
            first = False
            data = resp.td_json
            yield _Page(data.get("value", []), data.get("@odata.nextLink"), None, resp.headers["request-id"], {})
            url = data.get("@odata.nextLink")

    @property
    def writes(self) -> list[tuple[str, str, Any]]:
        return [(m, p, b) for m, p, _q, b in self.calls if m != "GET"]


class World:
    """One simulated tenant, its directory, a service with state, emitted records and metrics."""

    def __init__(self, sim: GraphSimulator, tmp_path: Any, protected: tuple[str, ...] = (),
                 tenant_cfg: TenantConfig | None = None) -> None:
        self.sim = sim
        self.t = sim.add_tenant(volumes=SMALL)
        self.d = dw.directory(self.t)
        self.client = InProcessGraph(sim, self.t)
        self.tenant_cfg = tenant_cfg or TenantConfig(name="contoso", tenant_id=self.t.tenant_id,
                                                     client_id=self.t.client_id,
                                                     client_secret=Secret(self.t.client_secret))
        self.config = Config(tenants=(self.tenant_cfg,), protected_users=protected)
        self.state = StateStore(str(tmp_path / f"state-{uuid.uuid4().hex[:6]}.db"))
        self.metrics = Metrics()
        self.emitted: list[dict] = []
        self.factory_calls: list[TenantConfig] = []

        def factory(t: TenantConfig) -> InProcessGraph:
            self.factory_calls.append(t)
            return self.client

        self.svc = IsolationService(self.config, state=self.state, metrics=self.metrics, emit=self.emitted.append,
                                    client_factory=factory, sleep=lambda s: None)
        self.alice = self.d.add_user("alice@contoso.test", "Alice Example")

    def protect(self, *entries: str) -> None:
        self.config = Config(tenants=(self.tenant_cfg,), protected_users=tuple(entries))
        self.svc.config = self.config

    def isolate(self, user: str | None = None, **kw: Any):
        kw.setdefault("reason", "INC-7")
        return self.svc.isolate("contoso", user or self.alice["id"], kw.pop("reason"), kw.pop("steps", None),
                                kw.pop("dry_run", False), **kw)

    def release(self, user: str | None = None, **kw: Any):
        return self.svc.release("contoso", user or self.alice["id"], kw.pop("reason", "INC-7 closed"),
                                kw.pop("dry_run", False), **kw)

    def user(self, uid: str) -> dict:
        return self.d.find_user(uid)

    def sim_writes(self) -> list[dict]:
        return [w for w in self.d.writes if 200 <= w["status"] < 300]

    def rows(self, user_id: str | None = None) -> list[dict]:
        return list(self.state.isolations("contoso", user_id or self.alice["id"]))

    def metric(self, action: str, result: str) -> float:
        return self.metrics.registry.get_sample_value(
            "td_graph_isolation_actions_total", {"tenant": "contoso", "action": action, "result": result}) or 0.0


def steps(result) -> dict[str, Any]:
    return {s.name: s for s in result.steps}
