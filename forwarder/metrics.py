"""Prometheus metrics and the /metrics + /healthz endpoint."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from forwarder.config import ConfigError, listen_address
from forwarder.document import Document
from forwarder.record import epoch
from forwarder.pipeline import Outcome
from forwarder.sinks.base import Delivery, Sink

_LAG_BUCKETS = (60, 300, 600, 900, 1800, 3600, 7200, 21600, 86400, float("inf"))


class Metrics:
    """One registry per daemon (not the global one), so tests can run several in a process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records_in = Counter("forwarder_records_in", "Records read from objects", ["source"], registry=r)
        self.records_out = Counter("forwarder_records_out", "Documents accepted by a sink", ["sink"], registry=r)
        self.dead_lettered = Counter(
            "forwarder_records_dead_lettered", "Records written to the dead letter", ["source"], registry=r
        )
        self.rejected = Counter("forwarder_records_rejected", "Documents a sink refused for good", ["sink"], registry=r)
        self.objects = Counter("forwarder_objects", "Objects by outcome", ["source", "outcome"], registry=r)
        self.messages = Counter("forwarder_sqs_messages", "SQS messages by outcome", ["outcome"], registry=r)
        self.errors = Counter("forwarder_errors", "Errors by kind", ["kind"], registry=r)
        self.lag = Histogram(
            "forwarder_delivery_lag_seconds", "Wall-clock time from eventTime to acceptance by a sink",
            ["sink"], buckets=_LAG_BUCKETS, registry=r,
        )
        self.held = Gauge("forwarder_held_records", "Records held back for a late parent session, or a flag for earlier events", registry=r)
        self.sessions = Gauge("forwarder_session_store_size", "Sessions in the state store", registry=r)
        self.last_receive = Gauge(
            "forwarder_last_receive_timestamp_seconds", "When the source last completed a receive or listing", registry=r
        )

    def outcome(self, source: str, outcome: Outcome) -> None:
        self.records_in.labels(source).inc(outcome.records)
        if outcome.dead_lettered:
            self.dead_lettered.labels(source).inc(outcome.dead_lettered)
        if outcome.source != "held":
            self.objects.labels(source, "skipped" if outcome.skipped_object else "processed").inc()


class CountingSink:
    """Wraps a sink to count what it accepted and refused, and the delivery lag."""

    def __init__(self, sink: Sink, metrics: Metrics) -> None:
        self.sink = sink
        self.name = sink.name
        self._out = metrics.records_out.labels(sink.name)
        self._rejected = metrics.rejected.labels(sink.name)
        self._lag = metrics.lag.labels(sink.name)

    def send(self, documents: Sequence[Document]) -> Delivery:
        delivery = self.sink.send(documents)
        self._out.inc(len(documents) - len(delivery.rejected))
        self._rejected.inc(len(delivery.rejected))
        # One observation per send, for the oldest event: per-document parsing would cost
        # more than the rest of the bookkeeping, and the oldest is what an alert wants.
        oldest = min((d.event_time for d in documents if d.event_time), default=None)
        moment = epoch(oldest)
        if moment is not None:
            self._lag.observe(max(0.0, time.time() - moment))
        return delivery

    def close(self) -> None:
        self.sink.close()


class Health:
    """Alive when the loop beat recently and the source completed a receive recently."""

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self.loop_beat = time.monotonic()
        self.received = time.monotonic()

    def beat(self) -> None:
        self.loop_beat = time.monotonic()

    def receive(self) -> None:
        self.received = time.monotonic()

    def problem(self) -> str | None:
        now = time.monotonic()
        if now - self.loop_beat > self.stale_after:
            return f"the main loop has not run for {now - self.loop_beat:.0f} s"
        if now - self.received > self.stale_after:
            return f"no receive or listing completed for {now - self.received:.0f} s"
        return None


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def serve(listen: str, metrics: Metrics, health: Health) -> Callable[[], None]:
    """Serve /metrics and /healthz on ``host:port`` in a thread; return the function that stops it.

    An address that cannot be bound (in use, not this machine's, a name that does not resolve)
    is a ConfigError naming ``metrics.listen``.
    """
    try:
        host, port = listen_address(listen)
    except ValueError as exc:
        raise ConfigError(f"metrics.listen: {exc}") from None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                problem = health.problem()
                self._answer(503 if problem else 200, (problem or "ok").encode() + b"\n", "text/plain")
            else:
                self._answer(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - scrapes are not news
            pass

    server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
    try:
        server = server_class((host, port), Handler)
    except OSError as exc:
        raise ConfigError(f"metrics.listen: cannot listen on {listen}: {exc.strerror or exc}: "
                          "choose a free port or another address (null turns the endpoint off)") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop
