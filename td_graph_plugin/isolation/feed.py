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

__all__ = ["FEED_SPEC", "SOURCE", "collect_isolation_audit"]

SOURCE = "td_graph.isolation"
FEED_SPEC = SourceSpec(
    name=SOURCE,
    path="/local/isolation-audit",
    mode="snapshot",
    permissions=["(local audit store)"],
    interval="15s",
    description="Isolation audit records from the local store (not a Graph endpoint).",
)


def collect_isolation_audit(run, audit_path: str) -> None:  # type: ignore[no-untyped-def]
    tenant = run.tenant.name
    cursor = run.state.cursor(tenant, SOURCE) or {"last_row": 0}
    if not os.path.exists(audit_path):
        run.sink.deliver([], Commit(tenant, SOURCE, cursor=cursor, success=True), lambda: None)
        return
    store = StateStore(audit_path, exclusive=False)
    try:
        last = int(cursor.get("last_row", 0))
        while not run.stopping:
            rows = store.isolation_rows(tenant, last)
            if not rows:
                break
            last = rows[-1][0]
            records = [record for _, record in rows]
            newest = max((to_epoch(parse_time(r.get("event_time"))) or 0.0 for r in records), default=None)
            run.deliver(records, Commit(tenant, SOURCE, cursor={"last_row": last}, newest_event=newest))
        run.sink.deliver([], Commit(tenant, SOURCE, cursor={"last_row": last}, success=True), lambda: None)
    finally:
        store.close()
