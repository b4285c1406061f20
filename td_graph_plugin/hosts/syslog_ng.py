"""td-graph inside syslog-ng: a ``python-fetcher()`` source whose checkpoint follows syslog-ng's acks.

Configuration (syslog-ng 3.29 or later; tested with Debian's 3.38, written for 4.x too)::

    source s_graph {
        python-fetcher(
            class("td_graph_plugin.hosts.syslog_ng.GraphFetcher")
            options("config" "/etc/td-graph/td-graph.yaml")
        );
    };
    log { source(s_graph); destination(d_siem); flags(flow-control); };

or, with ``conf/syslog-ng/td-graph.conf`` installed as an SCL block, ``td_graph(config(...))``.
Optional options: ``"sources" "a,b"`` and ``"tenants" "x,y"`` (as ``td-graph run --sources``),
``"queue-size" "1000"`` (records buffered for syslog-ng), ``"ack-timeout" "100"`` (milliseconds
between acknowledgement reports).

How it works:

* ``init()`` validates the config exactly as ``td-graph run`` does and checks the state database
  can be opened; any problem is logged (through syslog-ng's own logger) and ``init`` returns
  False, so syslog-ng refuses the configuration instead of running without the source.  It
  installs a ``BatchedAckTracker`` (see "Why not ConsecutiveAckTracker" below).
* ``open()`` builds the runtime (state, metrics, engine) with an ``AckSink`` and starts the
  engine in a background thread ("td-graph-engine"; its collectors run in the engine's worker
  pool); the ``/metrics`` endpoint is started if ``metrics.listen`` is set.
* Collectors put each page's records on the sink's bounded queue and wait.  ``fetch()`` (called
  by syslog-ng's fetcher thread) takes one record, builds a ``LogMessage`` with the NDJSON
  envelope as ``MESSAGE`` and the name-value pairs ``.td_graph.tenant``, ``.td_graph.source``,
  ``.td_graph.id``, ``.td_graph.event_time`` (and ``.td_graph.removed`` for delta removals),
  and sets the bookmark ``"<generation>:<sequence number>"``.
* syslog-ng calls the ack callback with the bookmarks of the messages acknowledged since the
  last call (at least every ``ack-timeout`` ms); aborted messages (dropped from a memory queue at
  shutdown) are never reported.  The sink advances its contiguous acknowledged mark and commits
  (in order) every page and empty-batch commit it completes.  The checkpoint never moves past a record syslog-ng has not
  acknowledged; records in flight at a stop, reload or crash are collected again (and may be
  delivered twice), never lost.
* ``close()``/``deinit()`` stop the engine (stop event, then join), drop the unacknowledged
  pages without committing them and close the state database.

Why not ``ConsecutiveAckTracker`` (which reports exactly the contiguous prefix): in
python-fetcher, syslog-ng requests a bookmark from the tracker inside ``fetch``'s GIL section,
which takes the tracker's mutex, while a destination thread acknowledging a message holds that
mutex and waits for the GIL to run the Python callback: a lock-order inversion that deadlocks
syslog-ng within seconds under load (reproduced with Debian's 3.38.1; the same code paths are
in 4.x).  ``BatchedAckTracker`` takes no lock around the callback.

syslog-ng must be able to import td-graph: its embedded interpreter is the system Python, so
install td-graph in a virtualenv built on that interpreter and start syslog-ng with
``PYTHONPATH`` pointing at the virtualenv's site-packages (docs/hosts.md).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import orjson

from ..errors import ConfigError, PluginError, StateError, TdGraphError
from ..formats import envelope_of
from ..logsetup import RedactingFilter
from .ack_sink import AckSink

__all__ = ["GraphFetcher", "IN_SYSLOG_NG", "message_fields"]

log = logging.getLogger("td_graph_plugin.hosts.syslog_ng")

try:  # ``_syslogng`` exists only inside a syslog-ng process
    import _syslogng  # type: ignore[import-not-found]  # noqa: F401
    import syslogng  # type: ignore[import-not-found]

    LogFetcher = syslogng.LogFetcher
    LogMessage = syslogng.LogMessage
    BatchedAckTracker = syslogng.BatchedAckTracker
    _SyslogNgLogger = getattr(syslogng, "Logger", None)
    IN_SYSLOG_NG = True
except ImportError:  # imported by tests, docs or `python -c`: stand-ins with the same surface
    IN_SYSLOG_NG = False
    _SyslogNgLogger = None

    class LogFetcher:  # type: ignore[no-redef]
        """Stand-in for ``syslogng.LogFetcher`` (the result constants have 3.38's values)."""

        FETCH_ERROR = 0
        FETCH_NOT_CONNECTED = 1
        FETCH_SUCCESS = 2
        FETCH_TRY_AGAIN = 3
        FETCH_NO_DATA = 4
        persist_name = None

    class LogMessage(dict):  # type: ignore[no-redef]
        """Stand-in for ``syslogng.LogMessage``: MESSAGE plus name-value pairs and a bookmark."""

        def __init__(self, message: bytes | str = b"", bookmark: str | None = None) -> None:
            super().__init__()
            self["MESSAGE"] = message
            self.bookmark = bookmark

        def set_bookmark(self, bookmark: str) -> None:
            self.bookmark = bookmark

    class BatchedAckTracker:  # type: ignore[no-redef]
        def __init__(self, timeout: int, batch_size: int, batched_ack_callback: Any) -> None:
            self.timeout = timeout
            self.batch_size = batch_size
            self.batched_ack_callback = batched_ack_callback


DEFAULT_QUEUE_SIZE = 1000
DEFAULT_ACK_TIMEOUT_MS = 100  # BatchedAckTracker reports acknowledgements at least this often
FETCH_WAIT = 0.5  # seconds fetch() waits for a record before answering "no data"
STOP_TIMEOUT = 30.0  # seconds deinit waits for the collectors to finish their current request


def _opt(options: dict[str, Any] | None, name: str) -> str | None:
    """An option as a string, accepting ``queue-size`` / ``queue_size`` (3.38 gives strings)."""
    if not options:
        return None
    for key in (name, name.replace("-", "_"), name.replace("_", "-")):
        if key in options and options[key] is not None:
            value = options[key]
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            return str(value).strip()
    return None


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()] or None


