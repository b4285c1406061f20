"""HTTP/1.1 over TLS on loopback: the connection handler and the threaded server.

Why a custom handler: the TLS handshake must run in the connection's own thread (a slow
client must not block ``accept``); every response needs Content-Length for keep-alive; and
faults (reset, truncated/short/HTML bodies, stalls, delays) are applied here, at the byte
level, after the pipeline has produced the real response.  Quiet unless ``verbose``.
"""

from __future__ import annotations

import socket
import struct
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .core import SimCore
from .pipeline import route
from .records import RequestRecord
from .responses import RequestIds, Response, graph_error

__all__ = ["RequestRecord", "SimServer"]

# Never recorded, even if a (buggy) client puts them in the URL instead of the body.
_SECRET_PARAMS = frozenset({"client_secret", "client_assertion", "access_token", "assertion", "code", "password"})


class SimServer(ThreadingHTTPServer):
    request_queue_size = 128  # benchmarks open many connections at once
    daemon_threads = True
    block_on_close = False  # stop() must not wait for stalled handler threads
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], sim: SimCore):
        self.sim = sim
        super().__init__(addr, _Handler)

    def handle_error(self, request, client_address):  # quiet: clients break connections on purpose
        if self.sim.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle on, a small response waits ~40 ms
    # for the client's delayed ACK.
    disable_nagle_algorithm = True
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections end eventually

    server: SimServer

    def setup(self) -> None:
        sim = self.server.sim
        raw = self.request
        raw.settimeout(10)
        self.request = sim._ssl_ctx.wrap_socket(raw, server_side=True)  # handshake here, not in accept()
        sim._track(self.request, True)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        sim = self.server.sim
        sim._track(self.request, False)
        try:
            self.request.close()
        except OSError:
            pass

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        if self.server.sim.verbose:
            sys.stderr.write("sim: %s - %s\n" % (self.address_string(), format % args))

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # ------------------------------------------------------------------ pipeline
    def _dispatch(self) -> None:
        sim = self.server.sim
        split = urlsplit(self.path)
        path = split.path
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        ids = RequestIds(str(uuid.uuid4()), self.headers.get("client-request-id") or str(uuid.uuid4()))
        authz = self.headers.get("Authorization")
        scheme = authz.split(" ", 1)[0] if authz else None
        try:
            display_query = {k: ("<redacted>" if k.lower() in _SECRET_PARAMS else v)
                             for k, v in parse_qsl(split.query, keep_blank_values=True)}
        except ValueError:
            display_query = {}

        def record(status: int, tenant_id: str | None, fault_kind: str | None = None) -> None:
            sim._record(RequestRecord(self.command, path, display_query, status, tenant_id,
                                      authz is not None, scheme, time.time(), fault_kind))

        try:
            sim._triggers.fire(path)  # request N's own actions first: what they arm applies to it
        except Exception:  # a test's action that fails must show, not silently drop the request
            import traceback

            traceback.print_exc()
        fault = sim._knobs.faults.take(path)
        if fault is not None:
            kind, seconds = fault
            if kind == "stall":
                record(0, None, "stall")
                sim._stop_event.wait()
                self.close_connection = True
                return
            if kind == "reset":
                record(0, None, "reset")
                self._reset()
                return
            if kind == "slow":
                sim._stop_event.wait(seconds)
        try:
            resp = route(sim, self.command, path, split.query, self.headers, body, ids)
        except Exception as exc:  # a bug in the simulator must still answer like Graph would
            if sim.verbose:
                import traceback

                traceback.print_exc()
            resp = graph_error(500, "generalException", f"Simulator error: {type(exc).__name__}", ids)
        # Log before answering: a client that has its answer must find it in sim.requests.
        if fault is not None and fault[0] in ("truncated", "short_read", "not_json"):
            record(200, resp.tenant_id, fault[0])
            self._write_mangled(fault[0], resp, ids)
            return
        record(resp.status, resp.tenant_id, fault[0] if fault is not None else None)
        self._write(resp, ids)

    def _headers_common(self, ids: RequestIds) -> None:
        self.send_header("request-id", ids.request_id)
        self.send_header("client-request-id", ids.client_request_id)
        self.send_header("x-ms-ags-diagnostic",
                         '{"ServerInfo":{"DataCenter":"Loopback","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"SIM"}}')
        self.send_header("Strict-Transport-Security", "max-age=31536000")

    def _write(self, resp: Response, ids: RequestIds) -> None:
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self._headers_common(ids)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(resp.body)

    def _write_mangled(self, kind: str, resp: Response, ids: RequestIds) -> None:
        if kind == "not_json":
            body = (b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body>"
                    b"<h2>Service Unavailable</h2><p>The gateway returned an HTML error page.</p></body></html>")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self._headers_common(ids)
            self.end_headers()
            self.wfile.write(body)
            return
        full = resp.body if resp.status == 200 and len(resp.body) > 2 else b'{"value":[{"id":"cut-off"}]}'
        cut = full[: max(1, len(full) // 2)]
        self.send_response(200)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(full) if kind == "short_read" else len(cut)))
        self._headers_common(ids)
        self.end_headers()
        self.wfile.write(cut)
        if kind == "short_read":
            self.close_connection = True
            self._reset()

    def _reset(self) -> None:
        """Close the TCP connection with RST, without a response."""
        self.close_connection = True
        try:
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            socket.socket.close(self.request)
        except OSError:
            pass
