"""Helpers for the tests that start real log shippers (syslog-ng, rsyslog) from Debian packages.

A shipper that is missing makes the test FAIL with the Debian package to install: these tests
are the proof that td-graph runs inside the shippers, so a machine without them must not pass
silently (scripts/test.sh installs them).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, ".cache")

# The four simulated sources the host tests collect (one per collection style).
HOST_SOURCES = ["audit_logs.sign_ins", "audit_logs.directory_audits", "security.alerts_v2", "directory.users"]


# --- waiting -----------------------------------------------------------------------------------
def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- binaries ----------------------------------------------------------------------------------
def syslog_ng_binary() -> str:
    path = shutil.which("syslog-ng") or ("/usr/sbin/syslog-ng" if os.access("/usr/sbin/syslog-ng", os.X_OK) else None)
    if path is None:
        pytest.fail(
            "syslog-ng is not installed: install the Debian packages syslog-ng-core and syslog-ng-mod-python "
            "(apt-get install syslog-ng-core syslog-ng-mod-python; scripts/test.sh does it)"
        )
    return path


def syslog_ng_python_version(binary: str) -> str:
    """'3.11' for the Python syslog-ng's mod-python embeds; fails if the module is missing."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"mod-python\.cpython-(\d)(\d+)", out)
    if m is None:
        if "mod-python" in out:
            return f"{sys.version_info.major}.{sys.version_info.minor}"
        pytest.fail(
            "syslog-ng has no Python module: install the Debian package syslog-ng-mod-python "
            f"(syslog-ng --version lists: {out.strip().splitlines()[-1] if out.strip() else 'nothing'})"
        )
    return f"{m.group(1)}.{m.group(2)}"


def syslog_ng_ctl() -> str | None:
    return shutil.which("syslog-ng-ctl") or ("/usr/sbin/syslog-ng-ctl" if os.access("/usr/sbin/syslog-ng-ctl", os.X_OK) else None)


RSYSLOG_DIR = os.path.join(CACHE, "rsyslog")
RSYSLOG_HINT = (
    "rsyslog is needed: Debian's package rsyslog conflicts with syslog-ng-core, so scripts/test.sh unpacks it "
    "into .cache/rsyslog (cd .cache && apt-get download rsyslog && dpkg -x rsyslog_*.deb rsyslog; its libraries "
    "come from the Debian packages libestr0 libfastjson4 liblognorm5)"
)


def rsyslogd_binary() -> tuple[str, str]:
    """(rsyslogd, module directory): the unpacked copy in .cache/rsyslog, else an installed one."""
    unpacked = os.path.join(RSYSLOG_DIR, "usr", "sbin", "rsyslogd")
    candidates = [(unpacked, os.path.join(RSYSLOG_DIR, "usr", "lib", "x86_64-linux-gnu", "rsyslog"))]
    system = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    for libdir in glob.glob("/usr/lib/*/rsyslog") + ["/usr/lib/rsyslog"]:
        candidates.append((system, libdir))
    for binary, moddir in candidates:
        if os.access(binary, os.X_OK) and os.path.isfile(os.path.join(moddir, "imfile.so")):
            return binary, moddir
    pytest.fail(RSYSLOG_HINT)


