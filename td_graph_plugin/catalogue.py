"""The catalogue of registered sources, and the one rule for naming sources.

A *selector* names sources the way operators write them in ``sources.include/exclude``,
``--sources`` and syslog-ng's ``options("sources")``: ``all``, a full source name
(``audit_logs.sign_ins``) or an area prefix (``security`` selects every ``security.*``).
Every place that matches names goes through :func:`selects` / :meth:`Catalogue.resolve`, so
they cannot disagree.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from .errors import PluginError
from .spec import SourceSpec

__all__ = ["Catalogue", "selects", "OWN_AREA", "DISABLE_ENV"]

DISABLE_ENV = "TD_GRAPH_DISABLED_PLUGINS"
# td-graph's own feeds (the isolation audit trail): collected whatever ``include`` says, so an
# audit record always reaches the SIEM, unless the operator excludes them explicitly.
OWN_AREA = "td_graph"


def selects(selector: str, name: str) -> bool:
    """Whether ``selector`` (``all``, a source name or an area prefix) names source ``name``."""
    return selector == "all" or name == selector or name.startswith(selector + ".")


class Catalogue:
    """The registered sources by name, remembering which plugin registered each."""

    def __init__(self) -> None:
        self._specs: dict[str, SourceSpec] = {}
        self._owner: dict[str, str] = {}

    def add(self, spec: SourceSpec, owner: str) -> None:
        if not isinstance(spec, SourceSpec):
            raise PluginError(
                f"plugin {owner!r} registered {spec!r}, which is not a td_graph_plugin.SourceSpec"
            )
        if spec.name in self._specs:
            raise PluginError(
                f"source {spec.name!r} is registered twice: by plugin {self._owner[spec.name]!r} "
                f"and by plugin {owner!r}; block one with {DISABLE_ENV}"
            )
        self._specs[spec.name] = spec
        self._owner[spec.name] = owner

    def __getitem__(self, name: str) -> SourceSpec:
        return self._specs[name]

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[SourceSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def owner(self, name: str) -> str:
        return self._owner[name]

    def unknown(self, selectors: Iterable[str]) -> list[str]:
        """The selectors that name no registered source (typos, uninstalled plugins)."""
        names = self.names()
        return [s for s in selectors if not any(selects(s, n) for n in names)]

    def resolve(self, selectors: Iterable[str]) -> list[SourceSpec]:
        """Every source at least one selector names, in catalogue order."""
        items = list(selectors)
        return [s for s in self if any(selects(i, s.name) for i in items)]

    def select(self, include: Iterable[str], exclude: Iterable[str] = ()) -> list[SourceSpec]:
        """The sources a config enables: ``include`` minus ``exclude``; td-graph's own feeds
        (area ``td_graph``) are always included unless excluded."""
        inc, exc = list(include), list(exclude)
        return [
            s
            for s in self
            if (s.area == OWN_AREA or any(selects(i, s.name) for i in inc))
            and not any(selects(e, s.name) for e in exc)
        ]
