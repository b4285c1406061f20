"""``td-graph run``: collect until stopped, or one pass with ``--once``."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import TYPE_CHECKING

from ..status import HELD

if TYPE_CHECKING:
    from ..collector.engine import JobResult

__all__ = ["register", "cmd_run", "pass_summary", "EXIT_CODES"]

log = logging.getLogger("td_graph_plugin.cli")

EXIT_CODES = """exit codes:
  0  run: stopped cleanly (SIGTERM/SIGINT); --once: every source ok or skipped (unlicensed / not permitted)
  1  a fatal error (state, output); --once: a source failed
  2  configuration error (the file, --sources or --tenants), before any network call"""


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run",
        help="collect until stopped (or one pass with --once)",
        description="Collect every enabled source of every tenant until SIGTERM/SIGINT (state saved per page), or one pass with --once.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("-c", "--config", required=True, help="td-graph YAML config")
    run.add_argument("--once", action="store_true", help="one pass over every enabled source, then exit")
    run.add_argument("--sources", help="comma list of source names or areas to run")
    run.add_argument("--tenants", help="comma list of tenant names to run")
    run.set_defaults(func=cmd_run)


def pass_summary(results: list[JobResult]) -> str:
    """The ``--once`` summary counts what the operator configured: Graph sources.  Local feeds
    (the isolation audit trail) are reported apart, and only when they did something."""
    real = [r for r in results if r.job.spec.reads_graph]
    failed = sum(1 for r in real if r.failed)
    skipped = sum(1 for r in real if r.status in HELD)
    text = (
        f"pass complete: {sum(r.stats.records for r in real)} records, {len(real) - failed - skipped} sources ok, "
        f"{skipped} skipped (licence/permission), {failed} failed"
    )
    local = [r for r in results if not r.job.spec.reads_graph]
    audit = sum(r.stats.records for r in local)
    if audit:
        text += f"; {audit} isolation audit record{'s' if audit != 1 else ''}"
    broken = sorted({r.job.spec.name for r in local if r.failed})
    if broken:
        text += f"; {', '.join(broken)} failed"
    return text


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def cmd_run(args: argparse.Namespace) -> int:
    from ..logsetup import setup_logging
    from ..observability import ProgressDisplay, start_metrics_server
    from ..metrics import Metrics
    from ..runtime import build_runtime, check_selection, file_sink, load_validated
    from .run_cluster import FencedSink, Replica

    config, pm, catalogue = load_validated(args.config)
    setup_logging(args.log_level or config.log_level)
    _tune_gc()
    tenants, sources = _split(args.tenants), _split(args.sources)
    check_selection(config, catalogue, tenants, sources)
    replica = Replica(config, tenants, Metrics())  # the cluster side (state.url); no-op on SQLite
    fence = replica.fence()
    make_sink = (lambda state: file_sink(config, catalogue, state)) if fence is None else (
        lambda state: FencedSink.for_config(config, catalogue, state, fence)
    )
    runtime = build_runtime(config, pm, catalogue, make_sink=make_sink, metrics=replica.metrics)
    server = progress = None
    try:
        runtime.sink.open()
        _install_reopen(runtime.sink)
        if config.metrics_listen:
            server = start_metrics_server(config.metrics_listen, runtime.metrics, config.unhealthy_after)  # logs its URLs
        progress = ProgressDisplay(runtime.engine).start()
        _install_signals(runtime.stop)
        jobs = runtime.engine.jobs(tenants=tenants, sources=sources)
        if not jobs:
            log.warning("no source is enabled for the selected tenants; nothing to do")
            return 0
        owns = replica.join(runtime)  # a cluster: claims this replica's share before the first job
        if args.once:
            if owns is not None:  # this replica's share; the other replicas run theirs
                jobs = [j for j in jobs if owns(j.tenant.name)]
            results = runtime.engine.run_once(jobs)
            if runtime.engine.fatal is not None:
                raise runtime.engine.fatal
            log.info("%s", pass_summary(results))
            return 1 if any(r.failed for r in results) else 0
        log.info(
            "collecting %d tenant x source jobs; SIGTERM or Ctrl-C stops cleanly",
            sum(1 for j in jobs if j.spec.reads_graph),
        )
        runtime.engine.run_forever(jobs, owns=owns)
        if runtime.engine.fatal is not None:
            raise runtime.engine.fatal
        log.info("stopped; state saved")
        return 0
    finally:
        if progress is not None:
            progress.stop()
        if server is not None:
            server.stop()
        runtime.sink.close()
        replica.leave(release=runtime.engine.fatal is None)  # after the last commit: leases freed at once
        runtime.close()


def _tune_gc() -> None:
    """Records are acyclic dicts made and dropped per page: a collector pass every 700
    allocations (the default) costs ~10% of throughput for nothing. Start-up objects are
    frozen out of the collector's way; cycles are still collected, just less often."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _install_reopen(sink: object) -> None:
    """SIGHUP reopens the file output (logrotate's postrotate); its default action would kill us."""
    from ..collector import SyncSink

    if threading.current_thread() is not threading.main_thread() or not isinstance(sink, SyncSink):
        return
    signal.signal(signal.SIGHUP, lambda signum, frame: sink.request_reopen())


def _install_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):  # type: ignore[no-untyped-def]
        log.info("received %s: finishing the current pages and saving state", signal.Signals(signum).name)
        stop.set()
        # A second signal stops at once.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


