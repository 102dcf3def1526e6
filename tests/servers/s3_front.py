"""A fault-injecting HTTP front for tests: forwards every request to an upstream (moto, the HEC
test server) and answers the requests a schedule names with a fault instead.

Made for S3: point the forwarder's ``source.endpoint_url`` at the front and plan faults for
GetObject of chosen keys (``s3_get_object`` names them); SQS calls, which use the same
endpoint, pass through untouched. The faults are what S3 and the networks in front of it do:

* ``INTERNAL_ERROR`` 500 and ``SLOW_DOWN`` 503, with S3's XML error bodies;
* ``RESET``: the connection reset (TCP RST) before any answer;
* ``TRUNCATE``: the real answer's headers (its full Content-Length) and half of its body, then
  the connection closed;
* ``STALL``: headers, then nothing, until the client gives up (or 30 s pass);
* ``answer(status, body)``: any answer, for other upstreams (a collector answering garbage).

A schedule is per key and is used up in order, one fault per matching request; requests
beyond it are forwarded. ``served`` tells which faults went out, so a test can show that its
faults happened; ``requests`` holds every request's method, path and headers.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from servers.background import Background

# Headers that describe one connection, not the message: never forwarded as they are.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
              "content-length", "server", "date"}


@dataclass(frozen=True)
class Fault:
    kind: str  # "answer", "reset" or "truncate"
    status: int = 0
    body: bytes = b""
    content_type: str = "application/xml"


def answer(status: int, body: bytes, content_type: str = "application/json") -> Fault:
    return Fault("answer", status, body, content_type)


def s3_error(status: int, code: str, message: str) -> Fault:
    """An error as S3 writes it (REST API, "Error responses")."""
    request_id = uuid.uuid4().hex[:16].upper()
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>{request_id}</RequestId><HostId>{uuid.uuid4().hex}</HostId></Error>").encode()
    return Fault("answer", status, body, "application/xml")


INTERNAL_ERROR = s3_error(500, "InternalError", "We encountered an internal error. Please try again.")
SLOW_DOWN = s3_error(503, "SlowDown", "Please reduce your request rate.")
RESET = Fault("reset")
TRUNCATE = Fault("truncate")
STALL = Fault("stall")


def s3_get_object(method: str, path: str) -> str | None:
    """The key of a path-style GetObject (``GET /bucket/key``), else None."""
    parts = urlsplit(path)
    bucket, _, key = parts.path.lstrip("/").partition("/")
    if method != "GET" or not bucket or not key:
        return None
    return unquote(key)


class FaultFront(Background):
    thread_name = "fault-front"

    """The front on 127.0.0.1; ``match(method, path)`` names the schedule a request draws from
    (None: never faulted)."""

    def __init__(self, upstream: str, match: Callable[[str, str], str | None] = s3_get_object) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.match = match
        self._lock = threading.Lock()
        self._plans: dict[str, list[Fault]] = {}
        self.served: list[tuple[str, str]] = []  # (schedule key, fault kind), in the order served
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers), as they came
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.front = self  # type: ignore[attr-defined]
        # A reset or a cut answer makes the handler's own cleanup fail: expected, not worth a traceback.
        self._httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def plan(self, key: str, faults: list[Fault]) -> None:
        """The next requests matching ``key`` get ``faults``, one each, in order."""
        with self._lock:
            self._plans.setdefault(key, []).extend(faults)

    def pending(self) -> int:
        with self._lock:
            return sum(len(faults) for faults in self._plans.values())

    def take(self, method: str, path: str) -> Fault | None:
        key = self.match(method, path)
        if key is None:
            return None
        with self._lock:
            faults = self._plans.get(key)
            if not faults:
                return None
            fault = faults.pop(0)
            self.served.append((key, fault.kind))
            return fault



class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3: a reset then hits a pooled connection too

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read front.served
        pass

    @property
    def front(self) -> FaultFront:
        return self.server.front  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.front.requests.append((self.command, self.path, dict(self.headers.items())))
        fault = self.front.take(self.command, self.path)
        if fault is not None and fault.kind == "stall":
            self._stall()
            return
        if fault is not None and fault.kind == "reset":
            self._reset()
            return
        if fault is not None and fault.kind == "answer":
            self.send_response(fault.status)
            self.send_header("Content-Type", fault.content_type)
            self.send_header("Content-Length", str(len(fault.body)))
            self.send_header("x-amz-request-id", uuid.uuid4().hex[:16].upper())
            self.end_headers()
            self.wfile.write(fault.body)
            return
        status, reason, headers, data = self._forward(body)
        self.send_response(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if self.command == "HEAD":
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault is not None and fault.kind == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data)

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.front.upstream, timeout=120)
        try:
            headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            kept = [(name, value) for name, value in response.getheaders() if name.lower() not in HOP_BY_HOP]
            if self.command == "HEAD" and response.getheader("Content-Length"):
                kept.append(("Content-Length", response.getheader("Content-Length") or "0"))
            return response.status, response.reason, kept, data
        finally:
            connection.close()

    def _stall(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        self.connection.settimeout(30)
        try:
            self.connection.recv(1)  # returns when the client closes the connection
        except OSError:
            pass

    def _reset(self) -> None:
        # SO_LINGER 0: close sends RST, not FIN, as a load balancer dropping the connection does.
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
