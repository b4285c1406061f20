"""``td-graph state migrate``: move a single-node SQLite state into PostgreSQL, so a collector
that grew into a cluster resumes every source where it stopped (no record lost, none sent
twice).  The copy itself: ``state.migrate``.

Exit 0 copied, 1 refused or failed (a collector holds the SQLite state, the target already
holds state, the database is unreachable), 2 usage.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]

EPILOG = """\
what is copied, in one transaction (all or nothing):
  cursors, dedup keys, object hashes, source statuses, query shapes, the isolation audit
  records (from --isolation-from, default: the state file's -isolation.db beside it) and,
  with --replica, the file output's committed position.

--replica: output positions belong to one replica (each replica writes its own file).
  Give the cluster.replica name of the process that will keep writing the SAME output file
  the single-node collector wrote; without --replica no position is copied, and a replica's
  file output appends to whatever file is at its path, as on a first run (records committed
  before the migration are not collected again: cursors and dedup keys are copied either way).

stop the collector first: the SQLite state's lock is held for the whole copy.

exit codes:
  0  copied
  1  refused or failed (collector running, target not empty, database unreachable)
  2  usage
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("state", help="state maintenance: migrate SQLite state into PostgreSQL")
    inner = p.add_subparsers(dest="state_command", metavar="SUBCOMMAND")
    inner.required = True
    m = inner.add_parser(
        "migrate",
        help="copy a SQLite state into an empty PostgreSQL state (state.url)",
        description="Copy everything a single-node collector's SQLite state holds into an empty "
        "PostgreSQL database, so replicas pointed at it (state.url) resume where it stopped.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("--from", dest="source", required=True, metavar="FILE", help="the SQLite state (state.path)")
    m.add_argument("--to", dest="target", required=True, metavar="URL", help="postgresql://… (the cluster's state.url)")
    m.add_argument("--isolation-from", metavar="FILE",
                   help="the SQLite isolation store (default: FILE without .db, plus -isolation.db)")
    m.add_argument("--replica", help="copy the file output positions to this cluster.replica (default: none)")
    m.add_argument("--force", action="store_true", help="replace td-graph state already in the target")
    m.set_defaults(func=_cmd_migrate)


def _cmd_migrate(args: argparse.Namespace) -> int:
    import sys

    from ..state.migrate import migrate_sqlite_to_postgres

    if not args.target.startswith(("postgresql://", "postgres://")):
        print("td-graph: --to must be a PostgreSQL URL such as postgresql://td-graph@db.internal/tdgraph",
              file=sys.stderr)
        return 2
    iso = args.isolation_from
    if iso is None:
        base = args.source[:-3] if args.source.endswith(".db") else args.source
        iso = base + "-isolation.db"  # Config.isolation_state_path's default
    result = migrate_sqlite_to_postgres(args.source, args.target, isolation_path=iso, replica=args.replica,
                                        force=args.force)
    print(f"migrated {args.source} into {result.target}:")
    for name, n in result.counts.items():
        print(f"  {name:<18} {n}")
    if not args.replica:
        print("  (no --replica: file output positions not copied)")
    return 0
