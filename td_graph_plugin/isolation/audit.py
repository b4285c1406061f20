"""The audit trail: every isolate/release (dry runs and refusals too) is stored and emitted.

The record is the contract's envelope (``collector.make_record``) with source
``td_graph.isolation``, a unique action id as ``id`` and the action under ``data``.  The same
envelope is stored in the state database (``StateStore.add_isolation``, keyed by the
resolved object id) and handed to the pipeline's output.  The stored records are also what
``release`` restores from (``active_isolation``).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from ..collector.context import make_record
from ..config.model import TenantConfig
from ..sources.isolation_feed import SOURCE
from ..state import StateStore
from .model import STEP_OK, ActionResult

__all__ = ["build_record", "store_and_emit", "active_isolation", "chain_did", "Emit"]

log = logging.getLogger("td_graph_plugin.isolation")

Emit = Callable[[dict[str, Any]], None]


def build_record(tenant: TenantConfig, result: ActionResult, collected_at: str) -> dict[str, Any]:
    data = result.to_dict()
    data.pop("exit_code", None)
    data.pop("audit_error", None)
    data["target"] = result.target.identity() if result.target is not None else {"id": None, "input": result.user}
    return make_record(
        tenant,
        SOURCE,
        result.action_id,
        result.finished_at or result.started_at,
        collected_at,
        data,
    )


def store_and_emit(
    state: StateStore | None, emit: Emit | None, tenant: TenantConfig, result: ActionResult, collected_at: str
) -> dict[str, Any]:
    """Store first (release depends on it), then emit; a failure of either is reported on the
    result (``audit_error``: exit 1) and never hides the actions' own results."""
    record = build_record(tenant, result, collected_at)
    problems = []
    if state is not None:
        try:
            state.add_isolation(tenant.name, result.user_key, result.action, record)
        except Exception as exc:  # noqa: BLE001 - reported, never swallowed silently
            problems.append(f"the audit record could not be stored in the state database: {exc}")
    if emit is not None:
        try:
            emit(record)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"the audit record could not be written to the output: {exc}")
    if problems:
        result.audit_error = "; ".join(problems)
        log.error("isolation %s: %s", result.action_id, result.audit_error)
    return record


def _ok(data: dict[str, Any], step: str) -> bool:
    return any(s.get("step") == step and s.get("status") == STEP_OK for s in data.get("steps") or [])


def active_isolation(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The isolations (oldest first) since the last successful release.

    Dry runs, refusals and isolations where nothing took effect are not part of it.  The
    first entry's ``before`` is the account's state before containment started.
    """
    chain: list[dict[str, Any]] = []
    for r in records:
        data = r.get("data") or {}
        if data.get("dry_run"):
            continue
        action, outcome = r.get("action") or data.get("action"), data.get("outcome")
        if action == "isolate" and outcome in ("ok", "partial", "noop"):
            chain.append(r)
        elif action == "release" and outcome in ("ok", "noop"):
            chain = []
    return chain


def chain_did(chain: list[dict[str, Any]], step: str) -> dict[str, Any] | None:
    """The first isolation of ``chain`` whose ``step`` took effect."""
    for r in chain:
        if _ok(r.get("data") or {}, step):
            return r
    return None
