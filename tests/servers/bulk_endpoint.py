"""An Elasticsearch-shaped bulk endpoint that accepts everything as fast as it can: what the
daemon benchmark ships to, so that the forwarder's own cost is what is measured.

It answers as Elasticsearch 8 does where the client looks (the product header, ``GET /``, and
a bulk answer of one ``201`` per action, cut by ``filter_path`` as the node would), and counts
requests, documents and bytes, served as JSON at ``GET /_bench``. It checks nothing else.

    python tests/servers/bulk_endpoint.py --port 9299
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ROOT = json.dumps({"name": "bench", "cluster_name": "bench", "version": {"number": "8.15.0", "build_flavor": "default"},
                   "tagline": "You Know, for Search"}).encode()


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = self.documents = self.bytes = 0
        self.first = self.last = 0.0

    def add(self, documents: int, size: int) -> None:
        now = time.time()
        with self.lock:
            if not self.requests:
                self.first = now
            self.requests += 1
            self.documents += documents
            self.bytes += size
            self.last = now

    def as_json(self) -> bytes:
        with self.lock:
            return json.dumps({"requests": self.requests, "documents": self.documents, "bytes": self.bytes,
                               "first": self.first, "last": self.last}).encode()


def _answer(documents: int, action: str, filter_path: str) -> bytes:
    if filter_path and "items" not in filter_path:
        return b'{"errors":false}'
    item = json.dumps({action: {"status": 201}}, separators=(",", ":")).encode()  # compact, as a node writes it
    return b'{"errors":false,"items":[' + b",".join([item] * documents) + b"]}"


def serve(port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    counts = Counts()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._reply(200, counts.as_json() if self.path.startswith("/_bench") else ROOT)

        def do_HEAD(self) -> None:
            self._reply(200, b"")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            parts = urlsplit(self.path)
            if not parts.path.endswith("/_bulk"):
                self._reply(200, b"{}")
                return
            lines = body.count(b"\n")
            documents = lines // 2
            first = body[:body.find(b"\n")]
            action = next(iter(json.loads(first))) if first else "create"
            counts.add(documents, len(body))
            self._reply(200, _answer(documents, action, parse_qs(parts.query).get("filter_path", [""])[0]))

        do_PUT = do_POST

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port).serve_forever()


if __name__ == "__main__":
    main()
