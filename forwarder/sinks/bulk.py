"""What the Elasticsearch and OpenSearch sinks share: bulk indexing with one document per eventID.

Each document is serialised once (es_document), cut into requests bounded by ``batch_max_docs``
and ``batch_max_bytes``, and sent on the calling thread (the batching layer in front runs a
fixed set of callers; a sink starts no threads of its own). An answer whose ``errors`` is false
says every item was taken, and is not walked; otherwise each item's verdict is read: accepted
(or 409 on a ``create`` resend: already there), refused for good (returned as ``Rejected`` and
copied to the dead-letter index), or refused for now (429, 5xx, no answer): those alone are sent
again with backoff until the retries run out, then ``SinkError``.

A product module gives a ``Cluster``: its client's calls, with its errors turned into
``HttpError`` (the cluster answered with an error status) and ``Unreachable`` (no answer).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol, TypeVar

import orjson
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from forwarder import config
from forwarder.document import Document
from forwarder.es_templates import Templates
from forwarder.record import Undecodable
from forwarder.sinks import tls
from forwarder.sinks.base import Delivery, Rejected, SinkError, SinkFatal
from forwarder.sinks.es_document import document_id, to_es
from forwarder.sinks.redact import Redactor

log = logging.getLogger(__name__)

# Only what the verdicts need: parsing a 1000-item answer is not free.
BULK_FILTER = "errors,items.*.status,items.*.error"
# How a filtered answer begins when every item was taken (an unfiltered one names "took" or "_index").
ACCEPTED = re.compile(rb'\{"errors":false,"items":\[\{"(?:create|index)":\{"status":\d+\}\}')
T = TypeVar("T")


class HttpError(Exception):
    """The cluster answered with an error status; ``body`` is its parsed answer, if any."""

    def __init__(self, status: int, body: Any, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.body = body


class Unreachable(Exception):
    """No answer: refused, reset, timed out, or a TLS failure (``certificate``: ours of its certificate)."""

    def __init__(self, reason: str, certificate: bool) -> None:
        super().__init__(reason)
        self.certificate = certificate


class Cluster(Protocol):
    where: str  # the cluster in messages: its hosts, never a secret

    def bulk(self, body: bytes) -> dict[str, Any]:
        """POST _bulk with ``filter_path=BULK_FILTER``: the parsed answer."""
        ...

    def index_template(self, name: str) -> dict[str, Any] | None:
        """The installed composable index template's body, or None."""
        ...

    def close(self) -> None: ...


class ClientCluster:
    """A product client as a ``Cluster``: ``translate`` turns the client's ``errors`` into
    ``HttpError`` or ``Unreachable``; both clients name the template calls alike."""

    errors: tuple[type[Exception], ...] = ()

    def __init__(self, client: Any, where: str) -> None:
        self.client = client
        self.where = where

    def translate(self, exc: Exception) -> HttpError | Unreachable:
        raise NotImplementedError

    def call(self, request: Callable[[], T]) -> T:
        try:
            return request()
        except self.errors as exc:
            raise self.translate(exc) from None

    def put_index_template(self, name: str, body: dict[str, Any]) -> None:
        self.call(lambda: self.client.indices.put_index_template(name=name, body=body))

    def put_component_template(self, name: str, body: dict[str, Any]) -> None:
        self.call(lambda: self.client.cluster.put_component_template(name=name, body=body))

    def close(self) -> None:
        self.client.close()


@dataclass(slots=True)
class Item:
    document: Document | None  # None for dead-letter entries
    index: str
    body: bytes
    header: bytes  # the action line
    reworked: int = 0  # times the product changed the body after a refusal (see BulkSink.rework)

    @property
    def size(self) -> int:
        return len(self.header) + len(self.body) + 2


def secret(ref: config.SecretRef | None, product: str) -> str | None:
    try:
        return ref.get() if ref is not None else None
    except config.ConfigError as exc:
        raise config.ConfigError(f"{product} sink: {exc}") from None