# --- syslog-ng's Python: a virtualenv on the interpreter syslog-ng embeds -------------------------
def _tree_digest(paths: Iterable[str]) -> str:
    h = hashlib.sha256()
    for top in paths:
        full = os.path.join(ROOT, top)
        if os.path.isfile(full):
            files = [full]
        else:
            files = sorted(
                os.path.join(d, f)
                for d, dirs, fs in os.walk(full)
                if "__pycache__" not in d
                for f in fs
                if not f.endswith((".pyc", ".pyo"))
            )
        for f in files:
            h.update(os.path.relpath(f, ROOT).encode())
            with open(f, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def _copy_source(dest: str) -> str:
    """The working tree's package files, copied so the build never writes into the checkout."""
    src = os.path.join(dest, "src")
    os.makedirs(src)
    for name in ("setup.cfg", "pyproject.toml", "setup.py", "README.md", "LICENSE", "MANIFEST.in"):
        if os.path.exists(os.path.join(ROOT, name)):
            shutil.copy2(os.path.join(ROOT, name), src)
    shutil.copytree(
        os.path.join(ROOT, "td_graph_plugin"),
        os.path.join(src, "td_graph_plugin"),
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return src


def _run(cmd: list[str], what: str, timeout: float = 600) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{what} failed ({' '.join(cmd)}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def syslog_ng_site_packages(python_version: str) -> str:
    """Build (once, cached under .cache/) the environment documented in docs/hosts.md::

        /usr/bin/python3 -m venv --system-site-packages /opt/td-graph
        /opt/td-graph/bin/pip install td-graph-plugin       # here: this checkout

    and return its site-packages directory, for syslog-ng's PYTHONPATH.  The venv is rebuilt
    when the dependencies change (setup.cfg, pyproject.toml) and td-graph is reinstalled
    (``--no-deps``) when the package's files change.
    """
    python = f"/usr/bin/python{python_version}"
    if not os.access(python, os.X_OK):
        pytest.fail(
            f"syslog-ng embeds Python {python_version} but {python} is missing: install the Debian package "
            f"python{python_version} (and python3-venv)"
        )
    venv = os.path.join(CACHE, f"syslog-ng-python{python_version}")
    site = os.path.join(venv, "lib", f"python{python_version}", "site-packages")
    os.makedirs(CACHE, exist_ok=True)
    deps = _tree_digest(["setup.cfg", "pyproject.toml"])
    code = _tree_digest(["setup.cfg", "pyproject.toml", "td_graph_plugin"])
    with open(os.path.join(CACHE, f"syslog-ng-python{python_version}.lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test runs share the cache
        stamp_deps, stamp_code = os.path.join(venv, ".td-graph-deps"), os.path.join(venv, ".td-graph-code")
        if _read(stamp_deps) != deps or not os.path.isdir(site):
            shutil.rmtree(venv, ignore_errors=True)
            _run([python, "-m", "venv", "--system-site-packages", venv], "creating the virtualenv (Debian package python3-venv)")
            with tempfile.TemporaryDirectory(prefix="td-graph-build-") as tmp:
                _run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--quiet",
                      "--disable-pip-version-check", _copy_source(tmp)], "pip install td-graph into the virtualenv")
            _write(stamp_deps, deps)
            _write(stamp_code, code)
        elif _read(stamp_code) != code:
            with tempfile.TemporaryDirectory(prefix="td-graph-build-") as tmp:
                _run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--quiet", "--no-deps",
                      "--force-reinstall", "--disable-pip-version-check", _copy_source(tmp)],
                     "pip install td-graph (no deps) into the virtualenv")
            _write(stamp_code, code)
    return site


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


# --- the simulator side ------------------------------------------------------------------------
def write_td_graph_config(sim, tenant, workdir: str, *, output: dict | None = None, sources: list[str] | None = None,
                          settings: dict | None = None, extra: dict | None = None) -> str:
    from td_graph_plugin.cli.demo import demo_config

    src: dict = {"include": list(sources or HOST_SOURCES)}
    if settings:
        src["settings"] = settings
    cfg = demo_config(sim, tenant, os.path.join(workdir, "state.db"), output=output, sources=src)
    cfg.update(extra or {})
    path = os.path.join(workdir, "td-graph.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(cfg, fh, sort_keys=False)
    return path


def simulator_ids(tenant) -> dict[str, set[str]]:
    """What the simulated tenant holds for each host-test source (what must arrive)."""
    return {
        "audit_logs.sign_ins": {o["id"] for o in tenant.sign_ins},
        "audit_logs.directory_audits": {o["id"] for o in tenant.directory_audits},
        "security.alerts_v2": {o["id"] for o in tenant.alerts},
        "directory.users": {o["id"] for o in tenant.users},
    }


def ids_by_source(records: Iterable[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {s: [] for s in HOST_SOURCES}
    for r in records:
        out.setdefault(r["source"], []).append(r["id"])
    return out


def committed_ids(state_path: str) -> dict[str, set[str]]:
    """Object ids the td-graph state says were delivered: window sources' seen keys (``id`` or
    ``id|version``) and the inventory's object table."""
    import sqlite3

    db = sqlite3.connect(f"file:{state_path}?mode=ro", uri=True)
    try:
        out: dict[str, set[str]] = {s: set() for s in HOST_SOURCES}
        for source, key in db.execute("SELECT s.source, k.key FROM seen k JOIN streams s ON s.id = k.stream"):
            out.setdefault(source, set()).add(key.split("|", 1)[0])
        for source, obj_id in db.execute("SELECT source, id FROM objects"):
            out.setdefault(source, set()).add(obj_id)
        return out
    finally:
        db.close()


def read_ndjson(path: str) -> list[dict]:
    import json

    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n"):  # a line still being written is not counted yet
                out.append(json.loads(line))
    return out


# --- a syslog-ng process -----------------------------------------------------------------------
@dataclass
class SyslogNg:
    """``syslog-ng -F`` with its own config, persist file, pid file and control socket."""

    workdir: str
    pythonpath: str
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def log_path(self) -> str:
        return os.path.join(self.workdir, f"syslog-ng.{self.starts}.log")

    @property
    def control(self) -> str:
        return os.path.join(self.workdir, "syslog-ng.ctl")

    def start(self, config_text: str) -> None:
        self.starts += 1
        cfg = os.path.join(self.workdir, "syslog-ng.conf")
        with open(cfg, "w", encoding="utf-8") as fh:
            fh.write(config_text)
        env = dict(os.environ)
        env.update(self.env)
        env["PYTHONPATH"] = self.pythonpath
        env.pop("PYTHONHOME", None)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [syslog_ng_binary(), "-F", "-e", "--no-caps", "-f", cfg,
             "-R", os.path.join(self.workdir, "syslog-ng.persist"),
             "-p", os.path.join(self.workdir, "syslog-ng.pid"),
             "-c", self.control],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir, start_new_session=True,
        )

    def log_text(self) -> str:
        texts = []
        for n in range(1, self.starts + 1):
            p = os.path.join(self.workdir, f"syslog-ng.{n}.log")
            if os.path.exists(p):
                with open(p, encoding="utf-8", errors="replace") as fh:
                    texts.append(f"--- syslog-ng run {n} ---\n" + fh.read())
        return "\n".join(texts)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> bool:
        if not self.alive():
            pytest.fail(f"syslog-ng exited with {self.proc.returncode if self.proc else '?'}:\n{self.log_text()[-6000:]}")
        return True

    def stats(self) -> str:
        ctl = syslog_ng_ctl()
        if ctl is None:
            return ""
        proc = subprocess.run([ctl, "stats", "-c", self.control], capture_output=True, text=True, timeout=10)
        return proc.stdout

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 45.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                pytest.fail(f"syslog-ng did not stop within {timeout:.0f} s of {signal.Signals(sig).name}:\n"
                            f"{self.log_text()[-6000:]}")
        self._log.close()
        code = self.proc.returncode
        self.proc = None
        return code


def syslog_ng_config(source: str, destination: str, *, log_flags: str = "flow-control", include: str = "") -> str:
    """A minimal self-contained syslog-ng config: one td-graph source, one destination."""
    return "\n".join([
        "@version: 3.38",
        include,
        "options { stats-freq(0); keep-hostname(yes); time-reopen(1); };",
        f"source s_graph {{ {source} }};",
        f"destination d_out {{ {destination} }};",
        f"log {{ source(s_graph); destination(d_out); flags({log_flags}); }};",
        "",
    ])


# --- a TCP receiver the test can pause ---------------------------------------------------------
class LineReceiver:
    """Accepts syslog-ng's ``network()`` connection and collects newline-framed records.

    ``pause()`` stops reading (with tiny socket buffers, syslog-ng's destination then blocks and
    acknowledgements stop); ``resume()`` reads again.  Data already in the kernel's buffers at a
    syslog-ng stop is still read: what syslog-ng wrote (and acknowledged) is never lost here.
    """

    def __init__(self, rcvbuf: int = 4096) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.lines: list[bytes] = []
        self.connections = 0
        self._open = 0
        self._pause_at: int | None = None
        self._reading = threading.Event()
        self._reading.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, name="line-receiver", daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                self.connections += 1
                self._open += 1
            t = threading.Thread(target=self._read, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _read(self, conn: socket.socket) -> None:
        try:
            self._read_lines(conn)
        finally:
            with self._lock:
                self._open -= 1

    def _read_lines(self, conn: socket.socket) -> None:
        buf = b""
        conn.settimeout(0.2)
        with conn:
            while not self._closed.is_set():
                if not self._reading.is_set():
                    self._reading.wait(0.2)
                    continue
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                *complete, buf = buf.split(b"\n")
                with self._lock:
                    self.lines.extend(c for c in complete if c)
                    if self._pause_at is not None and len(self.lines) >= self._pause_at:
                        self._pause_at = None
                        self._reading.clear()

    def pause_after(self, n: int) -> None:
        """Stop reading once ``n`` records have arrived."""
        with self._lock:
            self._pause_at = n

    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def pause(self) -> None:
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    def records(self) -> list[dict]:
        import json

        with self._lock:
            return [json.loads(line) for line in self.lines]

    def count(self) -> int:
        with self._lock:
            return len(self.lines)

    def close(self) -> None:
        self._closed.set()
        self._reading.set()
        with contextlib.suppress(OSError):
            self.sock.close()
        for t in self._threads:
            t.join(2)


@contextlib.contextmanager
def env_var(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def kill_quietly(proc: subprocess.Popen | None, sig: int = signal.SIGKILL) -> None:
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
