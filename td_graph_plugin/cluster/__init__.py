"""A cluster of replicas over PostgreSQL state: tenant leases with fencing epochs, replica
heartbeats and balancing (issue 15).  SQLite deployments never import it."""

from .balance import Plan, plan, target
from .coordinator import Coordinator

__all__ = ["Coordinator", "Plan", "plan", "target"]
