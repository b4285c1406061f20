"""Adopting the file output's uncommitted tail after a crash, instead of cutting it off.

After kill -9 the file may hold records past the committed offset: pages written but not yet
checkpointed.  Cutting them off would make the file shrink under a tailer (Filebeat re-reads a
shrunk file from its start: every record twice).  Instead the tail is *adopted*: each complete
record's dedup key (window sources), content hash or removal (delta and snapshot sources) or
audit row (isolation feed) is written to the state as if its page had committed, so the
re-collection that follows skips exactly those records.  Only an incomplete last line (no
newline: no tailer has read it) is cut.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from typing import Any, Callable, Sequence

import orjson

from ..collector.inventory import content_hash
from ..config.model import Config
from ..isolation.feed import SOURCE as ISOLATION_SOURCE
from ..plugins import Catalogue
from ..state import Commit, StateStore
from ..timeutil import parse_time, to_epoch

__all__ = ["make_adopter", "Adopter"]

log = logging.getLogger(__name__)

Adopter = Callable[[StateStore, Sequence[bytes], tuple[str, int]], int]


def make_adopter(config: Config, catalogue: Catalogue) -> Adopter:
    def adopt(state: StateStore, lines: Sequence[bytes], output: tuple[str, int]) -> int:
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        unreadable = 0
        for line in lines:
            try:
                record = orjson.loads(line)
                groups[(record["tenant"], record["source"])].append(record)
            except (orjson.JSONDecodeError, KeyError, TypeError):
                unreadable += 1
        commits = []
        for (tenant, source), records in groups.items():
            commit = _commit_for(config, catalogue, state, tenant, source, records)
            if commit is not None:
                commits.append(commit)
        # One transaction per source; the output position moves with the last one, so a crash
        # here re-adopts (every write is idempotent) instead of forgetting.
        for i, commit in enumerate(commits):
            state.commit(commit, output=output if i == len(commits) - 1 else None)
        if not commits:
            state.set_output_position(*output)
        adopted = sum(len(v) for v in groups.values())
        log.warning(
            "output file: adopted %d records written after the last checkpoint (they will not be "
            "written again)%s",
            adopted,
            f"; {unreadable} unreadable lines left as they are" if unreadable else "",
        )
        return adopted

    return adopt


def _commit_for(config: Config, catalogue: Catalogue, state: StateStore, tenant: str, source: str, records: list[dict[str, Any]]) -> Commit | None:
    cursor = state.cursor(tenant, source) or {}
    if source == ISOLATION_SOURCE:
        return _isolation_commit(config, tenant, cursor, records)
    if source not in catalogue:
        log.warning("output file: %d records of unknown source %s in the tail; not adopted", len(records), source)
        return None
    spec = catalogue[source]
    if spec.mode == "window":
        # A record without an event time was keyed with its window's upper bound.
        active = cursor.get("active") or {}
        fallback = to_epoch(parse_time(active.get("upper"))) or time.time()
        seen = []
        for r in records:
            data = r.get("data") or {}
            version = data.get(spec.version_field) if spec.version_field else None
            key = f"{r['id']}|{version}" if version is not None else str(r["id"])
            seen.append((key, to_epoch(parse_time(r.get("event_time"))) or fallback))
        return Commit(tenant, source, cursor=cursor, seen=seen)
    gen = int(cursor.get("gen", 0))
    upserts, deletes = [], []
    for r in records:
        if r.get("removed"):
            deletes.append(str(r["id"]))
        else:
            upserts.append((str(r["id"]), content_hash(r.get("data") or {}), gen))
    removed = set(deletes)
    return Commit(tenant, source, cursor=cursor, upsert_objects=[u for u in upserts if u[0] not in removed], delete_objects=deletes)


def _isolation_commit(config: Config, tenant: str, cursor: dict[str, Any], records: list[dict[str, Any]]) -> Commit | None:
    path = config.isolation_state_path
    if not os.path.exists(path):
        return None
    ids = {r["id"] for r in records}
    store = StateStore(path, exclusive=False)
    try:
        last = int(cursor.get("last_row", 0))
        for row_id, record in store.isolation_rows(tenant, last, limit=100000):
            if record.get("id") in ids:
                last = row_id
    finally:
        store.close()
    return Commit(tenant, ISOLATION_SOURCE, cursor={"last_row": last})
