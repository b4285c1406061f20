"""td-graph: the Microsoft Graph input plugin for SIEM log shippers.

Plugin authors need only::

    from td_graph_plugin import hookimpl, SourceSpec
"""

from .hookspecs import hookimpl
from .spec import SourceSpec

__version__ = "0.1.0"
__all__ = ["hookimpl", "SourceSpec", "__version__"]
