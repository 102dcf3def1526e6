"""The Splunk HTTP Event Collector sink, with indexer acknowledgement.

Each document goes to ``/services/collector/event`` as one JSON envelope: ``time`` (the
record's ``eventTime`` as epoch seconds with milliseconds), ``sourcetype`` (``aws:cloudtrail`` by
default, so the Splunk Add-on for AWS extractions apply), ``source`` (the S3 object or file),
``host``, ``index``, optional indexed ``fields``, and ``event``: the document's own bytes
(``Document.to_json()``), spliced in unchanged. Many envelopes travel in one request.

Delivered means: with ``ack: true``, the indexer acknowledged the request's ``ackId``; without
it, HEC answered 200 code 0 (received and valid, not yet indexed).
"""

from __future__ import annotations

import calendar
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import urllib3
from isal import igzip
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from forwarder.config import ConfigError, SplunkHecSink
from forwarder.document import Document
from forwarder.record import Undecodable, parse_time
from forwarder.sinks.base import Delivery, Rejected, SinkError, SinkFatal
from forwarder.sinks import tls
from forwarder.sinks.redact import Redactor

log = logging.getLogger(__name__)

EVENT_PATH = "/services/collector/event"
ACK_PATH = "/services/collector/ack"
HEALTH_PATH = "/services/collector/health"

# HEC codes that condemn an event, not the connection or the configuration.
DATA_ERRORS = {5: "no data", 6: "invalid data format", 7: "incorrect index", 12: "event field is required",
               13: "event field cannot be blank", 15: "error in handling indexed fields"}
# HEC codes that no retry can fix, with what the operator should do.
FATAL = {
    1: "the HEC token is disabled in Splunk (code 1, Token disabled): enable it or use another token",
    2: "Splunk received no token (code 2, Token is required)",
    3: "Splunk refused the Authorization header (code 3, Invalid authorization)",
    4: "Splunk does not know the HEC token (code 4, Invalid token): check the token",
    10: "the HEC token has indexer acknowledgement on (code 10, Data channel is missing): "
        "set 'ack: true' for this sink",
    11: "Splunk refused the request channel (code 11, Invalid data channel)",
    14: "'ack: true' but indexer acknowledgement is off for this HEC token (code 14, ACK is disabled): "
        "turn on useACK for the token or set 'ack: false'",
    16: "Splunk refused the token in the query string (code 16)",
}

_T = TypeVar("_T")


def hec_time(text: str | None) -> bytes | None:
    """``eventTime`` as HEC's ``time``: epoch seconds with milliseconds, e.g. ``1688989500.123``.

    Every form ``parse_time`` reads (CloudTrail's own, exports' ``@timestamp``, the zone-less
    ``2024-06-02 19:41:40.000000000``); None when there is no time, and HEC then stamps arrival.
    """
    moment = parse_time(text)
    if moment is None:
        return None
    return f"{calendar.timegm(moment.utctimetuple())}.{moment.microsecond // 1000:03d}".encode()


def _flat(value: Any) -> str | list[str] | None:
    """A value as HEC's indexed ``fields`` take it: a string or a list of strings; None to leave out."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        items = [_flat(item) for item in value]
        return [item for item in items if isinstance(item, str)]
    return None


def _base_url(url: str) -> str:
    """The collector's root, whether the configuration names it or one of its endpoints."""
    url = url.rstrip("/")
    match = re.search(r"/services/collector(/.*)?$", url)
    return url[: match.start()] if match else url


@dataclass(slots=True)
class _Batch:
    documents: list[Document]
    envelopes: list[bytes]
    sends: int = 0
    deadline: float = 0.0

    def part(self, start: int, stop: int | None = None) -> _Batch:
        return _Batch(self.documents[start:stop], self.envelopes[start:stop])


class _Transient(Exception):
    """A failure worth retrying: busy, internal error, connection lost."""


