"""Delta and snapshot modes: inventories whose objects change, appear and disappear.

Both keep a content hash per object, so a replayed delta change or an unchanged daily snapshot
row is not emitted again (unless ``emit_unchanged``), and both sweep objects a *full* read did
not return into removal records.  Cursors::

    delta:    {"delta_link": str|null, "next_link": str|null, "gen": int, "full": bool,
               "last_full": iso|null, "tally": {...}, "drop_refused": bool}
    snapshot: {"gen": int, "next_link": str|null, "tally": {...}, "drop_refused": bool}

``tally`` counts what the current full read returned (valid and invalid items, a changed CSV
header): a sweep runs only after a plausible read (``_sweep_refusal``).  ``drop_refused`` says
the last full read missed most known objects and was not swept; the next one that agrees is.
Every record's ``event_time`` is the spec's ``event_time_field`` or, for objects without one
and for removals, the time td-graph observed the change (``collected_at``): never null.

``next_link`` is the page to resume from after a crash; if Graph no longer accepts it the read
starts over (same generation), which the hashes make harmless.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any, Sequence

from ..config.model import Config
from ..errors import GraphBadRequest, GraphNotFound, GraphResyncRequired
from ..spec import SourceSpec
from ..state import Commit, StateStore
from ..timeutil import format_time, parse_time, to_epoch
from .context import SourceRun, make_record
from .keys import content_hash

__all__ = ["collect_delta", "collect_snapshot", "DELTA", "SNAPSHOT"]

log = logging.getLogger("td_graph_plugin.collector")

# The stored "hash" of an object whose removal record was written after the last checkpoint and
# adopted after a crash (not a blake2b hex digest, so no object's content can match it).
TOMBSTONE = "removed"


def collect_delta(run: SourceRun) -> None:
    spec, tenant = run.spec, run.tenant.name
    cursor = run.state.cursor(tenant, spec.name) or {}
    last_full = parse_time(cursor.get("last_full"))
    due_full = last_full is None or run.now() - last_full >= run.duration("full_resync")
    for attempt in range(2):
        stored = cursor.get("next_link") or (None if due_full else cursor.get("delta_link"))
        if stored:
            url, params = stored, None
            full = bool(cursor.get("full")) if cursor.get("next_link") else False
        else:
            url, params, full = run.url(), run.base_params(), True
        gen = int(cursor.get("gen", 0)) + (1 if full and not cursor.get("next_link") else 0)
        try:
            _read(run, url, params, cursor, gen, full, delta=True)
            return
        except (GraphResyncRequired, GraphBadRequest, GraphNotFound) as exc:
            # A stored link Graph no longer honours (410 Gone, syncStateNotFound, an expired
            # skiptoken) means: start over with a full sync. A fresh request failing is real.
            if not stored or attempt:
                raise
            log.warning(
                "%s/%s: stored delta link no longer accepted (%s); starting a full resync",
                tenant,
                spec.name,
                exc.code or (f"HTTP {exc.status}" if exc.status else exc.detail),
            )
            cursor = {"gen": cursor.get("gen", 0), "last_full": cursor.get("last_full")}
            due_full = True


def collect_snapshot(run: SourceRun) -> None:
    spec, tenant = run.spec, run.tenant.name
    cursor = run.state.cursor(tenant, spec.name) or {}
    resuming = bool(cursor.get("next_link"))
    gen = int(cursor.get("gen", 0)) + (0 if resuming else 1)
    url, params = (cursor["next_link"], None) if resuming else (run.url(), run.base_params())
    try:
        _read(run, url, params, cursor, gen, True, delta=False)
    except (GraphBadRequest, GraphNotFound, GraphResyncRequired):
        if not resuming:
            raise
        log.warning("%s/%s: stored next page no longer accepted; reading the snapshot again", tenant, spec.name)
        _read(run, run.url(), run.base_params(), {**cursor, "next_link": None}, gen, True, delta=False)


def _read(run: SourceRun, url: str, params: dict[str, str] | None, cursor: dict[str, Any], gen: int, full: bool, *, delta: bool) -> None:
    spec, state, tenant = run.spec, run.state, run.tenant.name
    id_field = spec.id_field
    # When the thing happened; an object without one (inventory) gets the time td-graph saw it.
    time_field = spec.event_time_field
    emit_all = run.emit_unchanged
    base = {k: v for k, v in cursor.items() if k not in ("next_link",)}
    base["gen"] = gen
    # What this full read has returned so far (kept across a crash-resumed read; a fresh
    # request starts a new tally): the evidence ``_sweep`` needs before deleting anything.
    tally = dict(cursor.get("tally") or {}) if params is None else {}
    if delta:
        base["full"] = full
    for page in run.pages(url, params):
        collected_at = run.collected_at()
        valid: list[dict[str, Any]] = []
        for item in page.items:
            if not isinstance(item, dict) or not isinstance(item.get(id_field), str) or not item.get(id_field):
                run.skip_bad(f"item without a string {id_field!r}")
                continue
            valid.append(item)
        tally["valid"] = tally.get("valid", 0) + len(valid)
        tally["invalid"] = tally.get("invalid", 0) + len(page.items) - len(valid)
        if not getattr(page, "header_ok", True):
            tally["header_changed"] = True
        known = state.object_hashes(tenant, spec.name, {i[id_field] for i in valid}) if valid else {}
        records, newest = [], None
        # The page's last word per id, in page order: a hash to store, or None (removed).
        final: dict[str, str | None] = {}
        for item in valid:
            obj_id = item[id_field]
            previous = final[obj_id] if obj_id in final else known.get(obj_id)
            removed = item.get("@removed")
            if removed is not None:
                final[obj_id] = None
                if previous == TOMBSTONE:
                    continue  # adopted after a crash: this removal is already in the output
                reason = removed.get("reason") if isinstance(removed, dict) else None
                reason = reason if reason in ("changed", "deleted") else "deleted"
                record = make_record(run.tenant, spec.name, obj_id, collected_at, collected_at, item, removed=reason)
                if run.admit(record):
                    records.append(record)
                continue
            ts = _event_dt(item.get(time_field)) if time_field else None
            record = make_record(run.tenant, spec.name, obj_id, format_time(ts) if ts else collected_at, collected_at, item)
            admitted = run.admit(record)  # before hashing: the hash is of the data as written
            try:
                digest = content_hash(record["data"])
            except RecursionError:
                run.skip_bad(f"{obj_id!r} is nested too deeply to encode")
                continue
            final[obj_id] = digest
            if (previous == digest and not emit_all) or not admitted:
                continue  # a replay, an unchanged row, or dropped by a filter
            if ts is not None and (newest is None or ts > newest):
                newest = ts
            records.append(record)
        upserts = [(i, h, gen) for i, h in final.items() if h is not None]
        deletes = [i for i, h in final.items() if h is None]
        cur = dict(base, next_link=page.next_link, tally=tally if full else {})
        if page.delta_link:
            cur["delta_link"] = page.delta_link
            cur["next_link"] = None
        finished = page.next_link is None
        if finished and full:
            cur["last_full"] = format_time(run.now())
        commit = Commit(
            tenant,
            spec.name,
            cursor=cur,
            upsert_objects=upserts,
            delete_objects=deletes,
            newest_event=to_epoch(newest) if newest else to_epoch(run.now()),
            success=finished and not full,
        )
        run.deliver(records, commit)
        if finished:
            if full:
                _sweep(run, gen, cur)
            return
        if run.stopping:
            return


# A full read that misses more than this share of the known objects (and more than
# DROP_MIN_OBJECTS of them) is swept only when the next full read confirms it.
DROP_SHARE = 0.5
DROP_MIN_OBJECTS = 10


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _event_dt(raw: Any) -> datetime | None:
    """A timestamp, or a report's date-only ``Report Refresh Date`` as midnight UTC that day."""
    if isinstance(raw, str) and _DATE_ONLY.match(raw):
        raw = raw + "T00:00:00Z"
    return parse_time(raw)


