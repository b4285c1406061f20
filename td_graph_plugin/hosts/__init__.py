"""Adapters that run td-graph inside a log shipper's process.

* ``td_graph_plugin.hosts.syslog_ng.GraphFetcher``: syslog-ng ``python-fetcher()`` source; the
  checkpoint advances only when syslog-ng acknowledges the messages.
* ``td_graph_plugin.hosts.ack_sink.AckSink``: the collector ``Sink`` behind it, usable by any
  host that acknowledges asynchronously (queue out, ordered commits in on acknowledgement).

Shippers that run a program and read its standard output (Vector, Fluent Bit, Logstash,
rsyslog) or tail a file (Filebeat, rsyslog imfile) need no adapter: see ``conf/`` and
``docs/hosts.md``.
"""

from .ack_sink import AckSink, DeliveryStopped

__all__ = ["AckSink", "DeliveryStopped"]
