"""Shared pieces of the benchmarks: the simulator process, child-process accounting, configs,
tables and result files.  Every benchmark is one command: ``python benchmarks/<name>.py``.

Rules the benchmarks follow (the machine is shared and noisy): they report ratios measured in
one run, interleaved, as the median of several runs; they talk to 127.0.0.1 only; every loop
and every child process is bounded by a count and a timeout.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
RESULTS = os.path.join(BENCH, "results")
PY = sys.executable
SECRET_ENV = "TD_GRAPH_DEMO_SECRET"
# The td-graph sources the simulator and the td-graph children run from: this checkout, or
# another tree (e.g. ``git archive HEAD | tar -x -C DIR`` while the checkout is being edited).
SRC = os.path.abspath(os.environ.get("TD_GRAPH_BENCH_SRC") or ROOT)

if SRC not in sys.path:
    sys.path.insert(0, SRC)


# --------------------------------------------------------------------------- machine, results

def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem = round(int(line.split()[1]) / 1024 / 1024, 1)
                    break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_gib": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": load,
        "td_graph_src": SRC,
        "git_head": _git_head(),
    }


def _git_head() -> str | None:
    try:
        r = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_result(name: str, data: dict[str, Any]) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    day = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    suffix = "-quick" if data.get("quick") else ""
    path = os.path.join(RESULTS, f"{name}-{day}{suffix}.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
    return path


def median(xs: Iterable[float]) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(r)))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def say(*parts: Any) -> None:
    print(*parts, flush=True)


# --------------------------------------------------------------------------- child processes

@dataclass
class ChildResult:
    cmd: list[str]
    returncode: int | None
    wall: float
    user: float
    sys: float
    maxrss_kb: int
    timed_out: bool = False
    stderr_tail: str = ""

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    @property
    def maxrss_mb(self) -> float:
        return self.maxrss_kb / 1024.0

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("cmd")
        if self.returncode == 0:
            d.pop("stderr_tail")  # kept for failures only
        d["cpu"] = self.cpu
        d["maxrss_mb"] = round(self.maxrss_mb, 1)
        return d


def run_child(cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 600.0,
              stdout_path: str | None = None, cwd: str | None = None) -> ChildResult:
    """Run ``cmd`` to completion and return its own wall time, CPU time and peak RSS.

    The child's resource usage comes from ``wait4`` (exactly that child, not every child the
    benchmark ever waited for as RUSAGE_CHILDREN would give).  Killed after ``timeout``.
    """
    err = tempfile.TemporaryFile()
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        # cwd: not the checkout, whose folder ``python -m`` would put first on sys.path.
        proc = subprocess.Popen(list(cmd), env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                cwd=cwd or tempfile.gettempdir())
        box: dict[str, Any] = {}

        def reap() -> None:
            _, status, ru = os.wait4(proc.pid, 0)
            box["end"] = time.perf_counter()
            box["status"], box["ru"] = status, ru

        th = threading.Thread(target=reap, daemon=True)
        th.start()
        th.join(timeout)
        timed_out = th.is_alive()
        if timed_out:
            proc.kill()
            th.join(30)
        status, ru = box.get("status", 0), box.get("ru")
        code = os.waitstatus_to_exitcode(status) if ru is not None else None
        proc.returncode = code if code is not None else -9  # reaped by wait4 above
        err.seek(0)
        tail = err.read()[-4000:].decode("utf-8", "replace")
        return ChildResult(list(cmd), code, box.get("end", time.perf_counter()) - t0,
                           ru.ru_utime if ru else 0.0, ru.ru_stime if ru else 0.0,
                           ru.ru_maxrss if ru else 0, timed_out, tail)
    finally:
        err.close()
        if stdout_path:
            out.close()  # type: ignore[union-attr]


# --------------------------------------------------------------------------- simulator process

class SimProcess:
    """``_sim_server.py`` in a child process: TLS Graph simulator on 127.0.0.1."""

    def __init__(self, workdir: str, timeout: float = 120.0) -> None:
        self.workdir = workdir
        self._log = open(os.path.join(workdir, "sim.stderr"), "wb")
        env = dict(os.environ, TD_GRAPH_BENCH_SRC=SRC)
        self.proc = subprocess.Popen(
            [PY, os.path.join(BENCH, "_sim_server.py"), os.path.join(workdir, "sim")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, cwd=workdir,
        )
        hello = self._read(timeout)
        self.base_url: str = hello["base_url"]
        self.ca_path: str = hello["ca_path"]
        self.pid: int = hello["pid"]

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"simulator did not answer within {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("simulator process exited; see " + os.path.join(self.workdir, "sim.stderr"))
        answer = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"simulator: {answer.get('error')}")
        return answer

    def call(self, cmd: str, timeout: float = 600.0, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **kw}) + "\n").encode())
        self.proc.stdin.flush()
        return self._read(timeout)

    def add_tenants(self, count: int = 1, **kw: Any) -> list[dict[str, Any]]:
        return self.call("add_tenants", count=count, **kw)["tenants"]

    def stats(self) -> dict[str, Any]:
        return self.call("stats", timeout=60)

    def requests(self, since: int = 0) -> list[list[Any]]:
        return self.call("requests", since=since, timeout=120)["requests"]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.call("stop", timeout=20)
                self.proc.wait(timeout=20)
        except Exception:
            self.proc.kill()
            self.proc.wait(timeout=20)
        finally:
            self._log.close()

    def __enter__(self) -> "SimProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class CpuWindow:
    """Simulator CPU seconds over a client run: tells whether the simulator was the bottleneck."""

    start: dict[str, Any] = field(default_factory=dict)
    end: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu(self) -> float:
        return self.end["cpu"] - self.start["cpu"]

    @property
    def wall(self) -> float:
        return self.end["monotonic"] - self.start["monotonic"]

    @property
    def busy(self) -> float:
        """Fraction of one core the simulator used (its ceiling is ~1.0: one GIL)."""
        return self.cpu / self.wall if self.wall > 0 else 0.0


def sim_cpu(sim: SimProcess, fn, *args: Any, **kw: Any) -> tuple[Any, CpuWindow]:
    w = CpuWindow(start=sim.stats())
    result = fn(*args, **kw)
    w.end = sim.stats()
    return result, w


# --------------------------------------------------------------------------- td-graph configs

SIMULATOR_PACE = ("identity_reports", "identity_protection", "security", "directory", "intune", "default")


def td_graph_config(sim: SimProcess, tenants: Sequence[dict[str, Any]], state_path: str, output_path: str, *,
                    sources: Sequence[str], workers: int | None = None, default_pacing: bool = False,
                    settings: dict[str, Any] | None = None, log_level: str = "warning") -> dict[str, Any]:
    """A td-graph config for simulated tenants (one shared secret, from ``TD_GRAPH_DEMO_SECRET``).

    Unless ``default_pacing``, pacing is lifted the way ``td-graph demo`` lifts it: the
    simulator is not Microsoft, and a benchmark of the client's own speed must not measure
    Graph's 5-requests-per-10-s budget instead.
    """
    cfg: dict[str, Any] = {
        "tenants": [
            {
                "name": f"t{i:04d}",
                "tenant_id": t["tenant_id"],
                "client_id": t["client_id"],
                "client_secret": "${" + SECRET_ENV + "}",
                "login_endpoint": sim.base_url,
                "graph_endpoint": sim.base_url,
                "ca_bundle": sim.ca_path,
            }
            for i, t in enumerate(tenants)
        ],
        "sources": {"include": list(sources)},
        "state": {"path": state_path},
        "output": {"type": "file", "path": output_path},
        "logging": {"level": log_level},
    }
    if settings:
        cfg["sources"]["settings"] = settings
    if workers is not None:
        cfg["engine"] = {"workers": workers}
    if not default_pacing:
        cfg["throttling"] = {name: {"requests": 10000, "per": "10s"} for name in SIMULATOR_PACE}
    return cfg


def write_yaml(cfg: dict[str, Any], path: str) -> str:
    import yaml

    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(cfg, fh, sort_keys=False)
    return path


def td_graph_cmd(config_path: str, *extra: str) -> list[str]:
    return [PY, "-m", "td_graph_plugin.cli.main", "run", "-c", config_path, "--once", *extra]


def child_env(secret: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env[SECRET_ENV] = secret
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # The collectors must trust the simulator's CA through ca_bundle only.
    for k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        env.pop(k, None)
    # Every child reads compiled bytecode, as an installed td-graph (and requests) does: with
    # PYTHONDONTWRITEBYTECODE inherited, each start re-compiled every module (~0.2 s of td-graph's
    # fixed cost, less of the baseline's).  The cache lives outside the source tree.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(ROOT, ".cache", "bench-pycache")
    env.update(extra)
    return env


def count_lines(path: str) -> int:
    n = 0
    with open(path, "rb") as fh:
        while True:
            buf = fh.read(1 << 20)
            if not buf:
                return n
            n += buf.count(b"\n")


def fresh_dir(parent: str, name: str) -> str:
    d = os.path.join(parent, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def new_secret() -> str:
    import secrets

    return secrets.token_urlsafe(30)[:36] + "~" + secrets.token_urlsafe(3)


def bench_workdir(name: str) -> str:
    base = os.path.join(ROOT, ".cache", "bench-work")
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"{name}-", dir=base)


def iso(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
