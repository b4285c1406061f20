"""The one status vocabulary of a tenant x source: the plan's verdict, the engine's outcome,
the state store's row and the ``td_graph_source_state`` metric all use these words.

``ok``          runs (plan) / ran (engine)
``unlicensed``  the tenant lacks the licence; re-checked rarely
``forbidden``   the app lacks a permission or Conditional Access blocks it; re-checked rarely
``disabled``    not offered here (e.g. the source's API does not exist in the tenant's cloud)
``failing``     ran and failed; retried with backoff
``stopped``     the engine was stopped mid-run (not a state: it resumes from the checkpoint)
"""

from __future__ import annotations

__all__ = ["OK", "UNLICENSED", "FORBIDDEN", "DISABLED", "FAILING", "STOPPED", "SOURCE_STATES", "HELD"]

OK = "ok"
UNLICENSED = "unlicensed"
FORBIDDEN = "forbidden"
DISABLED = "disabled"
FAILING = "failing"
STOPPED = "stopped"

# The states a source can be in (the metric's ``state`` label values, in the contract's order).
SOURCE_STATES = (OK, UNLICENSED, FORBIDDEN, FAILING, DISABLED)
# States the plan holds a source in until its re-check time.
HELD = (UNLICENSED, FORBIDDEN)
