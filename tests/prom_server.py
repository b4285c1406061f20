"""A real Prometheus server (Debian's ``prometheus`` package) for tests.

    with PrometheusServer(targets=[f"127.0.0.1:{port}"], rule_files=[rules]) as prom:
        prom.wait_for(lambda: prom.query('up{job="td-graph"}'), timeout=10)
        prom.alerts()            # [{"labels": {...}, "annotations": {...}, "state": "firing", ...}]

It listens on an ephemeral loopback port, scrapes its targets every second under the job name
``td-graph`` (the name the alert rules expect), evaluates rules every second and keeps its
storage in a temporary directory that is removed on ``stop()``.

``promtool()`` / ``prometheus_binary()`` return the Debian binaries or FAIL the calling test
(never skip) with a message saying how to install them: CI runs these tests on purpose.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Iterable

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALERTS = os.path.join(ROOT, "conf", "prometheus", "alerts.yml")
INSTALL_HINT = (
    "install Debian's prometheus package (apt-get install --no-install-recommends prometheus), "
    "which provides /usr/bin/prometheus and /usr/bin/promtool; scripts/test.sh does this"
)

__all__ = ["PrometheusServer", "PrometheusError", "promtool", "prometheus_binary", "short_for_rules", "metric_names", "ROOT", "ALERTS"]


def _require(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if not path:
        pytest.fail(f"`{name}` not found: {INSTALL_HINT}", pytrace=False)
    return path


def promtool() -> str:
    return _require("promtool")


def prometheus_binary() -> str:
    return _require("prometheus")


def short_for_rules(source: str, dest: str, for_seconds: int = 2) -> str:
    """Copy an alert rules file with every ``for:`` shortened to ``for_seconds`` (tests only)."""
    with open(source, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = f"{for_seconds}s"
    with open(dest, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return dest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusError(RuntimeError):
    pass


class PrometheusServer:
    def __init__(
        self,
        targets: Iterable[str],
        rule_files: Iterable[str] = (),
        *,
        job: str = "td-graph",
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
    ) -> None:
        self.targets = list(targets)
        self.rule_files = [os.path.abspath(p) for p in rule_files]
        self.job = job
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self._log: Any = None

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "PrometheusServer":
        binary = prometheus_binary()
        self._dir = tempfile.mkdtemp(prefix="td-graph-prom-")
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": self.rule_files,
            "scrape_configs": [
                {"job_name": self.job, "metrics_path": "/metrics", "static_configs": [{"targets": self.targets}]}
            ],
        }
        config_path = os.path.join(self._dir, "prometheus.yml")
        with open(config_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f, sort_keys=False)
        for attempt in range(3):  # the ephemeral port may be taken between probe and bind
            self.port = _free_port()
            self._log = open(os.path.join(self._dir, f"prometheus-{attempt}.log"), "wb")
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={os.path.join(self._dir, 'data')}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
            )
            if self._wait_ready(timeout):
                return self
            if self.proc.poll() is None:
                break  # running but not ready in time: report below
        log = self.log_tail()
        self.stop()
        raise PrometheusError(f"prometheus did not become ready in {timeout:.0f}s:\n{log}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def log_tail(self, lines: int = 40) -> str:
        if not self._dir:
            return ""
        out = []
        for name in sorted(os.listdir(self._dir)):
            if name.endswith(".log"):
                with open(os.path.join(self._dir, name), "rb") as f:
                    out.extend(f.read().decode(errors="replace").splitlines()[-lines:])
        return "\n".join(out)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- HTTP API ------------------------------------------------------------------------------
    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; a vector as ``[{"metric": {...}, "value": [ts, "1"]}, ...]``."""
        data = self.api("query", query=expr)
        result = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts: ``labels``, ``annotations``, ``state``, ``value``."""
        return self.api("alerts")["alerts"]

    def targets_health(self) -> list[str]:
        return [t["health"] for t in self.api("targets")["activeTargets"]]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})\n{self.log_tail()}")


def metric_names(text: str) -> set[str]:
    """Every ``td_graph_*`` name mentioned in a PromQL text."""
    return set(re.findall(r"td_graph_[a-z_]+", text))
