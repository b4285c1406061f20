"""What every endpoint handler shares: the request, the snapshot cache, option checks, links, rendering.

Split from handlers.py (window/list paging, computed) and delta.py (delta queries) so both
build on it without importing each other.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .endpoints import Endpoint, rows
from .odata import ODataError, TokenCodec, encode_query

if TYPE_CHECKING:  # pragma: no cover
    from .tenant import SimTenant

__all__ = ["GraphRequest", "SnapshotCache", "render_related"]


@dataclass
class GraphRequest:
    tenant: "SimTenant"
    version: str
    endpoint: Endpoint
    query: dict[str, str]  # option names lower-cased
    prefer: str  # the Prefer header, lower-cased ("" if absent)
    base_url: str
    now: float
    codec: TokenCodec
    snapshots: "SnapshotCache"
    page_size: int | None  # simulator override of the endpoint's default page size
    take_empty_page: Callable[[], bool]

    @property
    def include_unknown_enums(self) -> bool:
        return "include-unknown-enum-members" in self.prefer


class SnapshotCache:
    """LRU of query snapshots keyed by (tenant, version, path, query, as_of).

    Bounded by the total number of object references held (not entries), so a benchmark
    running many full scans of 200,000 sign-ins cannot grow memory without limit.
    """

    def __init__(self, max_refs: int = 4_000_000):
        self._max_refs = max_refs
        self._refs = 0
        self._lock = threading.Lock()
        self._data: OrderedDict[tuple, list] = OrderedDict()

    def get(self, key: tuple, build: Callable[[], list]) -> list:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                return hit
        value = build()
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._refs -= len(old) + 1
            self._data[key] = value
            self._refs += len(value) + 1
            while self._refs > self._max_refs and len(self._data) > 1:
                _, dropped = self._data.popitem(last=False)
                self._refs -= len(dropped) + 1
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._refs = 0


def _check_options(req: GraphRequest) -> None:
    ep = req.endpoint
    for name in req.query:
        if name in ep.rejected_options:
            code, message = ep.rejected_options[name]
            raise ODataError(message, code=code)
        if name == "$skiptoken" or name in ep.options:
            continue
        if name == "$top" and ep.max_top is None:
            raise ODataError("Query option '$top' is not supported on this resource.")
        if name.startswith("$"):
            raise ODataError(f"The query parameter '{name}' is not supported on '{ep.path}'.")
        raise ODataError(f"The query parameter '{name}' is not supported.")


def _context(req: GraphRequest, select: tuple[str, ...] = ()) -> str:
    suffix = req.endpoint.context + (f"({','.join(select)})" if select else "")
    return f"{req.base_url}/{req.version}/$metadata#{suffix}"


def _link(req: GraphRequest, q: dict[str, str], name: str, token: str) -> str:
    items = [(k, v) for k, v in q.items()]
    items.append((name, token))
    return f"{req.base_url}/{req.version}{req.endpoint.path}?{encode_query(items)}"


def _render(req: GraphRequest, objs: list[dict], select: tuple[str, ...]) -> list[dict]:
    ep = req.endpoint
    out = []
    if select:
        for o in objs:
            out.append({k: o.get(k) for k in select})
    elif ep.default_properties:
        props = ep.default_properties
        for o in objs:
            out.append({k: o.get(k) for k in props})
    else:
        hidden = ep.hidden_fields
        for o in objs:
            d = o.copy()
            del d["visible_at"]
            for h in hidden:
                d.pop(h, None)
            out.append(d)
    if ep.evolvable_enums and not req.include_unknown_enums:
        for d in out:
            for fieldname, newer in ep.evolvable_enums.items():
                if d.get(fieldname) in newer:
                    d[fieldname] = "unknownFutureValue"
    return out


def render_related(req: GraphRequest, objs: list[dict]) -> list[dict]:
    """Objects of another collection as Graph serves them (internal fields stripped, enums)."""
    enums: dict = {}
    for ep in rows():
        if ep.collection == "alerts":
            enums = dict(ep.evolvable_enums)
            break
    out = []
    for o in objs:
        d = o.copy()
        d.pop("visible_at", None)
        if not req.include_unknown_enums:
            for fieldname, newer in enums.items():
                if d.get(fieldname) in newer:
                    d[fieldname] = "unknownFutureValue"
        out.append(d)
    return out


def _decode_page_token(req: GraphRequest, token: str, kind: str) -> dict:
    payload = req.codec.decode(token)
    if (
        payload.get("k") != kind
        or payload.get("t") != req.tenant.tenant_id
        or payload.get("v") != req.version
        or payload.get("p") != req.endpoint.path
    ):
        raise ODataError("The provided $skiptoken is invalid: it was not issued for this resource.")
    return payload


def _strip(obj: dict) -> dict:
    d = obj.copy()
    d.pop("visible_at", None)
    return d
