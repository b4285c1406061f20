"""The ``td-graph`` command line."""
