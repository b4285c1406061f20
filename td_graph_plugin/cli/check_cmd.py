"""``td-graph check``: offline, what ``run`` would refuse before any Graph call.

One line per check, ``ok`` / ``WARNING`` / ``FAILED`` and why; no Graph call, no file
created, the state's lock only tried (never kept).  Exit 0 ok (warnings included), 1 an
environment problem, 2 a configuration error.  Warnings are problems that concern
isolate/release only (the isolation credential, ``protected_users`` entries, the isolation
store's folder): they never stop the collector, so they never fail ``check`` (the systemd
unit runs it as ``ExecStartPre``).

A state locked by another process fails the check: ``run`` would refuse it, and right before
``run`` starts (ExecStartPre) it means another collector already uses this state.  ``doctor``
runs the same checks with ``collector_running_ok``: there a collector holding the state (and,
with it, the metrics port) is the normal state of a live system, reported and not failed.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import re
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from ..config import Config
from ..errors import ConfigError, PluginError, StateError
from ..isolation.resolve import is_object_id
from ..observability import MetricsServerError, parse_listen
from ..state import read_state

__all__ = ["register", "run_checks", "render_checks", "CheckResult", "CheckReport", "OK", "WARNING", "FAILED"]

OK, WARNING, FAILED = "ok", "WARNING", "FAILED"
# A UPN or a mail address: one @, a dotted domain (guests' UPNs carry #EXT# before the @); a
# proxy address is one behind a prefix (smtp:alias@contoso.com).
_ADDRESS = re.compile(r"^[^@\s/\\?\x00-\x1f\x7f]{1,256}@[^@\s.]+(\.[^@\s.]+)+$")
_PROXY = re.compile(r"^([A-Za-z][A-Za-z0-9]{0,15}):(\S+)$")


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # ok | WARNING | FAILED
    detail: str


@dataclass
class CheckReport:
    results: list[CheckResult] = field(default_factory=list)
    error: Exception | None = None  # the configuration error, when the config did not load
    locked_by: str | None = None  # pid of the process holding the state's lock

    @property
    def exit_code(self) -> int:
        if isinstance(self.error, ConfigError):
            return 2
        return 1 if any(r.status == FAILED for r in self.results) else 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def failed(self, name: str) -> bool:
        return any(r.name == name and r.status == FAILED for r in self.results)

    def add(self, name: str, status: str, detail: str) -> None:
        self.results.append(CheckResult(name, status, detail))

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "exit": self.exit_code, "checks": [asdict(r) for r in self.results]}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="offline: config, hooks, state and output paths, metrics port (no Graph call)",
        description="Everything `td-graph run` would refuse before any Graph call, checked offline: "
        "the config, hooks, the state and output paths, the metrics port, protected_users entries.",
        epilog="exit codes:\n  0  ok (warnings concern isolate/release only)\n"
        "  1  an environment problem: run would refuse to start\n  2  configuration error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-c", "--config", required=True, help="td-graph YAML config")
    p.set_defaults(func=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    report = run_checks(args.config)
    print(render_checks(report), end="")
    return report.exit_code


def render_checks(report: CheckReport) -> str:
    width = max((len(r.name) for r in report.results), default=6)
    indent = "\n" + " " * (7 + 2 + width + 2)  # a detail's further lines stay in its column
    lines = [f"{r.status:<7}  {r.name:<{width}}  {indent.join(r.detail.splitlines())}" for r in report.results]
    failed = sum(1 for r in report.results if r.status == FAILED)
    warned = sum(1 for r in report.results if r.status == WARNING)
    verdict = {0: "ok", 1: "run would refuse to start", 2: "configuration error"}[report.exit_code]
    lines.append(f"check: {verdict} ({failed} failed, {warned} warning{'s' if warned != 1 else ''})")
    return "\n".join(lines) + "\n"


def run_checks(config_path: str, *, collector_running_ok: bool = False) -> CheckReport:
    """Every check, in order; stops after the config when it does not load."""
    from ..config import load_config
    from ..logsetup import register_secrets
    from ..runtime import load_validated

    report = CheckReport()
    hooks_error = None
    try:
        try:
            config, _pm, catalogue = load_validated(config_path)
        except PluginError as exc:
            hooks_error = str(exc)
            config = load_config(config_path)  # the checks below need only the file
            register_secrets(config.secret_values())  # as load_validated does: never in a log line
    except ConfigError as exc:
        report.error = exc
        report.add("config", FAILED, str(exc))
        return report
    report.add("config", OK, f"{config_path}: {len(config.tenants)} tenant{'s' if len(config.tenants) != 1 else ''}")
    if hooks_error is not None:
        report.add("hooks", FAILED, hooks_error)
    else:
        where = f", hooks_dir {config.hooks_dir}" if config.hooks_dir else ""
        report.add("hooks", OK, f"{len(catalogue)} sources (built-ins, entry points{where})")
    _check_state(report, config, collector_running_ok)
    _check_isolation_store(report, config)
    _check_output(report, config)
    _check_metrics(report, config, collector_running_ok)
    _check_protected_users(report, config)
    _check_isolation_credentials(report, config)
    return report


# --- paths ---------------------------------------------------------------------------------
def _folder_problem(path: str) -> str | None:
    """Why files cannot be created beside ``path`` (None: they can)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"folder {folder} does not exist: create it, owned by the user td-graph runs as"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {folder} is not writable by uid {os.geteuid()}: chown it to the user td-graph runs as"
    return None


