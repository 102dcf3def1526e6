"""One S3 object (or a record carried inline by a notification) through the pipeline.

What cannot be read is dead-lettered by name (``s3://bucket/key`` and the reason), so an
operator can replay it from S3; it then counts as handled. Anything else that goes wrong
raises ``NotDelivered`` (S3 unreachable or refusing: kind ``source``; the rest from the
pipeline): the caller must not acknowledge.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError

from forwarder.aws import error_code
from forwarder.metrics import Metrics
from forwarder.pipeline import NotDelivered, Outcome, Pipeline
from forwarder.reader import ObjectError, is_skipped_name
from forwarder.sources.s3get import ObjectReader
from forwarder.state.base import Writes

log = logging.getLogger("forwarder.objects")

# The object is not there (deleted, or a notification naming a wrong key or bucket): no retry finds it.
MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket"})
# S3's answers that a retry later may get past; anything else (AccessDenied, ...) needs the operator.
TRANSIENT = frozenset({"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout", "Throttling",
                       "ThrottlingException", "RequestTimeTooSkewed", "500", "502", "503", "504"})


def transient(exc: BaseException) -> bool:
    """Whether an AWS call's failure may pass by itself (a retry later), or needs the operator."""
    if isinstance(exc, ClientError):
        return error_code(exc) in TRANSIENT
    return isinstance(exc, BotoCoreError | HTTPError | OSError)


class ObjectHandler:
    def __init__(self, reader: ObjectReader, pipeline: Pipeline, metrics: Metrics, label: str) -> None:
        self.reader = reader
        self.s3 = reader.client  # for the calls other than GetObject (listing)
        self.pipeline = pipeline
        self.metrics = metrics
        self.label = label

    def handle(self, bucket: str, key: str, acknowledge: Writes | None = None,
               turn: AbstractContextManager[object] | None = None) -> Outcome | None:
        """Read, enrich and deliver one object; None when it was dead-lettered or skipped.
        ``acknowledge`` is committed with it (or with its dead letter); ``turn`` is entered
        around its enrichment (forwarder.sources.turns: objects enriched in key order)."""
        name = f"s3://{bucket}/{key}"
        if is_skipped_name(key):
            self.pipeline.acknowledge(acknowledge)
            self.metrics.objects.labels(self.label, "skipped").inc()
            return None
        data = self._fetch(bucket, key, name)
        if data is None:
            self.pipeline.acknowledge(acknowledge)
            return None
        return self._process(name, data, acknowledge, turn)

    def handle_records(self, name: str, records: list[dict[str, Any]]) -> Outcome | None:
        """Records carried in the notification itself (EventBridge API-call events)."""
        return self._process(name, orjson.dumps({"Records": records}), None)

    def _fetch(self, bucket: str, key: str, name: str) -> bytes | None:
        try:
            return self.reader.get(bucket, key)
        except ClientError as exc:
            code = error_code(exc)
            if code in MISSING:
                self._dead_letter(name, f"object not found ({code}): deleted, or the notification names a wrong key")
                return None
            message = exc.response.get("Error", {}).get("Message") or str(exc)
            retry = transient(exc)
            hint = "" if retry else "; check the forwarder's s3:GetObject permission (and kms:Decrypt) on it"
            raise NotDelivered(f"{name}: S3 answered {code or 'an error'}: {message}{hint}", "source",
                               transient=retry) from None
        except (BotoCoreError, HTTPError, OSError) as exc:  # unreachable, reset, timed out, body cut short
            raise NotDelivered(f"{name}: cannot read it from S3: {exc}", "source", transient=True) from None

    def _process(self, name: str, data: bytes, acknowledge: Writes | None,
                 turn: AbstractContextManager[object] | None = None) -> Outcome | None:
        try:
            outcome = self.pipeline.process(name, data, acknowledge, turn)
        except ObjectError as exc:
            self._dead_letter(name, exc.reason)
            self.pipeline.acknowledge(acknowledge)
            return None
        self.metrics.outcome(self.label, outcome)
        return outcome

    def _dead_letter(self, name: str, reason: str) -> None:
        log.warning("object dead-lettered", extra={"object": name, "reason": reason})
        try:
            self.pipeline.dead_letter.object(name, reason)
        except OSError as exc:
            raise NotDelivered(f"{name}: cannot write the dead letter: {exc.strerror or exc}", "dead_letter") from None
        self.metrics.objects.labels(self.label, "dead_lettered").inc()
        self.metrics.errors.labels("unreadable_object").inc()
