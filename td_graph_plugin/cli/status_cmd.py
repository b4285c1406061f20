"""``td-graph status``: per tenant x source, what the state says: state, reason, last success,
newest event, lag, next re-check, query shape, owning replica.

It reads the state read-only (``state.reader``), so it works while ``run`` holds the state's
lock.  The pairs listed are the collector's jobs: every source the config enables for every
tenant whose cloud offers it; a pair the state has no row for is ``never_run``.

``--format json`` prints a list of objects, one per tenant x source, with these keys (times
are UTC RFC 3339 strings, null when unknown):

``tenant``, ``source``
``state``           ok | unlicensed | forbidden | disabled | failing | never_run
``reason``          why it is not ok (null when ok or never run)
``since``           in this state since (null when the state holds no status row)
``last_success``    the last completed pass
``newest_event``    the newest event time committed
``lag_seconds``     now - newest_event, whole seconds (null without an event); ``lag``: e.g. "3m"
``next_check``      held (unlicensed / forbidden) or failing: when it is tried again
``checkpoint_at``   the checkpoint's last write
``query_shape``     the query shape in use ("default" until the state records another)
``replica``         the replica that owns the tenant ("local": the SQLite state, one process)

Exit: 0 every pair ok or skipped (unlicensed, forbidden, disabled, never run), 1 any failing,
2 configuration error.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from ..catalogue import Catalogue
from ..config import Config
from ..durations import format_duration
from ..state import SourceRow, StateSnapshot, read_state
from ..status import FAILING, OK
from ..timeutil import format_time

__all__ = ["register", "status_rows", "render_status", "status_exit", "NEVER_RUN", "LOCAL_REPLICA", "DEFAULT_SHAPE"]

NEVER_RUN = "never_run"
LOCAL_REPLICA = "local"  # the SQLite state: one process owns every tenant
DEFAULT_SHAPE = "default"
FIRST_PASS = "first pass not finished yet"
COLUMNS = (
    ("TENANT", "tenant"), ("SOURCE", "source"), ("STATE", "state"), ("LAST SUCCESS", "last_success"),
    ("NEWEST EVENT", "newest_event"), ("LAG", "lag"), ("NEXT CHECK", "next_check"),
    ("QUERY SHAPE", "query_shape"), ("REPLICA", "replica"), ("REASON", "reason"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="per tenant x source: state, reason, last success, lag (works while run is running)",
        description="What the state says about each tenant x source the config enables; read-only, "
        "so it works while `td-graph run` is collecting.",
        epilog="exit codes:\n  0  every source ok or skipped (unlicensed, forbidden, disabled, never run)\n"
        "  1  a source is failing\n  2  configuration error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-c", "--config", required=True, help="td-graph YAML config")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    from ..runtime import load_validated

    config, _pm, catalogue = load_validated(args.config)
    snapshot = read_state(config)
    rows = status_rows(config, catalogue, snapshot)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        where = snapshot.path if snapshot is not None and config.state_url else config.state_path
        if snapshot is None and config.state_url:
            from ..state.pgschema import describe_url

            where = describe_url(config.state_url)
        print(render_status(rows, snapshot, where), end="")
    return status_exit(rows)


def status_rows(
    config: Config, catalogue: Catalogue, snapshot: StateSnapshot | None, now: float | None = None
) -> list[dict[str, Any]]:
    """One dict per enabled tenant x source (the collector's jobs), in config and catalogue order."""
    now = time.time() if now is None else now
    found = snapshot.rows if snapshot is not None else {}
    selected = catalogue.select(config.sources.include, config.sources.exclude)
    out = []
    for tenant in config.select_tenants(None):
        for spec in selected:
            if tenant.cloud not in spec.clouds:
                continue  # not a job: the engine never schedules it (doctor's plan names it)
            row = found.get((tenant.name, spec.name))
            owner = snapshot.owner(tenant.name) if snapshot is not None else _default_owner(config)
            out.append(_row(tenant.name, spec.name, row, now, owner))
    return out


def _default_owner(config: Config) -> str | None:
    """Before any state exists: SQLite's one process, or (a cluster) no owner yet."""
    return None if getattr(config, "state_url", None) else LOCAL_REPLICA


def _row(
    tenant: str, source: str, row: SourceRow | None, now: float, owner: str | None = LOCAL_REPLICA
) -> dict[str, Any]:
    """The JSON object of one pair (the keys the module docstring lists)."""
    def get(name: str) -> Any:
        return None if row is None else getattr(row, name)

    newest = get("newest_event")
    lag = None if newest is None else max(0, round(now - newest))
    if row is None:
        state, reason = NEVER_RUN, None
    elif row.state is not None:
        state, reason = row.state, (None if row.state == OK else row.reason)
    else:  # the engine writes a status row only when a source is not ok (or recovers)
        state, reason = OK, (None if row.last_success is not None else FIRST_PASS)
    return {
        "tenant": tenant,
        "source": source,
        "state": state,
        "reason": reason,
        "since": _time(get("since")),
        "last_success": _time(get("last_success")),
        "newest_event": _time(newest),
        "lag_seconds": lag,
        "lag": None if lag is None else human_lag(lag),
        "next_check": _time(get("next_check")),
        "checkpoint_at": _time(get("updated_at")),
        "query_shape": get("query_shape") or DEFAULT_SHAPE,
        "replica": owner,
    }


def status_exit(rows: list[dict[str, Any]]) -> int:
    return 1 if any(r["state"] == FAILING for r in rows) else 0


def human_lag(seconds: int) -> str:
    """Lag to its two largest units, for a table: 42s, 3m, 2h5m, 3d4h (``lag_seconds`` is exact)."""
    if seconds >= 86400:
        seconds -= seconds % 3600
    elif seconds >= 3600:
        seconds -= seconds % 60
    elif seconds >= 60:
        seconds -= seconds % 60
    return format_duration(timedelta(seconds=seconds))


def render_status(rows: list[dict[str, Any]], snapshot: StateSnapshot | None, state_path: str) -> str:
    """The table, then one summary line (which says when the state does not exist yet)."""
    cells = [[h for h, _ in COLUMNS]]
    for r in rows:
        shown = {**r, "state": "never run" if r["state"] == NEVER_RUN else r["state"]}
        cells.append(["-" if shown[k] is None else str(shown[k]) for _, k in COLUMNS])
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    counts = Counter(r["state"] for r in rows)
    order = [s for s in (OK, FAILING, "unlicensed", "forbidden", "disabled", NEVER_RUN) if counts[s]]
    order += sorted(s for s in counts if s not in order)
    summary = ", ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in order) or "nothing enabled"
    where = f"state {state_path}"
    if snapshot is None:
        where += " does not exist yet: td-graph has not run with this config"
    lines.append(f"{len(rows)} tenant x source pairs: {summary} ({where})")
    return "\n".join(lines) + "\n"


def _time(epoch: float | None) -> str | None:
    """Whole-second UTC RFC 3339, or None."""
    if not epoch:
        return None
    return format_time(datetime.fromtimestamp(int(epoch), timezone.utc))
