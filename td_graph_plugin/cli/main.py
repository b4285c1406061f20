"""``td-graph``: run, sources, simulate, demo (and the commands later modules add).

Exit codes follow the contract: 0 success, 1 fatal or a failed source, 2 configuration error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from .. import __version__
from .exits import guarded

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
    from . import doctor_cmd, isolation_cmd, run_cmd

    run_cmd.register(sub)
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

    for module in (doctor_cmd, isolation_cmd):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ..logsetup import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level or "info")
    return guarded(args.func, args)


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
    from .demo import run_simulate

    return run_simulate(port=args.port, profile=args.profile, host=args.host)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(profile=args.profile, rounds=args.rounds, state_path=args.state)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
