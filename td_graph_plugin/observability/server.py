"""The ``metrics.listen`` endpoint: ``/metrics`` (Prometheus text format) and ``/healthz``.

A small threaded HTTP server bound to exactly the configured host (loopback by default), with
``start``/``stop`` and no signal handling, so the CLI and a shipper host (syslog-ng) run it the
same way.  Every answer is built from the given ``Metrics`` object's own registry.

``/healthz`` answers 200 ``{"status": "ok", ...}`` while no source has been ``failing`` longer
than ``unhealthy_after`` seconds, and 503 ``{"status": "unhealthy", "failing": [{"tenant": ...,
"source": ..., "since": ...}], ...}`` once one has.  Anything else is 404.

A scraper must not be able to exhaust the process it watches: at most ``max_connections``
connections are served at once (one more is closed at once, unanswered), and each connection
has ``request_timeout`` seconds in total to send its request and take the answer, so a slow or
idle client frees its thread at that deadline, however it trickles bytes.
"""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from ..errors import TdGraphError
from ..metrics import Metrics

__all__ = ["MetricsServer", "MetricsServerError", "parse_listen", "start_metrics_server"]

log = logging.getLogger("td_graph_plugin.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_HOST = "127.0.0.1"
MAX_CONNECTIONS = 16  # Prometheus scrapes with one; a few more for curl and a second server
REQUEST_TIMEOUT = 10.0  # Prometheus' default scrape_timeout: a slower scrape has failed anyway


class MetricsServerError(TdGraphError):
    """The endpoint cannot listen (bad address, port in use, permission)."""

    kind = "metrics"


def parse_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` -> ``("127.0.0.1", 9464)``; ``"[::1]:9464"`` -> ``("::1", 9464)``.

    An empty host (``":9464"``) means loopback, never every interface; ``0.0.0.0`` or ``[::]``
    must be written out to listen beyond the machine.
    """
    text = (listen or "").strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise MetricsServerError(f"metrics.listen: expected HOST:PORT such as 127.0.0.1:9464, got {listen!r}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise MetricsServerError(f"metrics.listen: unbalanced brackets in {listen!r}")
        host = host[1:-1]
    elif ":" in host:
        raise MetricsServerError(f"metrics.listen: write an IPv6 address in brackets, e.g. [::1]:9464, got {listen!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise MetricsServerError(f"metrics.listen: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise MetricsServerError(f"metrics.listen: port {port} is out of range")
    return host or DEFAULT_HOST, port


def _resolve(host: str, port: int) -> tuple[int, tuple[Any, ...]]:
    """Address family and socket address for ``host``: a literal as given, a name resolved."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        ip = None
    if ip is not None and ip.version == 4:
        return socket.AF_INET, (host, port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise MetricsServerError(f"metrics.listen: cannot resolve {host!r}: {exc.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


class _DeadlineReader(io.RawIOBase):
    """The connection's input, each read bounded by what is left of the request's deadline
    (a per-read timeout alone lets a client that trickles a byte at a time stay forever)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("metrics endpoint: request deadline passed")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    server_version = "td-graph"
    sys_version = ""

    def setup(self) -> None:
        self.deadline = time.monotonic() + self.server.request_timeout
        super().setup()
        self.rfile.close()  # the stdlib's unbounded reader (the socket stays open)
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self.deadline))

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        try:
            if path == "/metrics":
                status, ctype, body = 200, CONTENT_TYPE, self.server.metrics.exposition()
            elif path == "/healthz":
                ok, detail = self.server.metrics.health(self.server.unhealthy_after)
                status, ctype = (200 if ok else 503), "application/json"
                body = (json.dumps(detail, sort_keys=True) + "\n").encode()
            else:
                status, ctype, body = 404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n"
        except Exception:
            log.exception("metrics endpoint: cannot answer %s", path)
            status, ctype, body = 500, "text/plain; charset=utf-8", b"internal error\n"
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.close_connection = True
            return
        self.connection.settimeout(left)  # sendall's timeout bounds the whole answer
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("metrics endpoint %s: " + format, self.client_address[0], *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        family: int,
        sockaddr: tuple[Any, ...],
        metrics: Metrics,
        unhealthy_after: float,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.address_family = family
        self.metrics = metrics
        self.unhealthy_after = unhealthy_after
        self.request_timeout = float(request_timeout)
        self._slots = threading.BoundedSemaphore(max(1, int(max_connections)))
        super().__init__(sockaddr, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, at most ``max_connections`` of them: one more is closed."""
        if not self._slots.acquire(blocking=False):
            log.debug("metrics endpoint: %s refused, every connection slot is busy", client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self._slots.release()  # before the close a waiting client sees: its next try is served
            self.shutdown_request(request)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can stall startup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("metrics endpoint: connection from %s failed", client_address, exc_info=True)


class MetricsServer:
    """A running endpoint; ``stop()`` closes it (idempotent).  Also a context manager."""

    def __init__(self, httpd: _Server, host: str) -> None:
        self._httpd = httpd
        self.host = host
        self.port: int = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="td-graph-metrics", daemon=True
        )
        self._stopped = False
        self._lock = threading.Lock()

    def _start(self) -> "MetricsServer":
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (IPv6 in brackets); ``/metrics`` and ``/healthz`` live under it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return self.url + "/metrics"

    @property
    def healthz_url(self) -> str:
        return self.url + "/healthz"

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopped

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()
        log.debug("metrics endpoint on %s stopped", self.url)

    def __enter__(self) -> "MetricsServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"MetricsServer({self.url!r}, running={self.running})"


def start_metrics_server(
    listen: str,
    metrics: Metrics,
    unhealthy_after: float = 900.0,
    *,
    max_connections: int = MAX_CONNECTIONS,
    request_timeout: float = REQUEST_TIMEOUT,
) -> MetricsServer:
    """Listen on ``listen`` (``HOST:PORT``; port 0 picks a free one) and serve in a thread."""
    host, port = parse_listen(listen)
    family, sockaddr = _resolve(host, port)
    try:
        httpd = _Server(family, sockaddr, metrics, float(unhealthy_after), max_connections, request_timeout)
    except OSError as exc:
        raise MetricsServerError(f"metrics.listen: cannot listen on {listen}: {exc.strerror or exc}") from None
    server = MetricsServer(httpd, host)._start()
    log.info("metrics at %s/metrics, health at %s/healthz", server.url, server.url)
    return server