def index_namer(pattern: str, product: str) -> Callable[[datetime], str]:
    """``cloudtrail-assumerole-{%Y.%m.%d}`` -> a function from the event's time to the index name."""
    pieces: list[tuple[bool, str]] = []  # (is a strftime format, text)
    rest = pattern
    while "{" in rest:
        head, _, tail = rest.partition("{")
        fmt, closed, rest = tail.partition("}")
        if not closed:
            raise SinkFatal(f"{product} sink: index {pattern!r} has an unclosed '{{'")
        pieces += [(False, head), (True, fmt)]
    pieces.append((False, rest))
    if not any(is_format for is_format, _ in pieces):
        return lambda when: pattern

    def name(when: datetime) -> str:
        return "".join(when.strftime(text) if is_format else text for is_format, text in pieces)

    formats = "".join(text for is_format, text in pieces if is_format)
    if re.search(r"%[^YmdyjbBaAuwUWGVCgexh%]", formats):  # a time of day in the name: every event its own
        return name
    # Only the date: one strftime per day, not per document.
    by_day = lru_cache(maxsize=1024)(lambda day: name(datetime.fromordinal(day)))
    return lambda when: by_day(when.toordinal())


def bulk_answer(data: str | bytes) -> Any:
    """An answer to the sinks' own bulk requests (BULK_FILTER) that says no item failed, as
    ``{"errors": False}`` without reading its items (a 1,000-item answer is 25 KB to parse for
    nothing); None for any other answer, an unfiltered bulk answer included."""
    start = data[:64]
    found = ACCEPTED.match(start if isinstance(start, bytes) else start.encode())
    return {"errors": False} if found else None


def item_error(info: dict[str, Any]) -> Any:
    """An item's error; for a refused request, the error object of its body."""
    error = info.get("error")
    body = info.get("body")
    if not isinstance(error, dict) and isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return error


def reason(info: dict[str, Any]) -> str:
    error = item_error(info)
    if isinstance(error, dict):
        text = f"{error.get('type')}: {error.get('reason')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason") and cause.get("reason") not in text:
            text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return text
    body = info.get("body")
    if isinstance(body, dict) and isinstance(body.get("message"), str):  # AWS's own answers
        return f"HTTP {info.get('status')}: {body['message']}"
    return f"HTTP {info.get('status')}: {error}"


def error_type(info: dict[str, Any]) -> str:
    error = item_error(info)
    return str(error.get("type")) if isinstance(error, dict) else f"http_{info.get('status')}"


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


class _Transient(Exception):
    """Some documents were refused for now; ``remaining`` are to be sent again."""

    def __init__(self, remaining: list[Item], why: str) -> None:
        super().__init__(why)
        self.remaining = remaining


Refused = list[tuple[Item, dict[str, Any]]]


