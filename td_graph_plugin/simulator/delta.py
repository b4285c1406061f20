"""Delta queries (``/users/delta``, ``/groups/delta``, ...): replaying a collection's change log.

A delta round pages the objects changed since the token's sequence number (a full sync
from 0), ending with an ``@odata.deltaLink``; expired tokens raise ``DeltaExpired``, which
the pipeline answers with 410 + Location or 400 syncStateNotFound.
"""

from __future__ import annotations

from .odata import ODataError, encode_query, parse_select, parse_top
from .request_base import GraphRequest, _check_options, _context, _decode_page_token, _link, _strip
from .responses import Response, json_response

__all__ = ["DeltaExpired", "handle_delta"]


class DeltaExpired(Exception):
    """An outstanding delta token was invalidated; ``mode`` says how Graph refuses it."""

    def __init__(self, mode: str, select: str | None):
        super().__init__(mode)
        self.mode = mode
        self.select = select


def _delta_link(req: GraphRequest, seq: int, select: str | None, top: int | None = None) -> str:
    payload = {"k": "delta", "t": req.tenant.tenant_id, "v": req.version, "p": req.endpoint.path,
               "s": seq, "e": req.tenant.delta_epoch, "sel": select, "i": req.now}
    if top is not None:
        payload["n"] = top
    tok = req.codec.encode(payload)
    return f"{req.base_url}/{req.version}{req.endpoint.path}?{encode_query([('$deltatoken', tok)])}"


def _check_epoch(req: GraphRequest, payload: dict) -> None:
    mode = req.tenant.expiry_mode(int(payload.get("e", -1)))
    if mode is None and req.now - float(payload.get("i", req.now)) > req.tenant.delta_token_ttl:
        mode = "syncStateNotFound"
    if mode is not None:
        raise DeltaExpired(mode, payload.get("sel"))


def handle_delta(req: GraphRequest) -> Response:
    """Delta over any collection with a change log (users, groups, devices, applications, ...)."""
    _check_options(req)
    q = dict(req.query)
    ep = req.endpoint
    tenant = req.tenant
    coll_name = ep.collection
    select_text = q.get("$select")
    top = parse_top(q["$top"], ep.max_top) if "$top" in q and ep.max_top is not None else None
    kind = "initial"
    since = upto = 0
    offset = 0
    as_of = req.now
    if "$skiptoken" in q:
        if len(q) > 1:
            raise ODataError("Query options must not be combined with $skiptoken on a delta request; "
                             "they are encoded in the token. Follow @odata.nextLink exactly as returned.")
        payload = _decode_page_token(req, q["$skiptoken"], "dpage")
        _check_epoch(req, payload)
        select_text = payload.get("sel")
        top = payload.get("n")
        kind, since, upto, offset = payload["m"], int(payload["f"]), int(payload["s"]), int(payload["o"])
        as_of = float(payload["a"])
    elif "$deltatoken" in q:
        raw = q["$deltatoken"]
        if raw.lower() == "latest":
            body = {"@odata.context": _context(req), "value": [],
                    "@odata.deltaLink": _delta_link(req, tenant.delta_seq_of(coll_name), select_text, top)}
            return json_response(200, body)
        if raw:
            if len(q) > 1:
                raise ODataError("Query options must not be combined with a $deltatoken; they are encoded in "
                                 "the token. Call @odata.deltaLink exactly as returned.")
            payload = _decode_page_token(req, raw, "delta")
            _check_epoch(req, payload)
            select_text = payload.get("sel")
            top = payload.get("n")
            kind, since, upto = "incremental", int(payload["s"]), tenant.delta_seq_of(coll_name)
    try:
        select = parse_select(select_text, ep.known_fields, ep.entity) if select_text else ()
    except ODataError as exc:  # directory services answer an unknown property with Request_BadRequest
        raise ODataError(exc.message, code="Request_BadRequest") from None
    if select and "id" not in select:
        select = ("id",) + select
    if "$skiptoken" not in q:
        as_of = req.now
        if kind == "initial":
            upto = tenant.delta_seq_of(coll_name)
    replay = tenant.replay_every
    tracked = (select or ep.default_properties) or None

    def build() -> list[str]:
        if kind == "initial":
            # Membership of the initial sync as of its first page; a rebuild after cache
            # eviction may differ slightly, which delta's documented replays allow.
            items = tenant.collection(coll_name).items
            return _with_replays([o["id"] for o in items if o["visible_at"] <= as_of], replay)
        # Only the selected properties (or the default set) are tracked (user: delta, "a default
        # set of properties is tracked and returned"): other changes are no delta record.
        return _with_replays(tenant.changed_ids(since, upto, coll_name, tracked), replay)

    key = (tenant.tenant_id, "delta", coll_name, req.version, kind, since, upto, as_of, replay, tracked)
    ids = req.snapshots.get(key, build)
    size = top or req.page_size or ep.default_top
    if req.take_empty_page():
        chunk, next_offset = [], offset
    else:
        chunk = ids[offset: offset + size]
        next_offset = offset + len(chunk)
    value = []
    props = select or ep.default_properties or ()
    for oid in chunk:
        state = tenant.object_state(coll_name, oid)
        if isinstance(state, dict):
            value.append({k: state.get(k) for k in props} if props else _strip(state))
        elif isinstance(state, str):
            value.append({"id": oid, "@removed": {"reason": state}})
    body: dict = {"@odata.context": _context(req, select)}
    if next_offset < len(ids):
        payload = {"k": "dpage", "t": tenant.tenant_id, "v": req.version, "p": ep.path, "m": kind,
                   "f": since, "s": upto, "o": next_offset, "e": tenant.delta_epoch, "sel": select_text,
                   "i": req.now, "a": as_of}
        if top is not None:
            payload["n"] = top
        body["@odata.nextLink"] = _link(req, {}, "$skiptoken", req.codec.encode(payload))
        body["value"] = value
    else:
        body["value"] = value
        body["@odata.deltaLink"] = _delta_link(req, upto, select_text, top)
    return json_response(200, body)


def _with_replays(ids: list[str], every: int) -> list[str]:
    """Documented replays: every ``every``-th entry is repeated right after itself."""
    if every <= 0:
        return ids
    out = []
    for i, uid in enumerate(ids, 1):
        out.append(uid)
        if i % every == 0:
            out.append(uid)
    return out
