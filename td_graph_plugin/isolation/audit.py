"""The audit trail: every isolate/release (dry runs and refusals too) is stored and emitted.

The record is the contract's envelope (``collector.make_record``) with source
``td_graph.isolation``, a unique action id as ``id`` and the action under ``data``.  The same
envelope is stored in the state database (``StateStore.add_isolation``, keyed by the
resolved object id) and handed to the pipeline's output.  The stored records are also what
``release`` restores from (``active_isolation``).

An action that writes stores a *started* record first (``store_started``: outcome
``pending``, id ``<action id>:started``, the snapshot and the steps so far), before its first
write request, and its final record (id ``<action id>``) when it ends — ``interrupted`` when
Ctrl-C or SIGTERM stopped it.  Both are appended, never updated in place: the collector's
feed emits every new row once (its cursor is the last row id), so a row changed after it was
emitted would never reach the SIEM again.  A process killed with SIGKILL leaves only the
started record: the SIEM still learns that the action began, and release still finds its
snapshot.  Readers take the newest record of each ``action_id`` (``latest_per_action``).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from ..collector.context import make_record
from ..config.model import TenantConfig
from ..sources.isolation_feed import SOURCE
from ..state import StateStore
from .advice import describe
from .model import STEP_FAILED, STEP_OK, STEP_SKIPPED, ActionResult

__all__ = ["build_record", "store_and_emit", "store_started", "active_isolation", "latest_per_action", "chain_did",
           "chain_maybe_did", "unfinished", "Emit", "PENDING", "STARTED_SUFFIX"]

PENDING = "pending"
STARTED_SUFFIX = ":started"
UNFINISHED = (PENDING, "interrupted")

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
    problems = [result.audit_error] if result.audit_error else []
    if state is not None:
        try:
            state.add_isolation(tenant.name, result.user_key, result.action, record)
        except Exception as exc:  # noqa: BLE001 - reported, never swallowed silently
            problems.append(f"the audit record could not be stored in the isolation store ({describe(exc)})")
    if emit is not None:
        try:
            emit(record)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"the audit record could not be written to the output ({describe(exc)})")
    if problems:
        result.audit_error = "; ".join(problems)
        log.error("isolation %s: %s", result.action_id, result.audit_error)
    return record


def store_started(state: StateStore | None, tenant: TenantConfig, result: ActionResult, collected_at: str) -> bool:
    """Store the started record of ``result`` (before its first write); False when it could not
    be stored (then nothing may be written: the action could not be audited)."""
    if state is None:
        return False
    saved = (result.outcome, result.message)
    result.outcome = PENDING
    result.message = "started: the write steps run now; a record with the same action_id completes this one"
    try:
        record = build_record(tenant, result, collected_at)
    finally:
        result.outcome, result.message = saved
    record["id"] = result.action_id + STARTED_SUFFIX
    record["event_time"] = result.started_at
    try:
        state.add_isolation(tenant.name, result.user_key, result.action, record)
    except Exception as exc:  # noqa: BLE001 - fail closed: no write without an audit row
        result.audit_error = f"the started record could not be stored in the isolation store ({describe(exc)}): nothing was written"
        log.error("isolation %s: %s", result.action_id, result.audit_error)
        return False
    return True


def latest_per_action(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest record of each action (by ``data.action_id``), in the order the actions began."""
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        data = r.get("data") or {}
        key = str(data.get("action_id") or r.get("id") or "")
        if key.endswith(STARTED_SUFFIX):
            key = key[: -len(STARTED_SUFFIX)]
        latest[key] = r  # a key seen before keeps its first position (dicts keep insertion order)
    return list(latest.values())


def _ok(data: dict[str, Any], step: str) -> bool:
    return any(s.get("step") == step and s.get("status") == STEP_OK for s in data.get("steps") or [])


def unfinished(record: dict[str, Any]) -> bool:
    """A started record whose action never completed, or an interrupted one."""
    return (record.get("data") or {}).get("outcome") in UNFINISHED


def active_isolation(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The isolations (oldest first) since the last successful release.

    Dry runs, refusals and isolations where nothing took effect are not part of it; an
    unfinished one (``pending``: the process died; ``interrupted``) is, since it may have
    written.  The first entry's ``before`` is the account's state before containment started.
    """
    chain: list[dict[str, Any]] = []
    for r in latest_per_action(records):
        data = r.get("data") or {}
        if data.get("dry_run"):
            continue
        action, outcome = r.get("action") or data.get("action"), data.get("outcome")
        if action == "isolate" and outcome in ("ok", "partial", "noop", *UNFINISHED):
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


def chain_maybe_did(chain: list[dict[str, Any]], step: str) -> dict[str, Any] | None:
    """The first unfinished isolation of ``chain`` that may have done ``step``: it was asked
    for and the record does not say it was skipped or failed (still pending, or interrupted
    while in flight)."""
    for r in chain:
        data = r.get("data") or {}
        if not unfinished(r) or step not in ((data.get("options") or {}).get("steps") or ()):
            continue
        statuses = {s.get("status") for s in data.get("steps") or [] if s.get("step") == step}
        if not statuses & {STEP_SKIPPED, STEP_FAILED}:
            return r
    return None
