"""``td-graph``: run, sources, simulate, demo, conf (and the commands other modules register).

Exit codes follow the contract: 0 success, 1 fatal or a failed source, 2 configuration error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from .. import __version__
from ..logsetup import LOG_FORMATS, LOG_LEVELS
from .exits import guarded

__all__ = ["main", "build_parser", "SIMULATOR_PROFILES"]

log = logging.getLogger("td_graph_plugin.cli")

# The simulator's licence profiles (simulator/profiles.py PROFILES; tests/test_ops_surface.py
# keeps the two equal): named here so a typo is one line, without importing the simulator.
SIMULATOR_PROFILES = ("e5", "all", "restricted", "p1", "free")


def _add_log_options(parser: argparse.ArgumentParser, *, default: object) -> None:
    """``--log-level``/``--log-format`` before or after the subcommand.  A subcommand's copies
    default to SUPPRESS, so leaving them out there keeps what was given before it."""
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=default, help="override logging.level")
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default=default,
        help="logs on stderr in UTC: text (default) or json (one object per line)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="td-graph",
        description="Microsoft Graph input plugin for SIEM log shippers.",
    )
    parser.add_argument("--version", action="version", version=f"td-graph {__version__}")
    _add_log_options(parser, default=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    from . import capture_cmd, check_cmd, conf_cmd, doctor_cmd, isolation_cmd, run_cmd, state_cmd, status_cmd

    run_cmd.register(sub)
    src = sub.add_parser("sources", help="the source catalogue, third-party plugins included")
    src.add_argument("-c", "--config", help="config (its hooks_dir adds local sources)")
    src.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    src.set_defaults(func=_cmd_sources)

    profiles = ", ".join(SIMULATOR_PROFILES)
    sim = sub.add_parser("simulate", help="a local Graph simulator (TLS, fake tenant)")
    sim.add_argument("--port", type=int, default=8443)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--profile", default="e5", help=f"licence profile: {profiles}")
    sim.set_defaults(func=_cmd_simulate)

    demo = sub.add_parser("demo", help="the whole pipeline offline against the simulator")
    demo.add_argument("--profile", default="e5", help=f"licence profile: {profiles}")
    demo.add_argument("--rounds", type=int, default=2, help="collection passes (the simulator adds new, late and updated events between them)")
    demo.add_argument("--state", help="state database (default: a temporary one)")
    demo.set_defaults(func=_cmd_demo)

    for module in (doctor_cmd, check_cmd, status_cmd, isolation_cmd, conf_cmd, capture_cmd, state_cmd):
        module.register(sub)
    # Register every command above this line: each gets --log-level/--log-format here.
    for command in {id(p): p for p in sub.choices.values()}.values():
        _add_log_options(command, default=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ..logsetup import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level or "info", fmt=args.log_format or "text")
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


def _unknown_profile(command: str, profile: str) -> bool:
    """One line and exit 2 for a profile the simulator does not know (never its traceback)."""
    if profile in SIMULATOR_PROFILES:
        return False
    print(
        f"td-graph {command}: unknown licence profile {profile!r}; known: {', '.join(SIMULATOR_PROFILES)}",
        file=sys.stderr,
    )
    return True


def _cmd_simulate(args: argparse.Namespace) -> int:
    if _unknown_profile("simulate", args.profile):
        return 2
    from .demo import run_simulate

    return run_simulate(port=args.port, profile=args.profile, host=args.host)


def _cmd_demo(args: argparse.Namespace) -> int:
    if _unknown_profile("demo", args.profile):
        return 2
    from .demo import run_demo

    return run_demo(profile=args.profile, rounds=args.rounds, state_path=args.state)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
