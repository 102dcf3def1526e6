"""The Elasticsearch sink: bulk indexing with the client's helpers, one document per eventID.

Each document is serialised once (see es_document), batched by count and bytes, and sent
with ``parallel_bulk`` (``bulk_concurrency`` requests in flight). Per-item answers are read
one by one: accepted (or 409 on a resend: already there), refused for good (returned as
``Rejected`` and copied to the dead-letter index), or refused for now (429, 5xx, connection
errors): those alone are sent again with backoff until the retries run out, then ``SinkError``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch, NotFoundError
from elasticsearch.helpers import parallel_bulk
from elasticsearch.serializer import OrjsonSerializer
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from forwarder import config
from forwarder.document import Document
from forwarder.es_templates import Templates, build_templates, index_patterns
from forwarder.sinks.base import Delivery, Rejected, SinkError, SinkFatal
from forwarder.sinks import tls
from forwarder.record import Undecodable
from forwarder.sinks.es_document import document_id, to_es
from forwarder.sinks.redact import Redactor

log = logging.getLogger(__name__)

SETUP_HINT = "run `forwarder setup elasticsearch --config FILE`"
# Only what the per-item verdict needs: parsing a 1000-item answer is not free.
BULK_FILTER = "errors,items.*.status,items.*.error"


class _Transient(Exception):
    """Some documents were refused for now; ``remaining`` are to be sent again."""

    def __init__(self, remaining: list[_Item], reason: str) -> None:
        super().__init__(reason)
        self.remaining = remaining


@dataclass(slots=True)
class _Item:
    document: Document | None  # None for dead-letter entries
    action: dict[str, Any] | None = None  # filled when first sent
    body: bytes = b""


def _secret(ref: config.SecretRef | None) -> str | None:
    try:
        return ref.get() if ref is not None else None
    except config.ConfigError as exc:
        raise config.ConfigError(f"elasticsearch sink: {exc}") from None


def redactor_for(cfg: config.ElasticsearchSink) -> Redactor:
    """Masks the cluster's secrets in whatever the client or the cluster says."""
    return Redactor(secret for secret in (_secret(cfg.api_key), _secret(cfg.password)) if secret)


def build_client(cfg: config.ElasticsearchSink) -> Elasticsearch:
    """A client for ``cfg``; secrets are read here and go nowhere else (but the sink's redactor)."""
    kwargs: dict[str, Any] = {
        "request_timeout": cfg.request_timeout_seconds,
        # The sink retries whole batches with backoff; retries inside the client would stack.
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": cfg.verify_tls,
        "serializer": OrjsonSerializer(),
    }
    if cfg.cloud_id:
        kwargs["cloud_id"] = cfg.cloud_id
    else:
        kwargs["hosts"] = cfg.hosts
    if cfg.ca_file is not None:
        kwargs["ca_certs"] = str(cfg.ca_file)
    if not cfg.verify_tls:
        kwargs["ssl_show_warn"] = False
    if cfg.api_key is not None:
        kwargs["api_key"] = _secret(cfg.api_key)
    elif cfg.username is not None:
        kwargs["basic_auth"] = (cfg.username, _secret(cfg.password) or "")
    return Elasticsearch(**kwargs)


def templates_for(cfg: config.ElasticsearchSink) -> Templates:
    return build_templates(
        name=cfg.template_name,
        patterns=[cfg.data_stream] if cfg.data_stream else index_patterns(cfg.index),
        data_stream=bool(cfg.data_stream),
        dead_letter_index=cfg.dead_letter_index,
    )


def index_namer(pattern: str) -> Callable[[datetime], str]:
    """``cloudtrail-assumerole-{%Y.%m.%d}`` -> a function from the event's time to the index name."""
    pieces: list[tuple[bool, str]] = []  # (is a strftime format, text)
    rest = pattern
    while "{" in rest:
        head, _, tail = rest.partition("{")
        fmt, closed, rest = tail.partition("}")
        if not closed:
            raise SinkFatal(f"elasticsearch sink: index {pattern!r} has an unclosed '{{'")
        pieces += [(False, head), (True, fmt)]
    pieces.append((False, rest))
    if not any(is_format for is_format, _ in pieces):
        return lambda when: pattern
    return lambda when: "".join(when.strftime(text) if is_format else text for is_format, text in pieces)


