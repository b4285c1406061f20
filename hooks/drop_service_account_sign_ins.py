"""Drop the successful sign-ins of service accounts (a td-graph record filter).

Service accounts (user accounts that scripts, scanners or backup jobs sign in with) produce a
steady stream of successful sign-ins that rarely interests a SOC but costs SIEM licence.  This
hook drops exactly those: a sign-in record (interactive or not) whose user is one of the listed
accounts *and* whose ``status.errorCode`` is 0.  Failed sign-ins of the same accounts, every
other user's sign-ins, and every other source are kept.

The accounts (UPNs or Entra object ids, case-insensitive), from either place:

* the environment variable ``TD_GRAPH_SERVICE_ACCOUNTS``, comma-separated, e.g.
  ``TD_GRAPH_SERVICE_ACCOUNTS=svc-backup@contoso.com,svc-scan@contoso.com``
  (set it where td-graph runs: /etc/td-graph/td-graph.env for the systemd unit);
* the ``SERVICE_ACCOUNTS`` set below, edited in place.

Enable: copy this file into the folder named by ``hooks_dir`` in td-graph.yaml.  Dropped
records are counted in td-graph's log line per run ("N dropped by filters") and the checkpoint
still advances past them.
"""

from __future__ import annotations

import os
from typing import Any

from td_graph_plugin import hookimpl

ENV = "TD_GRAPH_SERVICE_ACCOUNTS"
SERVICE_ACCOUNTS: set[str] = {
    # "svc-backup@contoso.com",
    # "00000000-0000-0000-0000-000000000000",
}
SIGN_IN_SOURCES = (
    "audit_logs.sign_ins",
    "audit_logs.sign_ins_non_interactive",
)

_cache: tuple[str, frozenset[str]] = ("", frozenset())


def accounts() -> frozenset[str]:
    """The configured accounts, lower-cased (re-read when the environment variable changes)."""
    global _cache
    raw = os.environ.get(ENV, "")
    if raw != _cache[0] or not _cache[1]:
        listed = {a.strip().lower() for a in raw.split(",") if a.strip()}
        _cache = (raw, frozenset(listed | {a.strip().lower() for a in SERVICE_ACCOUNTS if a.strip()}))
    return _cache[1]


@hookimpl
def td_graph_filter_record(tenant: str, source: str, record: dict[str, Any]) -> bool | None:
    if source not in SIGN_IN_SOURCES:
        return None
    wanted = accounts()
    if not wanted:
        return None
    data = record.get("data") or {}
    user = (data.get("userPrincipalName") or "").lower()
    user_id = (data.get("userId") or "").lower()
    if user not in wanted and user_id not in wanted:
        return None
    status = data.get("status") or {}
    if status.get("errorCode") == 0:
        return False  # a successful sign-in of a service account: drop it
    return None
