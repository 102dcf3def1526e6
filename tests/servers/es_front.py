"""What can stand in front of the Elasticsearch test node: an overloaded coordinating node,
TLS with a certificate of its own, and authentication.

The node runs with security off (its integ-test distribution has no security module), so this
front answers as a secured or overloaded cluster does, with Elasticsearch's status codes,
headers and error bodies: the client sees what it would see from a real cluster. What it lets
through is forwarded unchanged to the node.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Collection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

REJECTION = json.dumps(
    {
        "error": {
            "root_cause": [{"type": "es_rejected_execution_exception", "reason": "rejected execution (queue full)"}],
            "type": "es_rejected_execution_exception",
            "reason": "rejected execution (queue full)",
        },
        "status": 429,
    }
).encode()
UNAUTHENTICATED_REASON = "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
CHALLENGES = ['Basic realm="security", charset="UTF-8"', "ApiKey"]
UNAUTHENTICATED = json.dumps(
    {
        "error": {
            "root_cause": [{"type": "security_exception", "reason": UNAUTHENTICATED_REASON,
                            "header": {"WWW-Authenticate": CHALLENGES}}],
            "type": "security_exception",
            "reason": UNAUTHENTICATED_REASON,
            "header": {"WWW-Authenticate": CHALLENGES},
        },
        "status": 401,
    }
).encode()
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}
ES_JSON = [("Content-Type", "application/json"), ("X-Elastic-Product", "Elasticsearch")]


class NodeFront:
    """``reject_bulk``: answer 429 to that many bulk requests first. ``tls``: serve HTTPS with
    this context. ``accept``: the ``Authorization`` values let through (401 for any other);
    empty, no authentication."""

    def __init__(self, upstream: str, reject_bulk: int = 0, tls: ssl.SSLContext | None = None,
                 accept: Collection[str] = ()) -> None:
        self.upstream = urlsplit(upstream)
        self.reject_left = reject_bulk
        self.accept = frozenset(accept)
        self.rejected = 0
        self.forwarded_bulk = 0
        self.unauthenticated = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        if tls is not None:
            # The handshake happens in accept(); one the client gives up on is dropped there.
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> NodeFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _throttle(self, path: str) -> bool:
        if not path.split("?")[0].endswith("/_bulk"):
            return False
        with self._lock:
            if self.reject_left > 0:
                self.reject_left -= 1
                self.rejected += 1
                return True
            self.forwarded_bulk += 1
            return False

    def _authenticated(self, authorization: str | None) -> bool:
        if not self.accept or authorization in self.accept:
            return True
        with self._lock:
            self.unauthenticated += 1
        return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet in test output
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not front._authenticated(self.headers.get("Authorization")):
                    self._answer(401, [*ES_JSON, *(("WWW-Authenticate", c) for c in CHALLENGES)], UNAUTHENTICATED)
                    return
                if front._throttle(self.path):
                    self._answer(429, ES_JSON, REJECTION)
                    return
                upstream = http.client.HTTPConnection(front.upstream.hostname, front.upstream.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host", "authorization"}}
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
                    self._answer(answer.status, kept, data)
                finally:
                    upstream.close()

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

        return Handler