class BulkSink:
    """A ``Sink`` over ``cluster`` for a ``config.BulkIndexSink``; thread-safe (no state per call)."""

    name: str  # the product: "elasticsearch", "opensearch"
    setup_hint: str

    def __init__(self, cfg: config.BulkIndexSink, cluster: Cluster, redact: Redactor, templates: Templates) -> None:
        self.cfg = cfg
        self.cluster = cluster
        # The index template this version installs: the one check_templates looks for.
        self._digest = templates.index[cfg.template_name]["_meta"]["digest"]
        # What the client, the transport and the cluster say passes this before it is logged,
        # raised or dead-lettered: their errors may quote a request's headers.
        self._redact = redact
        self._where = cluster.where
        self._index = (lambda when: cfg.data_stream) if cfg.data_stream else index_namer(cfg.index, self.name)
        if cfg.check_templates:
            self._retrying(self.check_templates)

    def rework(self, item: Item, info: dict[str, Any]) -> bytes | None:
        """A body the cluster may take instead of one it refused for good, or None (the refusal stands)."""
        return None

    # -- templates -------------------------------------------------------------------------

    def check_templates(self) -> None:
        """Raise SinkFatal when the index template is missing; warn when it is outdated."""
        name = self.cfg.template_name
        try:
            installed = self.cluster.index_template(name)
        except HttpError as exc:
            why = self._why({"body": exc.body, "status": exc.status, "error": str(exc)})
            if exc.status == 401:
                raise SinkFatal(f"{self.name} sink: {self._where} refused the credentials: {why}") from None
            if exc.status == 403:
                raise SinkFatal(
                    f"{self.name} sink: cannot read index templates on {self._where} ({why}): "
                    "grant the privilege to manage index templates or set check_templates: false"
                ) from None
            raise
        if installed is None:
            raise SinkFatal(
                f"{self.name} sink: index template {name!r} is not installed on {self._where}: {self.setup_hint}"
            )
        if (installed.get("_meta") or {}).get("digest") != self._digest:
            log.warning("%s sink: index template %r on %s differs from this version's: %s",
                        self.name, name, self._where, self.setup_hint)

    # -- sending ---------------------------------------------------------------------------

    def _item(self, document: Document | None, index: str, id: str | None, body: bytes, op_type: str) -> Item:
        meta = {"_index": index, "_id": id} if id is not None else {"_index": index}
        return Item(document, index, body, orjson.dumps({op_type: meta}))

    def send(self, documents: Sequence[Document]) -> Delivery:
        rejected: list[Rejected] = []
        items: list[Item] = []
        for document in documents:
            try:
                prepared = to_es(document)
            except Undecodable as exc:  # refused alone, before it could spoil a request
                rejected.append(Rejected(document, exc.reason))
                continue
            index = self._index(prepared.time or datetime.now(UTC))
            items.append(self._item(document, index, prepared.id, prepared.body, self.cfg.op_type))
        refused: Refused = []
        self._deliver(items, refused)
        for item, info in refused:
            assert item.document is not None
            rejected.append(Rejected(item.document, self._why(info)))
        if refused and self.cfg.dead_letter_index:
            self._dead_letter(refused)
        return Delivery(rejected=rejected)

    def _deliver(self, items: list[Item], refused: Refused) -> None:
        pending = items
        try:
            for attempt in self._backoff(lambda exc: isinstance(exc, _Transient)):
                with attempt:
                    try:
                        self._attempt(pending, refused)
                    except _Transient as exc:
                        pending = exc.remaining
                        raise
        except _Transient as exc:
            raise SinkError(
                f"{self.name} sink: {len(pending)} of {len(items)} documents not accepted by {self._where} "
                f"after {self.cfg.max_retries + 1} attempts: {exc}"
            ) from None

    def _chunks(self, items: list[Item]) -> Iterator[list[Item]]:
        chunk: list[Item] = []
        size = 0
        for item in items:
            if chunk and (len(chunk) >= self.cfg.batch_max_docs or size + item.size > self.cfg.batch_max_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append(item)
            size += item.size
        if chunk:
            yield chunk

    def _attempt(self, pending: list[Item], refused: Refused) -> None:
        """One pass over ``pending`` (and over what the product reworked); raises _Transient with
        what must be sent again."""
        remaining: list[Item] = []
        why = ""
        while pending:
            reworked: list[Item] = []
            why = self._pass(pending, refused, remaining, reworked) or why
            pending = reworked
        if remaining:
            log.warning("%s sink: %d documents to send again: %s", self.name, len(remaining), why)
            raise _Transient(remaining, why)

    def _pass(self, pending: list[Item], refused: Refused, remaining: list[Item], reworked: list[Item]) -> str:
        why = ""
        chunks = self._chunks(pending)
        for chunk in chunks:
            body = b"".join(part for item in chunk for part in (item.header, b"\n", item.body, b"\n"))
            try:
                answer = self.cluster.bulk(body)
            except Unreachable as exc:  # connection refused, reset, timed out: the rest goes again
                if exc.certificate:
                    raise SinkFatal(self._redact(f"{self.name} sink: {tls.advice(self._where, exc)}")) from None
                # Requests in flight may have been indexed all the same: their resend is a no-op.
                remaining += chunk
                remaining += [item for rest in chunks for item in rest]
                return self._redact(exc)
            except HttpError as exc:  # the request as a whole: its status is every item's
                info = {"status": exc.status, "body": exc.body, "error": str(exc)}
                why = self._verdict(chunk, [info] * len(chunk), refused, remaining, reworked) or why
                continue
            if answer.get("errors"):
                infos = [next(iter(result.values())) for result in answer.get("items", ())]
                why = self._verdict(chunk, infos, refused, remaining, reworked) or why
        return why

    def _verdict(self, chunk: list[Item], infos: list[dict[str, Any]], refused: Refused, remaining: list[Item],
                 reworked: list[Item]) -> str:
        why = ""
        if len(infos) != len(chunk):  # never seen; sending again is what keeps the promise
            remaining += chunk
            return f"the bulk answer has {len(infos)} items for {len(chunk)} documents"
        for item, info in zip(chunk, infos):
            status = info.get("status", 500)
            if status < 300 or (status == 409 and item.header.startswith(b'{"create"')):
                continue  # accepted, or a resend of a document that is already there
            if status in (401, 403):
                raise SinkFatal(f"{self.name} sink: {self._where} refused the credentials: {self._why(info)}")
            if _transient(status):
                remaining.append(item)
                why = self._why(info)
                continue
            body = self.rework(item, info)
            if body is None:
                refused.append((item, info))
            else:
                reworked.append(Item(item.document, item.index, body, item.header, item.reworked + 1))
        return why

    def _dead_letter(self, refused: Refused) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        entries = []
        for item, info in refused:
            event_id = document_id(item.document) if item.document else None
            entry = {
                "@timestamp": now,
                "event": {"id": event_id, "original": item.body.decode()},
                "error": {"type": error_type(info), "message": self._why(info)},
                "labels": {"target_index": item.index},
            }
            assert self.cfg.dead_letter_index is not None
            entries.append(self._item(None, self.cfg.dead_letter_index, event_id, orjson.dumps(entry), "index"))
        failed: Refused = []
        try:
            self._deliver(entries, failed)
        except SinkError as exc:  # the caller still has them as Rejected, for its own dead letter
            log.error("%s sink: dead-letter index %s: %s", self.name, self.cfg.dead_letter_index, exc)
        for _, info in failed:
            log.error("%s sink: dead-letter index %s refused an entry: %s", self.name, self.cfg.dead_letter_index,
                      self._why(info))

    # -- retries ---------------------------------------------------------------------------

    def _backoff(self, retry: Callable[[BaseException], bool]) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.cfg.max_retries + 1),
            wait=wait_exponential_jitter(
                multiplier=self.cfg.retry_initial_seconds, jitter=self.cfg.retry_initial_seconds, max=self.cfg.retry_max_seconds
            ),
            retry=retry_if_exception(retry),
            reraise=True,
        )

    def _retrying(self, call: Callable[[], None]) -> None:
        """``call`` with the sink's backoff on no answer, 429 and 5xx."""

        def transient(exc: BaseException) -> bool:
            return (isinstance(exc, Unreachable) and not exc.certificate) or (
                isinstance(exc, HttpError) and _transient(exc.status))

        try:
            self._backoff(transient)(call)
        except Unreachable as exc:
            if exc.certificate:
                raise SinkFatal(self._redact(f"{self.name} sink: {tls.advice(self._where, exc)}")) from None
            raise SinkError(f"{self.name} sink: {self._where} did not answer: {self._redact(exc)}") from None
        except HttpError as exc:
            if not _transient(exc.status):
                raise SinkFatal(f"{self.name} sink: {self._where}: {self._redact(exc)}") from None
            raise SinkError(f"{self.name} sink: {self._where} did not answer: {self._redact(exc)}") from None

    def _why(self, info: dict[str, Any]) -> str:
        return self._redact(reason(info))

    def close(self) -> None:
        self.cluster.close()
