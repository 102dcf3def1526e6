"""One S3 object (or a record carried inline by a notification) through the pipeline.

What cannot be read is dead-lettered by name (``s3://bucket/key`` and the reason), so an
operator can replay it from S3; it then counts as handled. Anything else that goes wrong
(S3 unreachable or refusing, a sink failing) is raised: the caller must not acknowledge.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from botocore.exceptions import ClientError

from forwarder.aws import error_code
from forwarder.metrics import Metrics
from forwarder.pipeline import Outcome, Pipeline
from forwarder.reader import ObjectError, is_skipped_name

log = logging.getLogger("forwarder.objects")

MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class ObjectHandler:
    def __init__(self, s3: Any, pipeline: Pipeline, metrics: Metrics, label: str) -> None:
        self.s3 = s3
        self.pipeline = pipeline
        self.metrics = metrics
        self.label = label

    def handle(self, bucket: str, key: str) -> Outcome | None:
        """Read, enrich and deliver one object; None when it was dead-lettered or skipped."""
        name = f"s3://{bucket}/{key}"
        if is_skipped_name(key):
            self.metrics.objects.labels(self.label, "skipped").inc()
            return None
        try:
            data = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            code = error_code(exc)
            if code not in MISSING:
                raise
            self._dead_letter(name, f"object not found ({code}): deleted, or the notification names a wrong key")
            return None
        return self._process(name, data)

    def handle_records(self, name: str, records: list[dict[str, Any]]) -> Outcome | None:
        """Records carried in the notification itself (EventBridge API-call events)."""
        return self._process(name, orjson.dumps({"Records": records}))

    def _process(self, name: str, data: bytes) -> Outcome | None:
        try:
            outcome = self.pipeline.process(name, data)
        except ObjectError as exc:
            self._dead_letter(name, exc.reason)
            return None
        self.metrics.outcome(self.label, outcome)
        return outcome

    def _dead_letter(self, name: str, reason: str) -> None:
        log.warning("object dead-lettered", extra={"object": name, "reason": reason})
        self.pipeline.dead_letter.object(name, reason)
        self.metrics.objects.labels(self.label, "dead_lettered").inc()
        self.metrics.errors.labels("unreadable_object").inc()
