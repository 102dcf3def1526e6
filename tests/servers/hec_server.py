"""A Splunk HTTP Event Collector that follows the documented protocol, for tests and benchmarks.

No Splunk can be installed here, so this server stands in for one. It is strict on purpose: a
request that real HEC refuses is refused here with the same HTTP status, ``code`` and ``text``,
so that a client passing against it means something.

What it implements (Splunk Enterprise "Format events for HTTP Event Collector", "About HTTP Event
Collector Indexer Acknowledgment", the REST reference of ``services/collector*``):

* ``POST /services/collector``, ``/services/collector/event``, ``/services/collector/event/1.0``:
  one or more JSON envelopes concatenated in the body (whitespace between them allowed), each with
  ``event`` (required) and the optional ``time``, ``host``, ``source``, ``sourcetype``, ``index``,
  ``fields``. Query parameters ``host``/``source``/``sourcetype``/``index`` give defaults.
* ``POST /services/collector/raw``: the body is split into one event per non-empty line; metadata
  comes from the query string; a channel is always required.
* ``POST /services/collector/ack``: ``{"acks": [ids]}`` -> ``{"acks": {"id": bool}}``. An id
  reported ``true`` is forgotten afterwards (later queries answer ``false``), as in Splunk.
* ``GET /services/collector/health`` (and ``/1.0``): 200 code 17 or 503 code 18; with an
  ``Authorization`` header the token is checked too (400 on a bad one).
* ``Authorization: Splunk <token>`` (or Basic with the token as password). ``?token=`` is refused
  with code 16, as Splunk does by default (``allowQueryStringAuth`` off).
* ``Content-Encoding: gzip`` request bodies.
* Channels from ``X-Splunk-Request-Channel`` or ``?channel=``; required (code 10) when the token
  has indexer acknowledgement on, and always on ``/raw``; must be a GUID (code 11).

A batch with a bad envelope: Splunk parses the body in order, indexes the events before the bad
one, and answers with the error and ``invalid-event-number`` (zero-based index of the first bad
envelope); the bad event and everything after it are dropped, and no ``ackId`` is returned (see
moby/moby#35862 and vectordotdev/vector#11434, which describe that behaviour). This server does
the same: events before the bad one are stored, without an ack id.

Choices where the documentation is silent (kept strict): ``"event": null`` or a missing ``event``
is code 12; ``""``, a whitespace-only string, ``{}`` or ``[]`` is code 13; ``time`` must be a number
or a numeric string (else code 6); ``host``/``source``/``sourcetype``/``index`` must be strings
(else code 6); ``fields`` must be an object whose values are strings or arrays of strings (else
code 15, with ``invalid-event-number``); an index outside the token's allowed list is code 7;
unknown envelope keys are ignored.

Fault switches (for the sink's tests): ``busy`` (503 code 9 for N requests or T seconds),
``drop_connections`` (close the socket without an answer), ``hold_acks``/``release_acks`` and
``ack_delay`` (acks stay false), ``lose_next`` (accepted with an ackId, then never indexed: the ack
never comes), token ``disabled``/removal, ``unhealthy``.

Run alone for benchmarks: ``python tests/servers/hec_server.py --port 8088 --token T [--ack]``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import re
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from servers.background import Background

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
NUMBER = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")

# code -> (HTTP status, text), as documented in "Troubleshoot HTTP Event Collector".
CODES: dict[int, tuple[int, str]] = {
    0: (200, "Success"),
    1: (403, "Token disabled"),
    2: (401, "Token is required"),
    3: (401, "Invalid authorization"),
    4: (403, "Invalid token"),
    5: (400, "No data"),
    6: (400, "Invalid data format"),
    7: (400, "Incorrect index"),
    8: (500, "Internal server error"),
    9: (503, "Server is busy"),
    10: (400, "Data channel is missing"),
    11: (400, "Invalid data channel"),
    12: (400, "Event field is required"),
    13: (400, "Event field cannot be blank"),
    14: (400, "ACK is disabled"),
    15: (400, "Error in handling indexed fields"),
    16: (400, "Query string authorization is not enabled"),
    17: (200, "HEC is healthy"),
    18: (503, "HEC is unhealthy, queues are full"),
}

EVENT_PATHS = {"/services/collector", "/services/collector/event", "/services/collector/event/1.0"}
RAW_PATHS = {"/services/collector/raw", "/services/collector/raw/1.0"}
ACK_PATHS = {"/services/collector/ack", "/services/collector/ack/1.0"}
HEALTH_PATHS = {"/services/collector/health", "/services/collector/health/1.0"}
METADATA = ("host", "source", "sourcetype", "index")


@dataclass
class Token:
    """An HEC token as configured in inputs.conf: ``useACK``, ``disabled``, ``indexes``, ``index``."""

    value: str
    ack: bool = False
    disabled: bool = False
    indexes: list[str] | None = None  # allowed indexes; None allows any
    default_index: str = "main"
    default_sourcetype: str = "httpevent"


@dataclass(frozen=True)
class StoredEvent:
    index: str
    sourcetype: str
    source: str | None
    host: str | None
    time: float | None
    event: Any
    fields: dict[str, Any] | None
    channel: str | None
    ack_id: int | None


class _Rejection(Exception):
    def __init__(self, code: int, event_number: int | None = None) -> None:
        super().__init__(CODES[code][1])
        self.code = code
        self.event_number = event_number


@dataclass
class _Channel:
    next_id: int = 0
    # ack id -> (time accepted, indexed: False while lost)
    pending: dict[int, tuple[float, bool]] = field(default_factory=dict)


class HecServer(Background):
    thread_name = "hec-server"

    """The server and its state; ``start()`` serves on 127.0.0.1 in a thread."""

    def __init__(self, tokens: list[Token], host: str = "127.0.0.1", port: int = 0, keep_events: bool = True,
                 tls: tuple[str, str] | None = None) -> None:
        self.tokens = {token.value: token for token in tokens}
        self.keep_events = keep_events
        self._lock = threading.Lock()
        self._events: list[StoredEvent] = []
        self._event_count = 0
        self._channels: dict[str, _Channel] = {}
        self.requests: list[tuple[str, int, int | None]] = []  # (path, HTTP status, HEC code)
        self._busy_requests = 0
        self._busy_until = 0.0
        self._drop = 0
        self._lose = 0
        self._acks_held = False
        self.ack_delay = 0.0
        self.unhealthy = False
        self.allow_query_string_auth = False
        # Splunk's [http] max_content_length: a larger request body is refused with HTTP 413.
        self.max_content_length: int | None = None
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hec = self  # type: ignore[attr-defined]
        if tls is not None:  # (certificate file, key file): HTTPS, as HEC serves by default
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._scheme = "https" if tls else "http"

    # -- life --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host}:{port}"


    # -- what the tests read -----------------------------------------------------------------

    def events(self, index: str | None = None) -> list[StoredEvent]:
        with self._lock:
            return [e for e in self._events if index is None or e.index == index]

    @property
    def event_count(self) -> int:
        with self._lock:
            return self._event_count

    def pending_acks(self, channel: str | None = None) -> dict[str, list[int]]:
        """Ack ids issued and not yet reported ``true``, per channel."""
        with self._lock:
            return {
                name: sorted(state.pending)
                for name, state in self._channels.items()
                if (channel is None or name == channel) and state.pending
            }

    def codes(self, path_suffix: str = "") -> list[int | None]:
        with self._lock:
            return [code for path, _, code in self.requests if path.endswith(path_suffix)]

    # -- fault switches ------------------------------------------------------------------------

    def busy(self, requests: int = 0, seconds: float = 0.0) -> None:
        """Answer data requests with 503 code 9 for the next ``requests`` or for ``seconds``."""
        with self._lock:
            self._busy_requests = requests
            self._busy_until = time.monotonic() + seconds if seconds else 0.0

    def drop_connections(self, count: int) -> None:
        """Close the connection without answering the next ``count`` data requests (nothing stored)."""
        with self._lock:
            self._drop = count

    def lose_next(self, count: int) -> None:
        """Accept the next ``count`` requests with an ackId, then lose them: never indexed, never acked."""
        with self._lock:
            self._lose = count

    def hold_acks(self) -> None:
        with self._lock:
            self._acks_held = True

    def release_acks(self) -> None:
        with self._lock:
            self._acks_held = False

    def disable_token(self, value: str, disabled: bool = True) -> None:
        with self._lock:
            self.tokens[value].disabled = disabled

    def remove_token(self, value: str) -> None:
        with self._lock:
            del self.tokens[value]

    # -- protocol --------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None, query: dict[str, list[str]]) -> Token:
        if "token" in query and authorization is None:
            token = self._known(query["token"][0])
            if not self.allow_query_string_auth:
                raise _Rejection(16)
            return token
        if authorization is None:
            raise _Rejection(2)
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() == "basic":
            try:
                credential = base64.b64decode(credential, validate=True).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                raise _Rejection(3) from None
        elif scheme != "Splunk":
            raise _Rejection(3)
        if not credential:
            raise _Rejection(3)
        return self._known(credential)

    def _known(self, value: str) -> Token:
        with self._lock:
            token = self.tokens.get(value)
        if token is None:
            raise _Rejection(4)
        if token.disabled:
            raise _Rejection(1)
        return token

    def take_drop(self) -> bool:
        with self._lock:
            if self._drop > 0:
                self._drop -= 1
                return True
            return False

    def check_busy(self) -> None:
        with self._lock:
            if self._busy_requests > 0:
                self._busy_requests -= 1
                raise _Rejection(9)
            if self._busy_until and time.monotonic() < self._busy_until:
                raise _Rejection(9)

    def channel_of(self, token: Token, header: str | None, query: dict[str, list[str]], required: bool) -> str | None:
        channel = header if header is not None else (query.get("channel") or [None])[0]
        if channel is None:
            if token.ack or required:
                raise _Rejection(10)
            return None
        if not GUID.match(channel):
            raise _Rejection(11)
        return channel

    def ingest(
        self, token: Token, envelopes: list[dict[str, Any]], channel: str | None, error: _Rejection | None
    ) -> int | None:
        """Index ``envelopes`` (already validated); the ack id when the token asks for one."""
        with self._lock:
            lost = False
            ack_id = None
            if token.ack and error is None:
                state = self._channels.setdefault(channel or "", _Channel())
                ack_id = state.next_id
                state.next_id += 1
                lost = self._lose > 0
                if lost:
                    self._lose -= 1
                state.pending[ack_id] = (time.monotonic(), not lost)
            if lost:
                return ack_id
            for env in envelopes:
                self._event_count += 1
                if not self.keep_events:
                    continue
                raw_time = env.get("time")
                self._events.append(
                    StoredEvent(
                        index=env.get("index") or token.default_index,
                        sourcetype=env.get("sourcetype") or token.default_sourcetype,
                        source=env.get("source"),
                        host=env.get("host"),
                        time=float(raw_time) if raw_time is not None else None,
                        event=env["event"],
                        fields=env.get("fields"),
                        channel=channel,
                        ack_id=ack_id,
                    )
                )
            return ack_id

    def ack_status(self, channel: str, ids: list[int]) -> dict[str, bool]:
        now = time.monotonic()
        with self._lock:
            state = self._channels.get(channel, _Channel())
            answer = {}
            for ack_id in ids:
                entry = state.pending.get(ack_id)
                done = (
                    entry is not None and entry[1] and not self._acks_held and now - entry[0] >= self.ack_delay
                )
                if done:
                    del state.pending[ack_id]
                answer[str(ack_id)] = done
            return answer

    def record(self, path: str, status: int, code: int | None) -> None:
        with self._lock:
            self.requests.append((path, status, code))


def validate_envelope(env: Any, number: int, token: Token, defaults: dict[str, str]) -> dict[str, Any]:
    """One envelope checked as HEC checks it; query-string metadata fills what it lacks."""
    if not isinstance(env, dict):
        raise _Rejection(6, number)
    if env.get("event") is None:
        raise _Rejection(12, number)
    event = env["event"]
    if (isinstance(event, str) and not event.strip()) or (isinstance(event, dict | list) and not event):
        raise _Rejection(13, number)
    for key in METADATA:
        if key in env and not isinstance(env[key], str):
            raise _Rejection(6, number)
    if "time" in env:
        value = env["time"]
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric and not (isinstance(value, str) and NUMBER.match(value)):
            raise _Rejection(6, number)
    if "fields" in env:
        fields = env["fields"]
        if not isinstance(fields, dict):
            raise _Rejection(15, number)
        for value in fields.values():
            flat = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
            if not flat:
                raise _Rejection(15, number)
    merged = {**defaults, **env}
    index = merged.get("index") or token.default_index
    if token.indexes is not None and index not in token.indexes:
        raise _Rejection(7, number)
    return merged


def parse_envelopes(text: str) -> tuple[list[Any], int | None]:
    """The JSON values concatenated in ``text``; the number of the first unparseable one, if any."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        if position == len(text):
            return values, None
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return values, len(values)
        values.append(value)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as splunkd
    server_version = "Splunkd"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read server.requests
        pass

    @property
    def hec(self) -> HecServer:
        return self.server.hec  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/")
        query = parse_qs(parts.query)
        body = self._read_body()
        if body is None:
            return
        limit = self.hec.max_content_length
        if limit is not None and len(body) > limit:
            text = f"Content-Length of {len(body)} too large (maximum is {limit})"
            self._reply(413, {"text": text, "code": 413}, path)
            return
        try:
            if path in HEALTH_PATHS and method == "GET":
                self._health()
                return
            if path not in EVENT_PATHS | RAW_PATHS | ACK_PATHS:
                self._reply(404, {"text": "The requested URL was not found on this server.", "code": 404}, path)
                return
            if method != "POST":
                self._reply(405, {"text": "Method not allowed", "code": 405}, path)
                return
            if path in ACK_PATHS:
                self._ack(path, query, body)
            else:
                self._data(path, query, body)
        except _Rejection as rejection:
            status, text = CODES[rejection.code]
            answer: dict[str, Any] = {"text": text, "code": rejection.code}
            if rejection.event_number is not None:
                answer["invalid-event-number"] = rejection.event_number
            self._reply(status, answer, path)

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        return self.rfile.read(int(length))

    def _decoded(self, body: bytes) -> str:
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error):
                raise _Rejection(6) from None
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise _Rejection(6) from None

    def _data(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
        hec = self.hec
        if hec.take_drop():
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            hec.record(path, 0, None)
            return
        token = hec.authenticate(self.headers.get("Authorization"), query)
        hec.check_busy()
        raw = path in RAW_PATHS
        channel = hec.channel_of(token, self.headers.get("X-Splunk-Request-Channel"), query, required=raw)
        text = self._decoded(body)
        if not text.strip():
            raise _Rejection(5)
        defaults = {key: query[key][0] for key in METADATA if key in query}
        if raw:
            lines = [line for line in text.splitlines() if line.strip()]
            envelopes = [validate_envelope({"event": line}, n, token, defaults) for n, line in enumerate(lines)]
            error = None
        else:
            envelopes, error = self._envelopes(text, token, defaults)
        ack_id = hec.ingest(token, envelopes, channel, error)
        if error is not None:
            raise error
        answer: dict[str, Any] = {"text": "Success", "code": 0}
        if ack_id is not None:
            answer["ackId"] = ack_id
        self._reply(200, answer, path)

    def _envelopes(
        self, text: str, token: Token, defaults: dict[str, str]
    ) -> tuple[list[dict[str, Any]], _Rejection | None]:
        values, unparseable = parse_envelopes(text)
        good: list[dict[str, Any]] = []
        for number, value in enumerate(values):
            try:
                good.append(validate_envelope(value, number, token, defaults))
            except _Rejection as rejection:
                return good, rejection
        if unparseable is not None:
            return good, _Rejection(6, unparseable)
        return good, None

    def _ack(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
        hec = self.hec
        token = hec.authenticate(self.headers.get("Authorization"), query)
        if not token.ack:
            raise _Rejection(14)
        channel = hec.channel_of(token, self.headers.get("X-Splunk-Request-Channel"), query, required=True)
        try:
            request = json.loads(self._decoded(body) or "null")
        except json.JSONDecodeError:
            raise _Rejection(6) from None
        ids = request.get("acks") if isinstance(request, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise _Rejection(6)
        assert channel is not None
        self._reply(200, {"acks": hec.ack_status(channel, ids)}, path)

    def _health(self) -> None:
        hec = self.hec
        path = "/services/collector/health"
        authorization = self.headers.get("Authorization")
        if authorization is not None:
            try:
                hec.authenticate(authorization, {})
            except _Rejection:
                self._reply(400, {"text": "Invalid HEC token", "code": 4}, path)
                return
        code = 18 if hec.unhealthy else 17
        self._reply(CODES[code][0], {"text": CODES[code][1], "code": code}, path)

    def _reply(self, status: int, answer: dict[str, Any], path: str) -> None:
        payload = json.dumps(answer, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        code = answer.get("code")
        self.hec.record(path, status, code if isinstance(code, int) else None)


def main() -> None:
    parser = argparse.ArgumentParser(description="Protocol-faithful Splunk HEC test server")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", required=True)
    parser.add_argument("--ack", action="store_true", help="the token uses indexer acknowledgement")
    parser.add_argument("--index", action="append", help="allowed index (repeat); default: any")
    args = parser.parse_args()
    server = HecServer(
        [Token(args.token, ack=args.ack, indexes=args.index)], host=args.host, port=args.port, keep_events=False
    )
    print(f"listening {server.url}", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