def _file_problem(path: str) -> str | None:
    if os.path.isdir(path):
        return f"{path} is a directory, not a file"
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        return f"{path} is not readable and writable by uid {os.geteuid()}: chown it to the user td-graph runs as"
    return None


def _lock_owner(path: str) -> tuple[str | None, str | None]:
    """(pid holding the state's lock or None, a problem opening the lock or None).

    The lock is only tried: a lock file that does not exist is held by nobody (the collector
    creates it before locking), and one that does is released at once."""
    lock_path = os.path.realpath(path) + ".lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot open the state lock {lock_path}: {exc.strerror}"
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown", None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None, None
    finally:
        os.close(fd)


def _check_state(report: CheckReport, config: Config, collector_running_ok: bool) -> None:
    if config.state_url:
        _check_database(report, config)
        return
    path = config.state_path
    problem = _folder_problem(path) or _file_problem(path)
    if problem is None:
        owner, problem = _lock_owner(path)
        if owner is not None:
            report.locked_by = owner
            if not collector_running_ok:
                problem = (f"{path} is in use by another td-graph process (pid {owner}): a collector already "
                           "runs with this state; stop it, or give this config its own state.path")
            else:
                report.add("state", OK, f"{path}: in use by the running collector (pid {owner})")
                return
    if problem is None:
        try:
            snapshot = read_state(path)
        except StateError as exc:
            problem = str(exc)
        else:
            found = "new (created on the first run)" if snapshot is None else f"{len(snapshot.rows)} sources recorded"
            report.add("state", OK, f"{path}: {found}, not in use")
            return
    report.add("state", FAILED, problem)


def _check_database(report: CheckReport, config: Config) -> None:
    """state.url: reachable, schema version not newer, clock skew against the database (leases
    expire by the database's clock; the thresholds and why: ``state.pgcheck``)."""
    from ..state.pgcheck import SKEW_FAIL, SKEW_WARN, probe_database

    try:
        probe = probe_database(str(config.state_url))
    except StateError as exc:
        report.add("state", FAILED, str(exc))
        return
    if probe.newer:
        report.add("state", FAILED, f"{probe.where} has td-graph schema version {probe.schema_version}, newer than "
                                    f"this td-graph understands ({probe.newest_known}): upgrade td-graph")
    else:
        found = ("new (td-graph creates its schema on the first run)" if probe.schema_version is None
                 else f"schema version {probe.schema_version}"
                 + (" (migrated on the first run)" if probe.schema_version < probe.newest_known else ""))
        report.add("state", OK, f"{probe.where} (PostgreSQL {probe.server_version}): reachable, {found}")
    skew = abs(probe.skew)
    detail = (f"this machine's clock is {skew:.1f}s {'behind' if probe.skew > 0 else 'ahead of'} the database's "
              "(leases expire by the database's clock; status times come from each replica's)")
    if skew > SKEW_FAIL:
        report.add("clock", FAILED, f"{detail}: more than {SKEW_FAIL:.0f}s; fix time sync (NTP) on this host")
    elif skew > SKEW_WARN:
        report.add("clock", WARNING, f"{detail}: more than {SKEW_WARN:.0f}s; check time sync (NTP)")
    else:
        report.add("clock", OK, f"within {SKEW_WARN:.0f}s of the database ({probe.skew:+.2f}s)")


def _check_isolation_store(report: CheckReport, config: Config) -> None:
    """The collector only reads the store (when it exists); isolate/release create and write it."""
    if config.state_url:
        report.add("isolation store", OK, "in the state database (state.url), shared by every replica")
        return
    path = config.isolation_state_path
    unreadable = _file_problem(path)
    if unreadable is not None:
        report.add("isolation store", FAILED, f"{unreadable} (the collector reads the isolation audit trail from it)")
    elif (problem := _folder_problem(path)) is not None:
        report.add("isolation store", WARNING, f"{problem} (isolate/release write {path} there)")
    else:
        report.add("isolation store", OK, path)


def _check_output(report: CheckReport, config: Config) -> None:
    if config.output_type != "file":
        report.add("output", OK, f"{config.output_type} (nothing to check)")
        return
    path = config.output_path or ""
    problem = _folder_problem(path) or _file_problem(path)
    if problem is None:
        rotation = ", rotated in its folder" if config.output_max_bytes else ""
        report.add("output", OK, f"file {path}: writable{rotation}")
    else:
        report.add("output", FAILED, problem)


# --- metrics port ----------------------------------------------------------------------------
def _check_metrics(report: CheckReport, config: Config, collector_running_ok: bool) -> None:
    listen = config.metrics_listen
    if not listen:
        report.add("metrics", OK, "off (metrics.listen not set)")
        return
    try:
        host, port = parse_listen(listen)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except MetricsServerError as exc:
        report.add("metrics", FAILED, str(exc))
        return
    except socket.gaierror as exc:
        report.add("metrics", FAILED, f"metrics.listen: cannot resolve {listen!r}: {exc.strerror}")
        return
    family, _, _, _, sockaddr = infos[0]
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the metrics server does
            sock.bind(sockaddr)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and collector_running_ok and report.locked_by is not None:
            report.add("metrics", OK, f"{listen}: in use, by the running collector (pid {report.locked_by}) presumably")
            return
        why = "the port is in use (another program, or a td-graph already running)" if exc.errno == errno.EADDRINUSE else exc.strerror
        report.add("metrics", FAILED, f"metrics.listen {listen}: cannot listen: {why}")
        return
    report.add("metrics", OK, f"{listen}: free")


# --- isolation: warnings only ------------------------------------------------------------------
def _check_protected_users(report: CheckReport, config: Config) -> None:
    """Syntax only (resolving needs Graph: ``doctor`` does it per tenant)."""
    entries = config.protected_users
    bad = [e for e in entries if not _names_a_user(e)]
    for entry in bad:
        report.add(
            "protected_users", WARNING,
            f"entry {entry!r} cannot name a user (not an object id, UPN, mail or proxy address such as "
            "smtp:alias@contoso.com): fix isolation.protected_users",
        )
    if not entries:
        report.add("protected_users", OK, "none listed")
    elif not bad:
        report.add(
            "protected_users", OK,
            f"{len(entries)} entr{'ies' if len(entries) != 1 else 'y'} well-formed (syntax only: `td-graph doctor` "
            "resolves them in each tenant, as isolate/release do before any change)",
        )


def _names_a_user(entry: str) -> bool:
    value = entry.strip()
    if is_object_id(value):
        return True
    proxy = _PROXY.match(value)
    return bool(_ADDRESS.match(proxy.group(2) if proxy else value))


def _check_isolation_credentials(report: CheckReport, config: Config) -> None:
    problems = [(t.name, t.isolation.problem) for t in config.tenants if t.isolation is not None and t.isolation.problem]
    for tenant, problem in problems:
        report.add(
            "isolation app", WARNING,
            f"tenant {tenant}: {problem} (isolate/release refuse until it is fixed; the collector does not use it)",
        )
    if not problems:
        separate = sum(1 for t in config.tenants if t.isolation is not None)
        report.add("isolation app", OK, f"{separate} of {len(config.tenants)} tenants have a separate isolation app")
