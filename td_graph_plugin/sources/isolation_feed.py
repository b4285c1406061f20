"""The isolation audit feed: stored audit records flow into the pipeline through the collector.

``td-graph isolate`` runs beside a running collector (which holds the state database and the
output), so it stores each audit record in the shared isolation store and the collector emits
new rows as source ``td_graph.isolation`` with the usual checkpoint-after-output guarantee
(the cursor is the last row id).  When no collector runs, the CLI runs this same feed itself.
"""

from __future__ import annotations

import os

from ..spec import SourceSpec
from ..state import Commit, StateStore
from ..timeutil import parse_time, to_epoch

__all__ = ["FEED_SPEC", "SOURCE", "collect_isolation_audit", "open_audit_store"]

SOURCE = "td_graph.isolation"
FEED_SPEC = SourceSpec(
    name=SOURCE,
    path="/local/isolation-audit",
    mode="snapshot",
    permissions=["(local audit store)"],
    interval="15s",
    description="Isolation audit records from the local store (not a Graph endpoint).",
)


def collect_isolation_audit(run, store: StateStore | None) -> None:  # type: ignore[no-untyped-def]
    """Emit the tenant's audit rows stored after the cursor (``store`` None: none exist yet)."""
    tenant = run.tenant.name
    cursor = run.state.cursor(tenant, SOURCE) or {"last_row": 0}
    last = int(cursor.get("last_row", 0))
    while store is not None and not run.stopping:
        rows = store.isolation_rows(tenant, last)
        if not rows:
            break
        last = rows[-1][0]
        records = [record for _, record in rows]
        newest = max((to_epoch(parse_time(r.get("event_time"))) or 0.0 for r in records), default=None)
        run.deliver(records, Commit(tenant, SOURCE, cursor={"last_row": last}, newest_event=newest))
    run.sink.deliver([], Commit(tenant, SOURCE, cursor={"last_row": last}, success=True), lambda: None)


def open_audit_store(path: str) -> StateStore | None:
    """The shared isolation store, or None while no isolation has ever been recorded."""
    return StateStore(path, exclusive=False) if os.path.exists(path) else None
