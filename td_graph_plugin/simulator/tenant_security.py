"""Defender XDR data of a simulated tenant: alerts_v2, the incidents that group them, Secure Score.

Offset paging (``SecurityData.page_by_skip``): by default the simulator pages every collection
through a snapshot sealed in a ``$skiptoken``, which hides two behaviours of Graph's security
API that a collector must survive.  In skip mode ``/security/alerts_v2`` and
``/security/incidents`` page like Graph's offset paging: the nextLink repeats the query with
``$skip=<offset>`` and each page re-evaluates the query, so an alert updated mid-read (see
``sim.at_request`` + ``update_alerts``: deterministic, in the handler thread) leaves the window
and every later item moves up one offset.  ``stop_after=N`` makes the server stop serving past
offset N: the page that reaches N is the last (no nextLink), while ``@odata.count`` still says
how many match - what Elastic reported of the real API ("past a certain $skip offset the Graph
security API stopped returning further pages": https://github.com/elastic/integrations/pull/20348,
https://github.com/elastic/integrations/issues/20234; graph-facts O3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import generators as gen
from .endpoints import lookup
from .odata import ODataError, encode_query, parse_filter, parse_top
from .routes import SimRequest, SimResponse, graph_error, register_route, unregister_route
from .gen_security import (CONTROL_PROFILES, change_control_profile, make_control_profile, make_incident,
                           make_redirected_incident, make_secure_score, update_incident)
from .tenant_base import TenantBase
from .timefmt import parse_ts, to_epoch

if TYPE_CHECKING:  # pragma: no cover
    from .endpoints import Endpoint

__all__ = ["SecurityData", "SKIP_PAGED_PATHS"]

# The offset-paged collections (their documented options include $skip: graph-facts §1 [S1][S3]).
SKIP_PAGED_PATHS = ("/security/alerts_v2", "/security/incidents")


class SecurityData(TenantBase):
    """``/security/alerts_v2``, ``/security/incidents``, ``/security/secureScores`` and control profiles."""

    # -- Defender XDR
    def add_alerts(self, n: int, *, start=None, end=None, visible_at=None, latency=None) -> list[dict]:
        """Add ``n`` alerts_v2 and the incidents that group them (1-3 alerts each; about one in
        eight incidents also has a ``redirected`` twin pointing at it, as Defender's merges do)."""
        with self.lock:
            objs = gen.make_alerts(self.rng, self._times(n, start, end), self._user_pool(), self.tenant_id,
                                   self.domain, self._now(), self._incident_counter)
            self._set_visibility(objs, "createdDateTime", visible_at, latency)
            incidents = self._group_into_incidents(objs)
            self.collections["alerts"].extend(objs)
            self.add_objects("incidents", incidents)
        return objs

    def _group_into_incidents(self, alerts: list[dict]) -> list[dict]:
        rng = self.xrng
        ordered = sorted(alerts, key=lambda a: a["createdDateTime"])
        out: list[dict] = []
        i = 0
        while i < len(ordered):
            size = min(len(ordered) - i, 1 + (rng.random() < 0.35) + (rng.random() < 0.15))
            group = ordered[i:i + size]
            i += size
            iid = str(self._incident_counter)
            self._incident_counter += 1
            for a in group:
                a["incidentId"] = iid
                a["incidentWebUrl"] = f"https://security.microsoft.com/incidents/{iid}?tid={self.tenant_id}"
            incident = make_incident(rng, iid, group, self.tenant_id)
            out.append(incident)
            if rng.random() < 0.125:
                twin = str(self._incident_counter)
                self._incident_counter += 1
                out.append(make_redirected_incident(twin, incident, self.tenant_id))
        return out

    def update_alerts(self, n_or_ids, *, lag: tuple[float, float] = (5.0, 60.0)) -> list[dict]:
        """Progress alerts (status, comment) and set lastUpdateDateTime = now - uniform(*lag).

        ``n_or_ids``: how many (picked from the visible alerts) or which ids.  Ids are kept.
        Their incidents' lastUpdateDateTime follows.
        """
        with self.lock:
            coll = self.collections["alerts"]
            now = self._now()
            if isinstance(n_or_ids, int):
                pool = [a for a in coll.items if a["visible_at"] <= now]
                chosen = self.rng.sample(pool, min(n_or_ids, len(pool)))
            else:
                idx = coll.index()
                chosen = [coll.items[idx[i]] for i in n_or_ids]
            new = [gen.update_alert(a, now - self.rng.uniform(*lag)) for a in chosen]
            coll.replace(new)
            self._record("alerts", [a["id"] for a in new])
            self._touch_incidents(new)
        return new

    def _touch_incidents(self, alerts: list[dict]) -> None:
        coll = self.collection("incidents")
        changed = []
        for a in alerts:
            inc = coll.get(a.get("incidentId") or "")
            if inc is not None and a["lastUpdateDateTime"] > inc["lastUpdateDateTime"]:
                changed.append({**inc, "lastUpdateDateTime": a["lastUpdateDateTime"]})
        if changed:
            latest: dict[str, dict] = {}
            for c in changed:
                if c["id"] not in latest or c["lastUpdateDateTime"] > latest[c["id"]]["lastUpdateDateTime"]:
                    latest[c["id"]] = c
            coll.replace(latest.values())
            self._record("incidents", list(latest))

    def update_incidents(self, n_or_ids, *, lag: tuple[float, float] = (5.0, 60.0)) -> list[dict]:
        """Progress incidents (active -> inProgress -> resolved, assignment, a comment; resolved
        ones get classification/determination) and set lastUpdateDateTime = now - uniform(*lag).
        Redirected incidents are never picked.  Ids are kept."""
        with self.lock:
            coll = self.collection("incidents")
            now = self._now()
            if isinstance(n_or_ids, int):
                pool = [o for o in coll.items if o["visible_at"] <= now and o.get("status") != "redirected"]
                chosen = self.xrng.sample(pool, min(n_or_ids, len(pool)))
            else:
                chosen = self._pick("incidents", n_or_ids)
            new = [update_incident(self.xrng, o, now - self.xrng.uniform(*lag)) for o in chosen]
            coll.replace(new)
            self._record("incidents", [o["id"] for o in new])
        return new

    def add_secure_scores(self, days: int, *, end=None) -> list[dict]:
        """One secureScore per UTC day for ``days`` days up to ``end`` (default today), id ``{tenantId}_{date}``."""
        with self.lock:
            rng = self.xrng
            last_day = int(to_epoch(end, self._now()) // 86400) * 86400
            have = {o["id"] for o in self.collection("secure_scores").items}
            score = 45.0 + rng.uniform(0, 30)
            objs = []
            for d in range(days - 1, -1, -1):
                day = last_day - d * 86400
                score = max(5.0, score + rng.uniform(-1.5, 2.5))
                o = make_secure_score(rng, self.tenant_id, day, score, len(self.users))
                if o["id"] not in have:
                    objs.append(o)
            self.add_objects("secure_scores", objs)
        return objs

    def add_control_profiles(self) -> list[dict]:
        with self.lock:
            rng = self.xrng
            have = {o["id"] for o in self.collection("secure_score_control_profiles").items}
            now = self._now()
            objs = [make_control_profile(rng, row, self.tenant_id, now - rng.uniform(2 * 86400, 90 * 86400))
                    for row in CONTROL_PROFILES if row[0] not in have]
            self.add_objects("secure_score_control_profiles", objs)
        return objs

    def change_control_profiles(self, n_or_ids) -> list[dict]:
        """A control's state changes (controlStateUpdates grows, lastModifiedDateTime moves)."""
        return self.change_objects("secure_score_control_profiles", n_or_ids)

    # -- Graph-like offset paging (module docstring)
    def page_by_skip(self, *, stop_after: int | None = None) -> None:
        """Serve alerts_v2 and incidents with live ``$skip`` paging; ``stop_after``: the
        deepest offset served (None: all).  Until ``page_by_skiptoken()``; the route is
        process-wide, a tenant that never called this pages by ``$skip`` too meanwhile."""
        self.ext["skip_paging"] = {"stop_after": stop_after}
        for path in SKIP_PAGED_PATHS:
            ep = lookup("v1.0", path)
            assert ep is not None
            register_route("GET", path, _skip_page, permissions=ep.permissions,
                           missing_permission=ep.missing_permission, capability=ep.capability,
                           unlicensed=ep.unlicensed, throttle=ep.throttle)

    def page_by_skiptoken(self) -> None:
        """Back to the default snapshot paging."""
        self.ext.pop("skip_paging", None)
        for path in SKIP_PAGED_PATHS:
            unregister_route("GET", path)

    def _change(self, collection: str, chosen: list[dict], now: float) -> list[dict]:
        if collection == "alerts":
            return [gen.update_alert(o, now - self.rng.uniform(5.0, 60.0)) for o in chosen]
        if collection == "incidents":
            return [update_incident(self.xrng, o, now - self.xrng.uniform(5.0, 60.0)) for o in chosen
                    if o.get("status") != "redirected"]
        if collection == "secure_score_control_profiles":
            admin = self._user_pool()[0][2]
            return [change_control_profile(self.xrng, o, now - 30.0, admin) for o in chosen]
        return super()._change(collection, chosen, now)

    def _after_change(self, collection: str, new: list[dict]) -> None:
        super()._after_change(collection, new)
        if collection == "alerts":
            self._touch_incidents(new)


def _skip_page(req: SimRequest) -> SimResponse:
    """One page of a live ``$skip`` query on an offset-paged security collection."""
    ep = lookup(req.version, req.path)
    if ep is None:  # pragma: no cover - the route only matches the two paths
        return graph_error(404, "NotFound", "Resource not found.")
    try:
        return _skip_page_of(req, ep)
    except ODataError as exc:
        return graph_error(exc.status, exc.code, exc.message)


def _skip_page_of(req: SimRequest, ep: "Endpoint") -> SimResponse:
    q = dict(req.query)
    for name in q:
        if name in ep.rejected_options:
            code, message = ep.rejected_options[name]
            raise ODataError(message, code=code)
        if name.startswith("$") and name not in ep.options:
            raise ODataError(f"The query parameter '{name}' is not supported on '{ep.path}'.")
    top = parse_top(q["$top"], ep.max_top or 0, ep.top_error_code) if "$top" in q else ep.default_top
    try:
        skip = int(q.get("$skip", "0"))
    except ValueError:
        skip = -1
    if skip < 0:
        raise ODataError(f"Invalid value '{q.get('$skip')}' for $skip query option found. "
                         "The $skip query option requires a non-negative integer value.")
    if "$expand" in q and "$filter" in q and ep.expand_with_filter is not None:
        status, code, message = ep.expand_with_filter
        raise ODataError(message, code=code, status=status)
    count = q.get("$count", "").lower() == "true"
    filt = parse_filter(q["$filter"], dict(ep.time_fields), (), ep.eq_fields) if "$filter" in q else None
    now = req.sim.now()
    matching = []
    for o in req.tenant.collection(ep.collection).items:  # live: this request's view, in served order
        if o["visible_at"] > now:
            continue
        if filt is not None and not all(_holds(o, c) for c in filt.clauses):
            continue
        if filt is not None and not all(_equal(o.get(f), v) for f, v in filt.equals):
            continue
        matching.append(o)
    stop_after = (req.tenant.ext.get("skip_paging") or {}).get("stop_after")
    served = matching if stop_after is None else matching[:stop_after]
    page = served[skip: skip + top]
    prefer = req.headers.get("prefer", "").lower()
    value = []
    for o in page:
        d = o.copy()
        d.pop("visible_at", None)
        if "include-unknown-enum-members" not in prefer:
            for fieldname, newer in ep.evolvable_enums.items():
                if d.get(fieldname) in newer:
                    d[fieldname] = "unknownFutureValue"
        value.append(d)
    body: dict = {"@odata.context": f"{req.sim.base_url}/{req.version}/$metadata#{ep.context}"}
    if count:
        body["@odata.count"] = len(matching)
    body["value"] = value
    if skip + len(page) < len(served):
        items = [(k, v) for k, v in q.items() if k != "$skip"] + [("$skip", str(skip + len(page)))]
        body["@odata.nextLink"] = f"{req.sim.base_url}/{req.version}{ep.path}?{encode_query(items)}"
    return SimResponse(200, body)


def _holds(o: dict, clause) -> bool:
    text = o.get(clause.field)
    if not text:
        return False
    v = parse_ts(text)
    return {"eq": v == clause.value, "ge": v >= clause.value, "gt": v > clause.value,
            "le": v <= clause.value, "lt": v < clause.value}.get(clause.op, False)


def _equal(value, want) -> bool:
    if isinstance(want, str):
        return isinstance(value, str) and value.casefold() == want.casefold()
    return value is want
