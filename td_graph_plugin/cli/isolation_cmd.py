"""``td-graph isolate`` and ``td-graph release``: contain a compromised user, and undo it.

The human report (one line per step, request ids, what to do) goes to **stderr**; the audit
record goes to the configured output (stdout NDJSON, or appended to the file output with its
exactly-once offset) and into the state database.  Exit 0: done, dry run, or nothing to do;
1: refused, failed or partial; 2: usage or configuration error.

Both commands are a thin shell over the isolation API (``isolation.IsolationService``), the
one entry point a SOAR integration uses too: this module loads the config, opens the
isolation store, wires the audit emitter and passes every option through.

SIGTERM while an action runs becomes an exception (once), so the action is audited as
``interrupted`` with the steps that ran, exactly like Ctrl-C; the command then exits 143
(Ctrl-C: 130) after printing the report.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

__all__ = ["register"]

_EPILOG_ISOLATE = """\
steps, always in this order: resolve the user, guard rails (protected users, privileged roles),
snapshot, disable, revoke sessions, [force password change], read back.  A dry run sends no write.
Re-running is safe: an already disabled account is not patched again and sessions revoked by a
still-active isolation are not revoked again (--revoke-again to do it anyway).
With tenants[].isolation configured the command acts as that separate app, never as the collector's.
Ctrl-C or SIGTERM while it runs is audited (outcome interrupted, the steps that ran) and exits 130 / 143.
exit: 0 done / dry run / nothing to do, 1 refused, failed or partial, 2 usage or config error.
"""

_EPILOG_RELEASE = """\
re-enables the account only if the isolation disabled it and it was enabled before.  Revoked
sessions cannot be restored and forceChangePasswordNextSignIn is NOT reverted.  Without an
active isolation record the release is refused unless --force (re-enable without a snapshot, after
the guard rails: protected users, and privileged or PIM-eligible roles unless --allow-privileged).
exit: 0 done / dry run / nothing to do, 1 refused or failed, 2 usage or config error.
"""


def register(sub: argparse._SubParsersAction) -> None:
    iso = sub.add_parser(
        "isolate", help="contain a compromised user (disable, revoke sessions)",
        epilog=_EPILOG_ISOLATE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    iso.add_argument("-c", "--config", required=True, help="td-graph YAML config")
    iso.add_argument("--tenant", required=True, help="the tenant's configured name")
    iso.add_argument("user", metavar="USER", help="user principal name or object id")
    iso.add_argument("--reason", required=True, help="why (ticket or incident reference); recorded in the audit trail")
    iso.add_argument("--dry-run", action="store_true", help="resolve, check the guard rails and show the plan; write nothing")
    iso.add_argument("--no-disable", action="store_true", help="do not disable the account")
    iso.add_argument("--no-revoke-sessions", action="store_true", help="do not revoke sign-in sessions")
    iso.add_argument("--force-password-change", action="store_true",
                     help="require a password change at next sign-in (no password is set or shown)")
    iso.add_argument("--allow-privileged", action="store_true",
                     help="allow a target that holds a directory role (never a protected user)")
    iso.add_argument("--revoke-again", action="store_true",
                     help="revoke sessions even if a still-active isolation already did")
    iso.add_argument("--requested-by", help="who asks (default: the OS user)")
    iso.set_defaults(func=_cmd_isolate)

    rel = sub.add_parser(
        "release", help="undo an isolation from its stored snapshot",
        epilog=_EPILOG_RELEASE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rel.add_argument("-c", "--config", required=True, help="td-graph YAML config")
    rel.add_argument("--tenant", required=True, help="the tenant's configured name")
    rel.add_argument("user", metavar="USER", help="user principal name or object id")
    rel.add_argument("--reason", required=True, help="why (ticket reference); recorded in the audit trail")
    rel.add_argument("--dry-run", action="store_true", help="show what release would do; write nothing")
    rel.add_argument("--force", action="store_true", help="re-enable even without an isolation record")
    rel.add_argument("--allow-privileged", action="store_true",
                     help="with --force: allow a target that holds a directory role, active or PIM-eligible")
    rel.add_argument("--requested-by", help="who asks (default: the OS user)")
    rel.set_defaults(func=_cmd_release)


def _usage(parser_name: str, message: str) -> int:
    print(f"td-graph {parser_name}: error: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace, action: str) -> int:
    from ..errors import ConfigError
    from ..isolation import IsolationService, normalise_steps, open_store, render
    from ..isolation.resolve import check_user_argument
    from ..logsetup import setup_logging
    from ..metrics import Metrics
    from ..runtime import FeedFlusher  # the audit feed's emitter (runs the feed if no collector does)
    from ..runtime import load_validated

    # Usage problems first: nothing is opened or sent for a command line that is wrong.
    try:
        check_user_argument(args.user)
        if not args.reason.strip():
            raise ValueError("--reason must not be empty (a ticket or incident reference)")
        steps = None
        if action == "isolate":
            wanted = [s for s, off in (("disable", args.no_disable), ("revoke_sessions", args.no_revoke_sessions)) if not off]
            if args.force_password_change:
                wanted.append("force_password_change")
            if not wanted:
                raise ValueError("nothing to do: --no-disable and --no-revoke-sessions without --force-password-change")
            steps = normalise_steps(wanted)
    except ValueError as exc:
        return _usage(action, str(exc))
    config, _pm, _catalogue = load_validated(args.config)
    setup_logging(getattr(args, "log_level", None) or config.log_level)
    if args.tenant not in {t.name for t in config.tenants}:
        raise ConfigError(
            f"unknown tenant {args.tenant!r}; configured: {', '.join(t.name for t in config.tenants)}", key="--tenant"
        )
    # The isolation audit store first: if it cannot be opened nothing is attempted, because
    # nothing could be audited.  Audit records reach the pipeline through the collector's
    # feed, or through this process (FeedFlusher) when no collector is running.
    metrics = Metrics()
    with open_store(config) as store:
        service = IsolationService(config, state=store, metrics=metrics, emit=FeedFlusher(config, metrics))
        try:
            with _sigterm_raises():
                if action == "isolate":
                    result = service.isolate(
                        args.tenant, args.user, args.reason, steps, args.dry_run,
                        allow_privileged=args.allow_privileged, revoke_again=args.revoke_again,
                        requested_by=args.requested_by,
                    )
                else:
                    result = service.release(
                        args.tenant, args.user, args.reason, args.dry_run, force=args.force,
                        allow_privileged=args.allow_privileged, requested_by=args.requested_by,
                    )
        except ValueError as exc:
            return _usage(action, str(exc))
        except (KeyboardInterrupt, Terminated) as exc:
            stopped = getattr(exc, "isolation_result", None)
            if stopped is not None:
                sys.stderr.write(render(stopped))
            print(f"td-graph {action}: stopped by {'SIGTERM' if isinstance(exc, Terminated) else 'Ctrl-C'}; "
                  "the audit record says which steps ran", file=sys.stderr)
            return 143 if isinstance(exc, Terminated) else 130
    sys.stderr.write(render(result))
    sys.stderr.flush()
    return result.exit_code


class Terminated(BaseException):
    """SIGTERM while an isolation action runs (a BaseException: no ``except Exception`` swallows it)."""


class _sigterm_raises:
    """While active (main thread only), the first SIGTERM raises ``Terminated``; later ones
    are ignored so the interrupted action can store its audit record."""

    def __enter__(self) -> "_sigterm_raises":
        self.previous = None
        self.fired = False
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handler)
        return self

    def _handler(self, signum: int, frame: object) -> None:
        if not self.fired:
            self.fired = True
            raise Terminated()

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _cmd_isolate(args: argparse.Namespace) -> int:
    return _run(args, "isolate")


def _cmd_release(args: argparse.Namespace) -> int:
    return _run(args, "release")
