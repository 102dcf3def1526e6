"""An HTTP proxy on 127.0.0.1 that answers 429 to the first N bulk requests, then forwards.

It stands for an overloaded Elasticsearch coordinating node (es_rejected_execution_exception):
the answer has Elasticsearch's status, headers and error body, so the client sees what it
would see from a real cluster. Everything else is forwarded unchanged to the upstream node.
"""

from __future__ import annotations

import http.client
import json
import threading
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
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class ThrottlingProxy:
    def __init__(self, upstream: str, reject_bulk: int) -> None:
        self.upstream = urlsplit(upstream)
        self.reject_left = reject_bulk
        self.rejected = 0
        self.forwarded_bulk = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ThrottlingProxy:
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

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet in test output
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy._throttle(self.path):
                    self._answer(429, [("Content-Type", "application/json"), ("X-Elastic-Product", "Elasticsearch")], REJECTION)
                    return
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
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
