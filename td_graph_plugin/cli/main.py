"""``td-graph``: run, sources, simulate, demo (and the commands later modules add).

Exit codes follow the contract: 0 success, 1 fatal or a failed source, 2 configuration error.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Sequence

from .. import __version__
from ..errors import ConfigError, PluginError, TdGraphError

__all__ = ["main", "build_parser"]

log = logging.getLogger("td_graph_plugin.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="td-graph",
        description="Microsoft Graph input plugin for SIEM log shippers.",
    )
    parser.add_argument("--version", action="version", version=f"td-graph {__version__}")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="override logging.level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="collect until stopped (or one pass with --once)")
    run.add_argument("-c", "--config", required=True, help="td-graph YAML config")
    run.add_argument("--once", action="store_true", help="one pass over every enabled source, then exit")
    run.add_argument("--sources", help="comma list of source names or areas to run")
    run.add_argument("--tenants", help="comma list of tenant names to run")
    run.set_defaults(func=_cmd_run)

    src = sub.add_parser("sources", help="the source catalogue, third-party plugins included")
    src.add_argument("-c", "--config", help="config (its hooks_dir adds local sources)")
    src.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    src.set_defaults(func=_cmd_sources)

    sim = sub.add_parser("simulate", help="a local Graph simulator (TLS, fake tenant)")
    sim.add_argument("--port", type=int, default=8443)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--profile", default="e5", help="licence profile: e5, p1, free, ...")
    sim.set_defaults(func=_cmd_simulate)

    demo = sub.add_parser("demo", help="the whole pipeline offline against the simulator")
    demo.add_argument("--profile", default="e5")
    demo.add_argument("--rounds", type=int, default=2, help="collection passes (the simulator adds new, late and updated events between them)")
    demo.add_argument("--state", help="state database (default: a temporary one)")
    demo.set_defaults(func=_cmd_demo)

    from . import doctor_cmd, isolation_cmd

    for module in (doctor_cmd, isolation_cmd):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ..logsetup import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level or "info")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"td-graph: configuration error: {exc}", file=sys.stderr)
        return 2
    except PluginError as exc:
        print(f"td-graph: plugin error: {exc}", file=sys.stderr)
        return 1
    except TdGraphError as exc:
        print(f"td-graph: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _cmd_run(args: argparse.Namespace) -> int:
    from ..collector import SyncSink
    from ..logsetup import setup_logging
    from ..observability import ProgressDisplay, start_metrics_server
    from ..outputs import output_from_config
    from ..outputs.recovery import make_adopter
    from ..runtime import build_runtime, load_validated

    config, pm, catalogue = load_validated(args.config)
    setup_logging(args.log_level or config.log_level)
    _tune_gc()
    tenants, sources = _split(args.tenants), _split(args.sources)
    known_tenants = {t.name for t in config.tenants}
    for t in tenants or ():
        if t not in known_tenants:
            raise ConfigError(f"unknown tenant {t!r}; configured: {', '.join(sorted(known_tenants))}", key="--tenants")
    for s in sources or ():
        if s in ("td_graph", "td_graph.isolation"):
            continue  # the isolation audit feed (not a Graph source)
        if s not in catalogue and not any(n.startswith(s + ".") for n in catalogue.names()):
            raise ConfigError(f"unknown source {s!r} (see `td-graph sources`)", key="--sources")
    output = output_from_config(config)
    sinks: list[SyncSink] = []

    def make_sink(state):  # type: ignore[no-untyped-def]
        sink = SyncSink(output, state, adopt=make_adopter(config, catalogue))
        sinks.append(sink)
        return sink

    runtime = build_runtime(config, pm, catalogue, make_sink=make_sink)
    server = progress = None
    try:
        sinks[0].open()
        if config.metrics_listen:
            server = start_metrics_server(config.metrics_listen, runtime.metrics, config.unhealthy_after)
            log.info("metrics at %s (health at %s)", server.metrics_url, server.healthz_url)
        progress = ProgressDisplay(runtime.engine).start()
        _install_signals(runtime.stop)
        jobs = runtime.engine.jobs(tenants=tenants, sources=sources)
        if not jobs:
            log.warning("no source is enabled for the selected tenants; nothing to do")
            return 0
        if args.once:
            results = runtime.engine.run_once(jobs)
            if runtime.engine.fatal is not None:
                raise runtime.engine.fatal
            failed = [r for r in results if r.failed]
            skipped = [r for r in results if r.status in ("unlicensed", "forbidden")]
            total = sum(r.stats.records for r in results)
            log.info(
                "pass complete: %d records, %d sources ok, %d skipped (licence/permission), %d failed",
                total,
                len(results) - len(failed) - len(skipped),
                len(skipped),
                len(failed),
            )
            return 1 if failed else 0
        log.info("collecting %d tenant x source jobs; SIGTERM or Ctrl-C stops cleanly", len(jobs))
        runtime.engine.run_forever(jobs)
        if runtime.engine.fatal is not None:
            raise runtime.engine.fatal
        log.info("stopped; state saved")
        return 0
    finally:
        if progress is not None:
            progress.stop()
        if server is not None:
            server.stop()
        for sink in sinks:
            sink.close()
        runtime.close()


def _tune_gc() -> None:
    """Records are acyclic dicts made and dropped per page: a collector pass every 700
    allocations (the default) costs ~10% of throughput for nothing. Start-up objects are
    frozen out of the collector's way; cycles are still collected, just less often."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


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


def _cmd_sources(args: argparse.Namespace) -> int:
    from ..plugins import create_plugin_manager, load_catalogue
    from ..runtime import load_validated
    from .catalogue_view import render_sources

    if args.config:
        _, _, catalogue = load_validated(args.config)
    else:
        catalogue = load_catalogue(create_plugin_manager())
    print(render_sources(catalogue, args.format))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ..simulator import serve

    return int(serve(port=args.port, profile=args.profile, host=args.host) or 0)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(profile=args.profile, rounds=args.rounds, state_path=args.state)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
