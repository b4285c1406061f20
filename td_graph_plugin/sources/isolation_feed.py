"""The isolation audit feed: stored audit records flow into the pipeline like any source's.

``td-graph isolate`` runs beside a running collector (which holds the state database and the
output), so it stores each audit record in the shared isolation store and the collector emits
new rows as source ``td_graph.isolation`` with the usual checkpoint-after-output guarantee
(the cursor is the last row id).  When no collector runs, ``isolate`` runs this same feed
itself.  It is an ordinary registered source whose spec names its own collector: it reads the
local store, not Graph, so it needs no client and no licence plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from ..config.model import Config
from ..spec import SourceSpec
from ..state import Commit, StateStore
from ..state.opening import open_isolation_store
from ..timeutil import parse_time, to_epoch

if TYPE_CHECKING:
    from ..collector.context import SourceRun

__all__ = ["FEED_SPEC", "SOURCE"]

SOURCE = "td_graph.isolation"


class _AuditFeed:
    """Reads the tenant's audit rows stored after the cursor ``{"last_row": id}``."""

    uses_graph = False

    def collect(self, run: SourceRun) -> None:
        tenant = run.tenant.name
        config = run.config
        # The shared isolation store (SQLite file, or the cluster's PostgreSQL state); None
        # while no isolation was ever recorded.
        store = (
            run.resources.get(("isolation-store",), lambda: open_isolation_store(config, missing_ok=True))
            if config is not None
            else None
        )
        cursor = run.state.cursor(tenant, SOURCE) or {"last_row": 0}
        last = int(cursor.get("last_row", 0))
        while store is not None and not run.stopping:
            rows = store.isolation_rows(tenant, last)
            if not rows:
                break
            last = rows[-1][0]
            records = [record for _, record in rows if run.admit(record)]
            newest = max((to_epoch(parse_time(r.get("event_time"))) or 0.0 for r in records), default=None)
            run.deliver(records, Commit(tenant, SOURCE, cursor={"last_row": last}, newest_event=newest))
        run.deliver([], Commit(tenant, SOURCE, cursor={"last_row": last}, success=True))

    def adopt(
        self, spec: SourceSpec, state: StateStore, config: Config, tenant: str, records: Sequence[dict[str, Any]]
    ) -> Commit | None:
        """Move the cursor past the stored rows whose records are already in the output."""
        store = open_isolation_store(config, missing_ok=True)
        if store is None:
            return None
        ids = {r["id"] for r in records}
        cursor = state.cursor(tenant, SOURCE) or {}
        try:
            last = int(cursor.get("last_row", 0))
            for row_id, record in store.isolation_rows(tenant, last, limit=100000):
                if record.get("id") in ids:
                    last = row_id
        finally:
            store.close()
        return Commit(tenant, SOURCE, cursor={"last_row": last})


FEED_SPEC = SourceSpec(
    name=SOURCE,
    path="/isolation-audit",
    mode="snapshot",
    permissions=["(local audit store)"],
    interval="15s",
    collector=_AuditFeed(),
    description="Isolation audit records from the local store (not a Graph endpoint).",
)
