"""``td-graph capture``: a real tenant's responses as scrubbed cassettes the test suite replays."""

from __future__ import annotations

import argparse

__all__ = ["register", "cmd_capture"]

EPILOG = """what is written under --out (nothing else is touched: state and outputs stay as they are):
  capture.json, scrub-report.json, discovery.yaml, sources/NAME.yaml

tokens, secrets and Authorization headers are never written; tenant and object ids, UPNs,
mail addresses, names, IPs and device names are replaced consistently with a key made for this
capture and never stored; free text is replaced. Read scrub-report.json before sharing.

exit codes:
  0  captured
  1  the token could not be had, or a source could not be captured at all
  2  usage or configuration error (unknown tenant or source, --out not empty)"""


def _pages(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "capture",
        help="record a real tenant's responses as scrubbed VCR cassettes for the test suite",
        description="Record the discovery calls and the first pages of each source of one tenant as "
        "scrubbed VCR cassettes (cassettes/captured/NAME/ in the repository replays them).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-c", "--config", required=True, help="td-graph YAML config")
    p.add_argument("--tenant", required=True, help="the tenant (its name in the config)")
    p.add_argument("--out", required=True, help="a new or empty folder, e.g. cassettes/captured/NAME")
    p.add_argument("--sources", help="comma list of source names or areas (default: the config's enabled sources)")
    p.add_argument("--pages", type=_pages, help="pages per source (default: 2)")
    p.set_defaults(func=cmd_capture)


def cmd_capture(args: argparse.Namespace) -> int:
    from ..capture import DEFAULT_PAGES, capture
    from ..logsetup import setup_logging
    from ..runtime import check_selection, load_validated

    config, _pm, catalogue = load_validated(args.config)
    setup_logging(args.log_level or config.log_level)
    sources = [s.strip() for s in (args.sources or "").split(",") if s.strip()] or None
    check_selection(config, catalogue, [args.tenant], sources, tenants_key="--tenant")
    pages = args.pages or DEFAULT_PAGES
    result = capture(config, catalogue, args.tenant, args.out, sources=sources, pages=pages)
    for sc in result.sources.values():
        note = f"first {pages} page(s)" if sc.truncated else "complete"
        print(f"{sc.name}: {sc.status}, {sc.pages} page(s), {len(sc.records)} record(s), {note} -> {sc.cassette}")
    print(f"written to {result.out}; read {result.out}/scrub-report.json before sharing it")
    for problem in result.problems:
        print(f"td-graph capture: {problem}")
    return 0 if result.ok else 1