def _sweep_refusal(run: SourceRun, gen: int, cursor: dict[str, Any]) -> str | None:
    """Why this full read must not turn what it did not return into removals, or None.

    An empty answer, a page of garbage or a report whose CSV header changed says nothing about
    which objects are gone; a sudden mass drop may be a Graph glitch, so it needs a second read."""
    spec, tenant, state = run.spec, run.tenant.name, run.state
    tally = cursor.get("tally") or {}
    valid, invalid = int(tally.get("valid", 0)), int(tally.get("invalid", 0))
    if tally.get("header_changed"):
        return "the report's CSV header lacks its documented columns"
    known = state.count("objects", tenant, spec.name)
    if known and valid == 0:
        return f"the read returned no valid object ({invalid} invalid) while {known} are known"
    if invalid > valid:
        return f"most items were invalid ({invalid} of {valid + invalid})"
    limit = int(known * DROP_SHARE) + 1
    stale = len(state.stale_objects(tenant, spec.name, gen, limit=limit))
    if stale >= limit and stale > DROP_MIN_OBJECTS and not cursor.get("drop_refused"):
        return f"more than {DROP_SHARE:.0%} of {known} known objects are missing; the next full read decides"
    return None


def _sweep(run: SourceRun, gen: int, cursor: dict[str, Any]) -> None:
    """After a full read: objects it did not return are gone; say so once, then forget them.

    Only after a plausible read (``_sweep_refusal``); a refused sweep is logged, counted
    (``sweep_refused``) and left to the next full read, whose generation still finds them."""
    spec, tenant = run.spec, run.tenant.name
    reason = _sweep_refusal(run, gen, cursor)
    cursor = {k: v for k, v in cursor.items() if k not in ("tally", "drop_refused")}
    if reason is not None:
        log.warning("%s/%s: not sweeping removals after this full read: %s", tenant, spec.name, reason)
        run.metrics.error(tenant, spec.name, "sweep_refused")
        if "known objects are missing" in reason:
            cursor["drop_refused"] = True
        run.deliver([], Commit(tenant, spec.name, cursor=cursor, success=True))
        return
    while True:
        stale = run.state.stale_objects(tenant, spec.name, gen)
        if not stale:
            break
        tombstones = {i for i, h in run.state.object_hashes(tenant, spec.name, stale).items() if h == TOMBSTONE}
        collected_at = run.collected_at()
        removals = [
            make_record(run.tenant, spec.name, obj_id, collected_at, collected_at, {"id": obj_id, "@removed": {"reason": "deleted"}}, removed="deleted")
            for obj_id in stale
            if obj_id not in tombstones  # their removal was written before a crash
        ]
        records = [r for r in removals if run.admit(r)]
        run.deliver(records, Commit(tenant, spec.name, cursor=cursor, delete_objects=stale))
    # A full read is complete as of now: that is the inventory's checkpoint position.
    run.deliver([], Commit(tenant, spec.name, cursor=cursor, success=True), checkpoint=run.now())


def adopt_inventory(
    spec: SourceSpec, state: StateStore, config: Config, tenant: str, records: Sequence[dict[str, Any]]
) -> Commit:
    """Store the content hash (or the removal) of records written after the last checkpoint,
    in the cursor's current generation, as ``_read`` would have."""
    cursor = state.cursor(tenant, spec.name) or {}
    gen = int(cursor.get("gen", 0))
    final: dict[str, str] = {}
    for r in records:  # in output order: the last record of an id decides
        final[str(r["id"])] = TOMBSTONE if r.get("removed") else content_hash(r.get("data") or {})
    # A removal is kept as a tombstone, not deleted: the replayed page (or sweep) must know it was
    # already written; the collector deletes the tombstone when it meets the removal again.
    return Commit(tenant, spec.name, cursor=cursor, upsert_objects=[(i, h, gen) for i, h in final.items()])


class _Inventory:
    uses_graph = True
    adopt = staticmethod(adopt_inventory)

    def __init__(self, collect: Any) -> None:
        self.collect = collect


DELTA = _Inventory(collect_delta)
SNAPSHOT = _Inventory(collect_snapshot)
