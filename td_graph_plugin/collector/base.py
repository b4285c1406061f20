"""What a collector is: how one source is read, and how its records are adopted after a crash.

The built-in modes (window, delta, snapshot) are collectors; a ``SourceSpec`` may name its own
(``SourceSpec.collector``) for a source that is not read the way a mode reads Graph — td-graph's
isolation audit feed reads a local store.  The engine and crash recovery only ever ask
:func:`collector.modes.collector_for`, so no source is special-cased anywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Sequence

from ..config.model import Config
from ..spec import SourceSpec
from ..state import Commit, StateStore

if TYPE_CHECKING:
    from .context import SourceRun

__all__ = ["SourceCollector"]


class SourceCollector(Protocol):
    #: False for sources that read no Graph API: no client, no licence/permission plan.
    uses_graph: bool

    def collect(self, run: SourceRun) -> None:
        """Read the source, handing every page to ``run.deliver`` (checkpoint-after-output)."""

    def adopt(
        self, spec: SourceSpec, state: StateStore, config: Config, tenant: str, records: Sequence[dict[str, Any]]
    ) -> Commit | None:
        """The commit that makes ``records`` (found in the output after a crash, written but
        never checkpointed) count as delivered, so they are not collected and written again;
        None when nothing needs recording."""
