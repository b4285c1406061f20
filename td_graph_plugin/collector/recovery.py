"""Adopting the file output's uncommitted tail after a crash, instead of cutting it off.

After kill -9 the file may hold records past the committed offset: pages written but not yet
checkpointed.  Cutting them off would make the file shrink under a tailer (Filebeat re-reads a
shrunk file from its start: every record twice).  Instead the tail is *adopted*: each complete
record's dedup key (window sources), content hash or removal (delta and snapshot sources) or
audit row (isolation feed) is written to the state as if its page had committed — each by the
adopt rule of the source's own collector (``collector.base.SourceCollector.adopt``), so the
re-collection that follows skips exactly those records.  Only an incomplete last line (no
newline: no tailer has read it) is cut.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Callable, Sequence

import orjson

from ..catalogue import Catalogue
from ..config.model import Config
from ..formats import envelope_of
from ..state import Commit, StateStore
from ..state.store import OutputMark
from .modes import collector_for

__all__ = ["make_adopter", "Adopter"]

log = logging.getLogger(__name__)

Adopter = Callable[[StateStore, Sequence[bytes], OutputMark], int]


def make_adopter(config: Config, catalogue: Catalogue) -> Adopter:
    def adopt(state: StateStore, lines: Sequence[bytes], output: OutputMark) -> int:
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        unreadable = 0
        for line in lines:
            try:
                record = envelope_of(orjson.loads(line))  # raw, ECS or OCSF: the envelope back
                if record is None:
                    raise KeyError("not a td-graph record")
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
    if source not in catalogue:
        log.warning("output file: %d records of unknown source %s in the tail; not adopted", len(records), source)
        return None
    spec = catalogue[source]
    return collector_for(spec).adopt(spec, state, config, tenant, records)
