"""The national clouds td-graph knows (graph-facts §0.1): one table, the one owner of cloud
names for the config, the source specs and the Graph client (``graph/clouds.py`` resolves
endpoints from it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Cloud", "CLOUDS", "CLOUD_NAMES"]


@dataclass(frozen=True)
class Cloud:
    name: str
    login_host: str
    graph_host: str
    scope: str


def _cloud(name: str, login_host: str, graph_host: str) -> Cloud:
    return Cloud(name, login_host, graph_host, f"https://{graph_host}/.default")


CLOUDS: dict[str, Cloud] = {
    "global": _cloud("global", "login.microsoftonline.com", "graph.microsoft.com"),
    # GCC High (Graph "US Government L4")
    "usgov": _cloud("usgov", "login.microsoftonline.us", "graph.microsoft.us"),
    # DoD (Graph "US Government L5")
    "dod": _cloud("dod", "login.microsoftonline.us", "dod-graph.microsoft.us"),
    # 21Vianet
    "china": _cloud("china", "login.partner.microsoftonline.cn", "microsoftgraph.chinacloudapi.cn"),
}
CLOUD_NAMES: tuple[str, ...] = tuple(CLOUDS)