def where(cfg: config.ElasticsearchSink) -> str:
    """The cluster's name in messages."""
    return "Elastic Cloud" if cfg.cloud_id else ", ".join(cfg.hosts)


def transport_reason(exc: TransportError) -> str:
    """What went wrong on the wire, in the transport's own words (once the transport is done
    with an error, its str() says no more than "TLS error" or "Connection error")."""
    return f"{type(exc).__name__}: {exc.message}"


def certificate_fatal(where: str, exc: TransportError) -> SinkFatal:
    return SinkFatal(f"elasticsearch sink: {tls.advice(where, exc.message)}")


def _transient_error(exc: BaseException) -> bool:
    if isinstance(exc, TransportError):
        return not tls.certificate_refused(exc)
    return isinstance(exc, ApiError) and (exc.status_code == 429 or exc.status_code >= 500)


def _error(info: dict[str, Any]) -> Any:
    """The item's error; for a refused request, the error object of its body."""
    error = info.get("error")
    body = getattr(info.get("exception"), "body", None)
    if not isinstance(error, dict) and isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return error


def _reason(info: dict[str, Any]) -> str:
    error = _error(info)
    if isinstance(error, dict):
        reason = f"{error.get('type')}: {error.get('reason')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason") and cause.get("reason") not in reason:
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return reason
    return f"HTTP {info.get('status')}: {error}"


def _error_type(info: dict[str, Any]) -> str:
    error = _error(info)
    return str(error.get("type")) if isinstance(error, dict) else f"http_{info.get('status')}"