def message_fields(line: bytes) -> dict[str, str]:
    """The name-value pairs posted with a record (beside MESSAGE, the envelope itself)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {}
    out: dict[str, str] = {}
    record = envelope_of(record, data=False)  # raw, ECS or OCSF (output.format)
    if record is None:
        return out
    for key in ("tenant", "source", "id", "event_time", "removed"):
        value = record.get(key)
        if value is not None:
            out[f".td_graph.{key}"] = value if isinstance(value, str) else str(value)
    return out


class _SyslogNgHandler(logging.Handler):
    """Python logging -> syslog-ng's internal() log (what `syslog-ng -e` prints)."""

    def __init__(self, logger: Any) -> None:
        super().__init__()
        self._logger = logger
        self.addFilter(RedactingFilter())
        self.setFormatter(logging.Formatter("td-graph: %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                self._logger.error(text)
            elif record.levelno >= logging.WARNING:
                self._logger.warning(text)
            elif record.levelno >= logging.INFO:
                self._logger.info(text)
            else:
                self._logger.debug(text)
        except Exception:  # logging must never break collection
            self.handleError(record)


_logging_lock = threading.Lock()


def _install_logging(level: str = "info") -> None:
    """Inside syslog-ng, route logging to syslog-ng's own log, once per process (modules
    survive reloads).  Outside syslog-ng (tests) the process's logging is left alone."""
    if _SyslogNgLogger is None:
        return
    numeric = getattr(logging, level.upper(), logging.INFO)
    root = logging.getLogger()
    with _logging_lock:
        if not any(getattr(h, "_td_graph_slng", False) for h in root.handlers):
            handler = _SyslogNgHandler(_SyslogNgLogger())
            handler._td_graph_slng = True  # type: ignore[attr-defined]
            root.addHandler(handler)
        root.setLevel(numeric)
        for noisy in ("msal", "urllib3"):
            logging.getLogger(noisy).setLevel(max(logging.WARNING, numeric))


class GraphFetcher(LogFetcher):  # type: ignore[misc,valid-type]
    """syslog-ng ``python-fetcher`` running every tenant and source of one td-graph config."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reset()

    def _reset(self) -> None:
        self._config_path: str | None = None
        self._tenants: list[str] | None = None
        self._sources: list[str] | None = None
        self._queue_size = DEFAULT_QUEUE_SIZE
        self._ack_timeout = DEFAULT_ACK_TIMEOUT_MS
        self._runtime: Any = None
        self._replica: Any = None
        self._sink: AckSink | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._generation = 0
        self._has_jobs = False
        self._exiting = threading.Event()
        self._lock = threading.Lock()

    # --- syslog-ng lifecycle ---------------------------------------------------------------
    def generate_persist_name(self, options: dict[str, Any]) -> str:
        """Unique per config file, so two td-graph sources never share a persist entry."""
        path = _opt(options, "config") or "default"
        return f"td_graph,{os.path.abspath(path)}"

    def init(self, options: dict[str, Any]) -> bool:
        if not hasattr(self, "_exiting"):
            self._reset()  # the C type may skip __init__ on some versions
        _install_logging()
        path = _opt(options, "config")
        if not path:
            log.error(
                'python-fetcher(class("td_graph_plugin.hosts.syslog_ng.GraphFetcher")) needs '
                'options("config" "/etc/td-graph/td-graph.yaml"): the td-graph YAML config'
            )
            return False
        self._config_path = path
        self._tenants = _split(_opt(options, "tenants"))
        self._sources = _split(_opt(options, "sources"))
        for name, attr, example in (("queue-size", "_queue_size", "1000"), ("ack-timeout", "_ack_timeout", "100")):
            value = _opt(options, name)
            if value:
                try:
                    setattr(self, attr, max(1, int(value)))
                except ValueError:
                    log.error('options("%s" %r): expected a whole number such as "%s"', name, value, example)
                    return False
        try:
            config, _pm, catalogue = self._load()
        except ConfigError as exc:
            log.error("configuration error: %s (syslog-ng source not started; fix the file and reload)", exc)
            return False
        except PluginError as exc:
            log.error("plugin error: %s (syslog-ng source not started)", exc)
            return False
        except TdGraphError as exc:
            log.error("cannot start: %s", exc)
            return False
        _install_logging(config.log_level)
        from ..runtime import check_selection

        try:
            check_selection(
                config, catalogue, self._tenants, self._sources,
                tenants_key='options("tenants")', sources_key='options("sources")',
            )
        except ConfigError as exc:
            log.error("%s", exc)
            return False
        try:  # a locked or corrupt state database refuses the config now, not at the first page
            from ..state.opening import open_state

            open_state(config).close()
        except StateError as exc:
            log.error("%s (syslog-ng source not started)", exc)
            return False
        if config.output_type != "stdout":
            log.info("output.type %s is ignored inside syslog-ng: records go to the log path", config.output_type)
        if hasattr(self, "set_transport_name"):  # syslog-ng 4.5+
            try:
                self.set_transport_name("td-graph")
            except Exception:
                pass
        # BatchedAckTracker, not ConsecutiveAckTracker: with python-fetcher the consecutive tracker
        # deadlocks syslog-ng (its ack path calls Python while holding the tracker's mutex, and
        # fetch() asks that mutex for a bookmark while holding the GIL; seen with 3.38.1).  The
        # batched tracker calls Python with no lock held and skips aborted messages; the sink
        # computes the contiguous acknowledged prefix itself.
        self.ack_tracker = BatchedAckTracker(
            timeout=self._ack_timeout, batch_size=self._queue_size, batched_ack_callback=self._acked
        )
        log.info("configured from %s (state %s)", path, config.state_path)
        return True

    def _load(self) -> tuple[Any, Any, Any]:
        from ..runtime import load_validated

        assert self._config_path is not None
        return load_validated(self._config_path)

    def open(self) -> bool:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return True
            self._exiting.clear()
            try:
                self._start()
            except TdGraphError as exc:
                log.error("cannot start collecting: %s; syslog-ng retries after time-reopen()", exc)
                self._shutdown()
                return False
            except Exception:
                log.exception("cannot start collecting; syslog-ng retries after time-reopen()")
                self._shutdown()
                return False
        return True

    def _start(self) -> None:
        from ..cli.run_cluster import FencedAckSink, Replica
        from ..metrics import Metrics
        from ..runtime import build_runtime

        config, pm, catalogue = self._load()
        stop = threading.Event()
        self._replica = replica = Replica(config, self._tenants, Metrics())  # each process: a replica
        fence, q = replica.fence(), self._queue_size
        runtime = build_runtime(config, pm, catalogue, metrics=replica.metrics, stop=stop, make_sink=lambda state: (
            AckSink(state, stop=stop, max_queue=q) if fence is None else FencedAckSink(state, fence=fence, stop=stop, max_queue=q)))
        self._generation += 1
        self._runtime, self._sink = runtime, runtime.sink
        if config.metrics_listen:
            from ..observability import MetricsServerError, start_metrics_server

            try:
                self._server = start_metrics_server(config.metrics_listen, runtime.metrics, config.unhealthy_after)
            except MetricsServerError as exc:
                log.error("%s; collecting without the metrics endpoint", exc)
        jobs = runtime.engine.jobs(tenants=self._tenants, sources=self._sources)
        self._has_jobs = bool(jobs)
        if not jobs:
            log.warning("no source is enabled for the selected tenants; nothing to collect")
        self._thread = threading.Thread(
            target=self._run, args=(runtime, jobs, replica.join(runtime) if jobs else None), name="td-graph-engine", daemon=True
        )
        self._thread.start()
        log.info("collecting %d tenant x source jobs for syslog-ng", len(jobs))

    @staticmethod
    def _run(runtime: Any, jobs: list[Any], owns: Any = None) -> None:
        try:
            if jobs:
                runtime.engine.run_forever(jobs, owns=owns)
        except Exception:
            log.exception("the collector engine stopped unexpectedly")
            runtime.stop.set()
        fatal = runtime.engine.fatal
        if fatal is not None:
            log.error("collection stopped: %s", fatal)

    def fetch(self) -> tuple[int, Any]:
        sink = self._sink
        if sink is None:
            return self.FETCH_NOT_CONNECTED, None
        item = sink.take(FETCH_WAIT)
        if item is None:
            if not self._exiting.is_set() and self._engine_died(sink):
                log.error("the collector engine stopped; syslog-ng restarts the source after time-reopen()")
                return self.FETCH_ERROR, None
            return self.FETCH_NO_DATA, None
        seq, line = item
        text = line[:-1] if line.endswith(b"\n") else line
        msg = LogMessage(text)
        for key, value in message_fields(text).items():
            msg[key] = value
        msg["PROGRAM"] = "td-graph"
        msg.set_bookmark(f"{self._generation}:{seq}")
        return self.FETCH_SUCCESS, msg

    def _engine_died(self, sink: AckSink) -> bool:
        """The engine ended without being asked to (a fatal state/output error, a bug)."""
        if sink.failed is not None:
            return True
        thread = self._thread
        return self._has_jobs and (thread is None or not thread.is_alive())

    def _acked(self, bookmarks: Any) -> None:
        """BatchedAckTracker callback: these messages were acknowledged (aborted ones never are)."""
        try:
            if isinstance(bookmarks, (str, bytes)):
                bookmarks = [bookmarks]
            seqs = []
            for bookmark in bookmarks or ():
                text = bookmark.decode() if isinstance(bookmark, bytes) else str(bookmark)
                generation, _, seq = text.partition(":")
                if int(generation) == self._generation:
                    seqs.append(int(seq))
                # else: a message of a runtime that was stopped; its pages were dropped uncommitted
            sink = self._sink
            if seqs and sink is not None:
                sink.ack_each(seqs)
        except Exception:
            log.exception("cannot handle syslog-ng acknowledgements %r", bookmarks)

    def request_exit(self) -> None:
        self._exiting.set()
        runtime, sink = self._runtime, self._sink
        if runtime is not None:
            runtime.stop.set()
        if sink is not None:
            sink.wake()

    def close(self) -> None:
        with self._lock:
            self._shutdown()

    def deinit(self) -> None:
        with self._lock:
            self._shutdown()

    def _shutdown(self) -> None:
        """Stop the engine, drop unacknowledged pages (uncommitted), close state and metrics."""
        runtime, sink, thread, server = self._runtime, self._sink, self._thread, self._server
        if runtime is not None:
            runtime.stop.set()
        if sink is not None:
            sink.wake()
        if thread is not None:
            deadline = time.monotonic() + STOP_TIMEOUT
            while thread.is_alive() and time.monotonic() < deadline:
                thread.join(0.2)
            if thread.is_alive():
                log.warning("collectors still busy after %.0f s; closing anyway", STOP_TIMEOUT)
        if sink is not None:
            sink.close()
        if server is not None:
            try:
                server.stop()
            except Exception:
                log.exception("stopping the metrics endpoint failed")
        if self._replica is not None:  # after the last commit: free the leases for the other replicas
            self._replica.leave(release=runtime is None or runtime.engine.fatal is None)
        if runtime is not None:
            try:
                runtime.close()
            except Exception:
                log.exception("closing the state database failed")
        self._runtime = self._sink = self._thread = self._server = self._replica = None