class HecSink:
    """Sends documents to Splunk HEC; ``send`` returns once each is delivered or rejected.

    One ``send`` at a time: the ack channel and its pending ids belong to the call in progress.
    """

    name = "splunk_hec"

    def __init__(self, config: SplunkHecSink) -> None:
        self._config = config
        self._base = _base_url(config.url)
        self._channel = str(uuid.uuid4())
        try:
            token = config.token.get()  # a token that cannot be a header value is refused here, before any request
        except ConfigError as exc:
            raise ConfigError(f"Splunk HEC sink: {exc}") from None
        self._redact = Redactor([token])
        self._headers = {"Authorization": f"Splunk {token}", "Content-Type": "application/json"}
        if config.ack:
            self._headers["X-Splunk-Request-Channel"] = self._channel
        self._http = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED" if config.verify_tls else "CERT_NONE",
            ca_certs=str(config.ca_file) if config.ca_file else None,
            timeout=urllib3.Timeout(total=config.request_timeout_seconds),
            retries=False,
        )
        metadata = {"sourcetype": config.sourcetype, "host": config.host, "index": config.index}
        self._metadata = b"".join(
            orjson.dumps(key) + b":" + orjson.dumps(value) + b"," for key, value in metadata.items() if value
        )
        self._field_paths = [(path, path.split(".")) for path in config.indexed_fields]
        self._healthy = False
        if self._base.startswith("http://") and not re.match(r"http://(127\.|localhost|\[::1\])", self._base):
            log.warning("Splunk HEC at %s is plain HTTP: the token and events travel unencrypted", self._base)

    def __repr__(self) -> str:
        return f"HecSink(url={self._base!r}, index={self._config.index!r}, ack={self._config.ack})"

    # -- the Sink interface ------------------------------------------------------------------

    def send(self, documents: Sequence[Document]) -> Delivery:
        if not documents:
            return Delivery()
        if not self._healthy:
            self.check_health()
        rejected: list[Rejected] = []
        queue = deque(self._batches(documents, rejected))
        waiting: dict[int, _Batch] = {}  # ackId -> batch
        while queue or waiting:
            while queue:
                self._post(queue.popleft(), queue, waiting, rejected)
            if waiting:
                self._collect_acks(waiting, queue)
        return Delivery(rejected)

    def close(self) -> None:
        self._http.clear()

    def check_health(self) -> None:
        """Ask ``/services/collector/health`` (with the token, so a bad one shows at start)."""
        status, answer = self._retrying("health check", lambda: self._request("GET", HEALTH_PATH, None))
        if status == 200:
            self._healthy = True
            return
        if status == 400:
            problem = answer.get("text", "Invalid HEC token")
            raise SinkFatal(f"Splunk HEC at {self._base} refused the token at its health check ({problem}): "
                            f"check the token named by {self._config.token!r}")
        raise self._failure(status, answer)

    # -- envelopes ----------------------------------------------------------------------------

    def _envelope(self, document: Document) -> bytes:
        parts = [b"{"]
        stamp = hec_time(document.event_time)
        if stamp is not None:
            parts += [b'"time":', stamp, b","]
        parts.append(self._metadata)
        if document.source:
            parts += [b'"source":', orjson.dumps(document.source), b","]
        fields = self._indexed_fields(document)
        if fields:
            parts += [b'"fields":', orjson.dumps(fields), b","]
        parts += [b'"event":', document.to_json(), b"}"]
        return b"".join(parts)

    def _indexed_fields(self, document: Document) -> dict[str, str | list[str]]:
        fields: dict[str, str | list[str]] = {}
        for path, keys in self._field_paths:
            value: Any = document.assumerole if keys[0] == "assumerole" else document.record.get(keys[0])
            for key in keys[1:]:
                value = value.get(key) if isinstance(value, dict) else None
            flat = _flat(value)
            if flat is not None:
                fields[path] = flat
        return fields

    def _batches(self, documents: Sequence[Document], rejected: list[Rejected]) -> list[_Batch]:
        batches: list[_Batch] = []
        current = _Batch([], [])
        size = 0
        for document in documents:
            try:
                envelope = self._envelope(document)
            except Undecodable as exc:  # refused alone; the rest of the batch goes
                rejected.append(Rejected(document, exc.reason))
                continue
            full = len(current.envelopes) >= self._config.batch_max_events
            if current.envelopes and (full or size + len(envelope) > self._config.batch_max_bytes):
                batches.append(current)
                current, size = _Batch([], []), 0
            current.documents.append(document)
            current.envelopes.append(envelope)
            size += len(envelope)
        if current.envelopes:
            batches.append(current)
        return batches

    # -- delivery -----------------------------------------------------------------------------

    def _post(self, batch: _Batch, queue: deque[_Batch], waiting: dict[int, _Batch], rejected: list[Rejected]) -> None:
        body = b"".join(batch.envelopes)
        what = f"sending {len(batch.envelopes)} events"
        status, answer = self._retrying(what, lambda: self._request("POST", EVENT_PATH, body))
        batch.sends += 1
        code = answer.get("code")
        if status == 200 and code == 0:
            if not self._config.ack:
                return
            ack_id = answer.get("ackId")
            if not isinstance(ack_id, int):
                raise SinkFatal(f"Splunk HEC at {self._base} answered without an ackId: indexer acknowledgement "
                                "is off for this HEC token; turn on useACK for the token or set 'ack: false'")
            batch.deadline = time.monotonic() + self._config.ack_timeout_seconds
            waiting[ack_id] = batch
        elif code in DATA_ERRORS:
            self._split(batch, code, answer, queue, rejected)
        elif status == 413:
            self._too_large(batch, answer, queue, rejected)
        else:
            raise self._failure(status, answer)

    def _too_large(self, batch: _Batch, answer: dict[str, Any], queue: deque[_Batch], rejected: list[Rejected]) -> None:
        """HEC's max_content_length (1 MB on older Splunk) is below batch_max_bytes: send halves."""
        if len(batch.envelopes) > 1:
            half = len(batch.envelopes) // 2
            queue.extend((batch.part(0, half), batch.part(half)))
            return
        reason = (f"Splunk HEC refused the event as too large (HTTP 413: {answer.get('text', 'content too large')}); "
                  "raise max_content_length in the HEC input's limits")
        rejected.append(Rejected(batch.documents[0], reason))
        log.error("Splunk HEC dead-letters 1 event: %s", reason)

    def _split(self, batch: _Batch, code: int, answer: dict[str, Any], queue: deque[_Batch],
               rejected: list[Rejected]) -> None:
        """Reject the event HEC named and send its neighbours again, so one bad event costs only itself."""
        number = answer.get("invalid-event-number")
        reason = f"Splunk HEC refused the event: {answer.get('text', DATA_ERRORS[code])} (code {code})"
        if code == 7:
            reason += f"; index {self._config.index or '(token default)'!r} is not allowed for this token"
        if not isinstance(number, int) or not 0 <= number < len(batch.envelopes):
            # HEC did not say which event: halve until each bad one stands alone.
            if len(batch.envelopes) == 1:
                rejected.append(Rejected(batch.documents[0], reason))
            else:
                half = len(batch.envelopes) // 2
                queue.extend((batch.part(0, half), batch.part(half)))
            return
        if number and self._config.ack:
            # HEC indexed the events before the bad one but gave no ackId for them: only a
            # resend can be acknowledged (they may then be indexed twice; eventID dedups).
            queue.append(batch.part(0, number))
        # Every envelope of this sink names the same index, so an index refusal condemns the rest too.
        last = len(batch.envelopes) if code == 7 else number + 1
        rejected.extend(Rejected(document, reason) for document in batch.documents[number:last])
        log.error("Splunk HEC dead-letters %d event(s): %s", last - number, reason)
        if last < len(batch.envelopes):
            queue.append(batch.part(last))

    def _collect_acks(self, waiting: dict[int, _Batch], queue: deque[_Batch]) -> None:
        ids = sorted(waiting)
        body = orjson.dumps({"acks": ids})
        status, answer = self._retrying("querying acknowledgements", lambda: self._request("POST", ACK_PATH, body))
        acks = answer.get("acks")
        if status != 200 or not isinstance(acks, dict):
            raise self._failure(status, answer)
        for ack_id in ids:
            if acks.get(str(ack_id)) is True:
                del waiting[ack_id]
        now = time.monotonic()
        for ack_id, batch in list(waiting.items()):
            if now < batch.deadline:
                continue
            del waiting[ack_id]
            if batch.sends > self._config.max_retries:
                raise SinkError(f"Splunk HEC at {self._base}: {len(batch.envelopes)} events not acknowledged by the "
                                f"indexer within {self._config.ack_timeout_seconds:g}s, {batch.sends} sends")
            log.warning("Splunk HEC ackId %d not acknowledged within %gs; sending its %d events again",
                        ack_id, self._config.ack_timeout_seconds, len(batch.envelopes))
            queue.append(batch)
        if waiting and not queue:
            time.sleep(self._config.ack_poll_seconds)

    # -- HTTP -----------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
        headers = self._headers
        if body is not None and path == EVENT_PATH and self._config.gzip:
            body = igzip.compress(body, compresslevel=1)
            headers = {**headers, "Content-Encoding": "gzip"}
        # Every text from outside (the library's errors, the collector's answer) passes the
        # redactor here: everything the sink logs, raises or dead-letters is made of these.
        try:
            response = self._http.request(method, self._base + path, body=body, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            if tls.certificate_refused(exc):
                raise SinkFatal(self._redact(f"Splunk HEC: {tls.advice(self._base, exc)}")) from None
            raise _Transient(self._redact(f"connection failed: {exc.__class__.__name__}: {exc}")) from None
        except ValueError as exc:  # http.client refusing a header or the URL: no retry changes them
            raise SinkFatal(self._redact(f"Splunk HEC at {self._base}: the request could not be made: {exc}")) from None
        try:
            answer = orjson.loads(response.data) if response.data else {}
        except orjson.JSONDecodeError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if "text" in answer:
            answer["text"] = self._redact(answer["text"])
        if response.status >= 500:
            raise _Transient(f"HTTP {response.status} {answer.get('text', '')} (code {answer.get('code')})")
        return response.status, answer

    def _retrying(self, what: str, call: Callable[[], _T]) -> _T:
        def warn(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning("Splunk HEC at %s: %s: %s; attempt %d of %d", self._base, what, error,
                        state.attempt_number, self._config.max_retries + 1)

        retrying = Retrying(
            stop=stop_after_attempt(self._config.max_retries + 1),
            wait=wait_random_exponential(multiplier=self._config.retry_initial_seconds,
                                         max=self._config.retry_max_seconds),
            retry=retry_if_exception_type(_Transient),
            before_sleep=warn,
            reraise=True,
        )
        try:
            return retrying(call)
        except _Transient as exc:
            raise SinkError(f"Splunk HEC at {self._base}: {what} failed after "
                            f"{self._config.max_retries + 1} attempts: {exc}") from None

    def _failure(self, status: int, answer: dict[str, Any]) -> SinkError:
        code = answer.get("code")
        if code in FATAL:
            return SinkFatal(f"Splunk HEC at {self._base}: {FATAL[code]} (token from {self._config.token!r})")
        if status == 404:
            return SinkFatal(f"no HTTP Event Collector at {self._base} (HTTP 404): check the sink's url")
        return SinkError(f"Splunk HEC at {self._base}: unexpected HTTP {status} {answer.get('text', '')} (code {code})")