class ElasticsearchSink:
    """Indexes documents into Elasticsearch; constructed from ``config.ElasticsearchSink``."""

    name = "elasticsearch"

    def __init__(self, cfg: config.ElasticsearchSink, client: Elasticsearch | None = None) -> None:
        self.cfg = cfg
        self.client = client or build_client(cfg)
        # What the client, the transport and the cluster say passes this before it is logged,
        # raised or dead-lettered: their errors may quote a request's headers.
        self._redact = redactor_for(cfg)
        self._where = where(cfg)
        self._index = (lambda when: cfg.data_stream) if cfg.data_stream else index_namer(cfg.index)
        if cfg.check_templates:
            self._retrying(self.check_templates)

    # -- templates -------------------------------------------------------------------------

    def check_templates(self) -> None:
        """Raise SinkFatal when the index template is missing; warn when it is outdated."""
        expected = templates_for(self.cfg).index[self.cfg.template_name]
        try:
            answer = self.client.indices.get_index_template(name=self.cfg.template_name)
        except NotFoundError:
            raise SinkFatal(
                f"elasticsearch sink: index template {self.cfg.template_name!r} is not installed on "
                f"{self._where}: {SETUP_HINT}"
            ) from None
        except ApiError as exc:
            if exc.status_code == 401:
                reason = self._why({"exception": exc, "status": exc.status_code})
                raise SinkFatal(f"elasticsearch sink: {self._where} refused the credentials: {reason}") from None
            if exc.status_code == 403:
                raise SinkFatal(
                    f"elasticsearch sink: cannot read index templates on {self._where} (HTTP 403): "
                    "grant the manage_index_templates privilege or set check_templates: false"
                ) from None
            raise
        installed = answer["index_templates"][0]["index_template"]
        if installed.get("_meta", {}).get("digest") != expected["_meta"]["digest"]:
            log.warning(
                "elasticsearch sink: index template %r on %s differs from this version's: %s",
                self.cfg.template_name,
                self._where,
                SETUP_HINT,
            )

    # -- sending ---------------------------------------------------------------------------

    def _prepared(self, document: Document) -> _Item:
        # Before the bulk helper pulls it: a document that cannot be written is refused alone
        # (raised inside the helper's generator, it would stop the whole bulk).
        prepared = to_es(document)
        meta: dict[str, Any] = {"_index": self._index(prepared.time or datetime.now(UTC)), "_id": prepared.id}
        return _Item(document, {self.cfg.op_type: meta}, prepared.body)

    def send(self, documents: Sequence[Document]) -> Delivery:
        rejected: list[Rejected] = []
        refused: list[tuple[_Item, dict[str, Any]]] = []
        items: list[_Item] = []
        for document in documents:
            try:
                items.append(self._prepared(document))
            except Undecodable as exc:
                rejected.append(Rejected(document, exc.reason))
        self._deliver(items, refused)
        for item, info in refused:
            assert item.document is not None
            rejected.append(Rejected(item.document, self._why(info)))
        if refused and self.cfg.dead_letter_index:
            self._dead_letter(refused)
        return Delivery(rejected=rejected)

    def _deliver(self, items: list[_Item], refused: list[tuple[_Item, dict[str, Any]]]) -> None:
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
                f"elasticsearch sink: {len(pending)} of {len(items)} documents not accepted by {self._where} "
                f"after {self.cfg.max_retries + 1} attempts: {exc}"
            ) from None

    def _attempt(self, pending: list[_Item], refused: list[tuple[_Item, dict[str, Any]]]) -> None:
        """One pass over ``pending``; raises _Transient with what must be sent again."""
        remaining: list[_Item] = []
        reason = ""
        done = 0
        results = parallel_bulk(
            self.client,
            ((item.action, item.body) for item in pending),
            thread_count=self.cfg.bulk_concurrency,
            queue_size=self.cfg.bulk_concurrency,
            chunk_size=self.cfg.batch_max_docs,
            max_chunk_bytes=self.cfg.batch_max_bytes,
            expand_action_callback=lambda pair: pair,
            raise_on_error=False,
            raise_on_exception=False,
            filter_path=BULK_FILTER,
        )
        try:
            for item, (ok, result) in zip(pending, results):
                done += 1
                if ok:
                    continue
                op_type, info = next(iter(result.items()))
                status = info.get("status", 500)
                if status == 409 and op_type == "create":
                    continue  # a resend: the document is already there
                if status in (401, 403):
                    raise SinkFatal(f"elasticsearch sink: {self._where} refused the credentials: {self._why(info)}")
                if status == 429 or status >= 500:
                    remaining.append(item)
                    reason = self._why(info)
                else:
                    refused.append((item, info))
        except TransportError as exc:  # connection refused, reset, timed out: the rest goes again
            if tls.certificate_refused(exc):
                raise SinkFatal(self._redact(certificate_fatal(self._where, exc))) from None
            # Requests in flight may have been indexed all the same: their resend is a no-op.
            remaining += pending[done:]
            reason = self._redact(transport_reason(exc))
        if remaining:
            log.warning("elasticsearch sink: %d documents to send again: %s", len(remaining), reason)
            raise _Transient(remaining, reason)

    def _dead_letter(self, refused: list[tuple[_Item, dict[str, Any]]]) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        entries = []
        for item, info in refused:
            entry = {
                "@timestamp": now,
                "event": {"id": document_id(item.document) if item.document else None, "original": item.body.decode()},
                "error": {"type": _error_type(info), "message": self._why(info)},
                "labels": {"target_index": next(iter((item.action or {}).values()))["_index"]},
            }
            meta: dict[str, Any] = {"_index": self.cfg.dead_letter_index}
            if item.document:
                meta["_id"] = document_id(item.document)
            entries.append(_Item(None, {"index": meta}, orjson.dumps(entry)))
        failed: list[tuple[_Item, dict[str, Any]]] = []
        try:
            self._deliver(entries, failed)
        except SinkError as exc:  # the caller still has them as Rejected, for its own dead letter
            log.error("elasticsearch sink: dead-letter index %s: %s", self.cfg.dead_letter_index, exc)
        for _, info in failed:
            log.error("elasticsearch sink: dead-letter index %s refused an entry: %s", self.cfg.dead_letter_index, self._why(info))

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
        """``call`` with the sink's backoff on connection errors, 429 and 5xx."""
        try:
            self._backoff(_transient_error)(call)
        except TransportError as exc:
            if tls.certificate_refused(exc):
                raise SinkFatal(self._redact(certificate_fatal(self._where, exc))) from None
            raise SinkError(f"elasticsearch sink: {self._where} did not answer: {self._redact(transport_reason(exc))}") from None
        except ApiError as exc:
            if not _transient_error(exc):
                raise SinkFatal(f"elasticsearch sink: {self._where}: {self._redact(exc)}") from None
            raise SinkError(f"elasticsearch sink: {self._where} did not answer: {self._redact(exc)}") from None

    def _why(self, info: dict[str, Any]) -> str:
        return self._redact(_reason(info))

    def close(self) -> None:
        self.client.close()
