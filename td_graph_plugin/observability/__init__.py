"""What operators watch: the ``/metrics`` + ``/healthz`` HTTP endpoint and the terminal progress
display.  Both are plain threads with ``start``/``stop`` (no signal handling, no global
registry), so they work the same in ``td-graph run`` and inside a shipper such as syslog-ng."""

from .progress import ProgressDisplay
from .server import MetricsServer, MetricsServerError, parse_listen, start_metrics_server

__all__ = ["MetricsServer", "MetricsServerError", "ProgressDisplay", "parse_listen", "start_metrics_server"]
