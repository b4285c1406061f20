"""Every application permission the simulated Microsoft Graph service principal exposes.

The union of the known app roles (graph_roles), the permissions named by the endpoint rows
(endpoints) and by the registered routes (routes), so a source or route added at run time
brings its permissions along.  Apart from graph_roles.py because it depends on the routes,
whose request type depends on the tenant: the tenant gets this list from its host
(``GraphSimulator.role_names``) instead of importing it.
"""

from __future__ import annotations

from typing import Iterable

from .endpoints import all_permissions
from .graph_roles import GRAPH_APP_ROLES
from .routes import route_permissions

__all__ = ["role_names"]


def role_names(extra: Iterable[str] = ()) -> list[str]:
    """Every permission the Graph service principal exposes here, sorted (``extra`` included)."""
    names = set(GRAPH_APP_ROLES) | all_permissions() | route_permissions() | set(extra)
    return sorted(names)
