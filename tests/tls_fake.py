"""A tiny scriptable HTTPS server on 127.0.0.1 for the Graph client tests.

    with FakeServer() as srv:                 # trustme CA; srv.ca_path goes in ca_bundle
        srv.add_oidc("tid")                   # OIDC discovery + token endpoint for MSAL
        srv.route("GET", "/v1.0/users", [Resp(json={"value": []})])
        ...
        srv.requests                          # every request received, in order

A route is a list of responses served in turn (the last one repeats) or a callable
``handler(req) -> Resp``.  ``Resp(drop=True)`` closes the connection without answering.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

import orjson
import trustme


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, list[str]]
    raw_path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Resp:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without a response
    delay: float = 0.0
    truncate: bool = False  # announce more bytes than are sent, then close
    # A body sent in chunks (chunked transfer encoding), produced lazily: the server stops when
    # the client hangs up; ``FakeServer.streamed`` counts the bytes it managed to send.
    chunks: Callable[[], Iterable[bytes]] | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one response = one round trip, no 40 ms delayed-ACK stall
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        req = Req(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            raw_path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        fake = self.server.fake
        with fake.lock:
            fake.requests.append(req)
        resp = fake.respond(req)
        if resp.delay:
            time.sleep(resp.delay)
        if resp.drop:
            self.close_connection = True
            return
        if resp.chunks is not None:
            self._send_chunked(resp)
            return
        payload = resp.body if resp.body is not None else (
            orjson.dumps(resp.json) if resp.json is not None else b""
        )
        self.send_response(resp.status)
        has_ct = any(k.lower() == "content-type" for k in resp.headers)
        if not has_ct and resp.json is not None:
            self.send_header("Content-Type", "application/json")
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if resp.truncate:
            self.send_header("Content-Length", str(len(payload) + 100))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_chunked(self, resp: Resp) -> None:
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        fake = self.server.fake
        try:
            for chunk in resp.chunks():  # type: ignore[misc]
                if not chunk:
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                with fake.lock:
                    fake.streamed += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client stopped reading and closed the connection
            pass
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: "FakeServer"

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], OSError):  # client hung up (timeouts, TLS tests)
            return
        super().handle_error(request, client_address)


class FakeServer:
    def __init__(self, ca: trustme.CA | None = None, tmp_dir: str | None = None) -> None:
        import tempfile

        self.ca = ca or trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(ctx)
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self.base = f"https://127.0.0.1:{self.port}"
        self._tmp = tmp_dir or tempfile.mkdtemp(prefix="tls-fake-")
        self.ca_path = f"{self._tmp}/ca-{self.port}.pem"
        self.ca.cert_pem.write_to_path(self.ca_path)
        self.lock = threading.Lock()
        self.requests: list[Req] = []
        self.streamed = 0  # bytes of Resp(chunks=...) bodies sent so far
        self._routes: dict[tuple[str, str], list[Resp] | Callable[[Req], Resp]] = {}
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> "FakeServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- scripting --------------------------------------------------------------------
    def route(self, method: str, path: str, responses: list[Resp] | Resp | Callable[[Req], Resp]) -> None:
        if isinstance(responses, Resp):
            responses = [responses]
        with self.lock:
            self._routes[(method.upper(), path)] = responses if callable(responses) else list(responses)

    def respond(self, req: Req) -> Resp:
        with self.lock:
            r = self._routes.get((req.method, req.path))
            if r is None:
                return Resp(404, json={"error": {"code": "NotFound", "message": f"no route {req.path}"}})
            if callable(r):
                handler = r
            else:
                return r.pop(0) if len(r) > 1 else r[0]
        return handler(req)

    def hits(self, method: str, path: str) -> list[Req]:
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    # --- identity provider -------------------------------------------------------------
    def add_oidc(
        self,
        tenant_id: str,
        token: Callable[[Req], Resp] | list[Resp] | None = None,
        *,
        expires_in: int = 3600,
    ) -> None:
        """What MSAL (instance_discovery=False) needs: the tenant's OpenID configuration and
        a token endpoint.  Default tokens are "tok-1", "tok-2", ..."""
        base = f"{self.base}/{tenant_id}"
        self.route(
            "GET",
            f"/{tenant_id}/v2.0/.well-known/openid-configuration",
            Resp(json={
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            }),
        )
        counter = {"n": 0}

        def issue(req: Req) -> Resp:
            counter["n"] += 1
            return Resp(json={
                "token_type": "Bearer",
                "expires_in": expires_in,
                "ext_expires_in": expires_in,
                "access_token": f"tok-{counter['n']}",
            })

        self.route("POST", f"/{tenant_id}/oauth2/v2.0/token", token if token is not None else issue)

    def token_posts(self, tenant_id: str) -> list[Req]:
        return self.hits("POST", f"/{tenant_id}/oauth2/v2.0/token")


def aad_error(code: int, error: str = "invalid_client", status: int = 401, text: str = "") -> Resp:
    """An Entra token-endpoint error body as it really looks."""
    return Resp(status, json={
        "error": error,
        "error_description": f"AADSTS{code}: {text or 'Something is wrong.'} "
                             "Trace ID: 0000 Correlation ID: 1111 Timestamp: 2026-01-01 00:00:00Z",
        "error_codes": [code],
        "timestamp": "2026-01-01 00:00:00Z",
        "trace_id": "0000",
        "correlation_id": "1111",
    })
