"""What an SQS message body says arrived: S3 objects to read, or CloudTrail records themselves.

The shapes AWS produces for new CloudTrail objects:

* S3 event notifications (``Records[].s3``; keys URL-encoded, ``+`` for space), and the
  ``s3:TestEvent`` S3 sends when a notification is configured;
* the same inside an SNS envelope (raw message delivery off), or bare (raw delivery on);
* EventBridge ``Object Created`` events from S3 (keys URL-encoded as in S3 notifications);
* CloudTrail's own SNS notifications (``s3Bucket`` and an ``s3ObjectKey`` list, keys as written);
* EventBridge ``AWS API Call via CloudTrail`` events: the record itself in ``detail``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import orjson

API_CALL = "AWS API Call via CloudTrail"


class UnknownShape(Exception):
    """The body is none of the shapes above; the message says what it looked like."""


@dataclass(slots=True)
class Notification:
    objects: list[tuple[str, str]] = field(default_factory=list)  # (bucket, key), keys decoded
    records: list[dict[str, Any]] = field(default_factory=list)  # CloudTrail records carried inline
    ignored: str | None = None  # why a well-formed message names nothing to read


def parse(body: str | bytes) -> Notification:
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UnknownShape(f"body is not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise UnknownShape(f"body is a JSON {type(message).__name__}, not an object")
    if message.get("Type") == "Notification" and "TopicArn" in message:
        return _unwrapped_sns(message)
    return _classify(message)


def _unwrapped_sns(envelope: dict[str, Any]) -> Notification:
    inner = envelope.get("Message")
    if not isinstance(inner, str):
        raise UnknownShape("SNS envelope without a Message string")
    try:
        message = orjson.loads(inner)
    except orjson.JSONDecodeError:
        raise UnknownShape(f"SNS message from {envelope.get('TopicArn')} is not JSON") from None
    if not isinstance(message, dict):
        raise UnknownShape(f"SNS message from {envelope.get('TopicArn')} is not a JSON object")
    return _classify(message)


def _classify(message: dict[str, Any]) -> Notification:
    if message.get("Event") == "s3:TestEvent":
        return Notification(ignored="s3:TestEvent")
    if "s3Bucket" in message and "s3ObjectKey" in message:
        return _cloudtrail_sns(message)
    records = message.get("Records")
    if isinstance(records, list) and records and all(isinstance(r, dict) and "s3" in r for r in records):
        return _s3_event(records)
    if "detail-type" in message and isinstance(message.get("detail"), dict):
        return _eventbridge(message)
    raise UnknownShape(f"not an S3, SNS, EventBridge or CloudTrail notification (keys: {', '.join(sorted(message)[:8])})")


def _cloudtrail_sns(message: dict[str, Any]) -> Notification:
    bucket, keys = message["s3Bucket"], message["s3ObjectKey"]
    if isinstance(keys, str):
        keys = [keys]
    if not (isinstance(bucket, str) and bucket) or not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise UnknownShape("CloudTrail notification with a malformed s3Bucket or s3ObjectKey")
    return Notification(objects=[(bucket, key) for key in keys])


def _s3_event(records: list[dict[str, Any]]) -> Notification:
    found = Notification()
    for record in records:
        if not str(record.get("eventName", "")).startswith(("ObjectCreated:", "s3:ObjectCreated:")):
            continue  # a removal or restore names nothing new to read
        try:
            found.objects.append(_named(record["s3"]["bucket"]["name"], record["s3"]["object"]["key"]))
        except (KeyError, TypeError):
            raise UnknownShape("S3 event record without s3.bucket.name or s3.object.key") from None
    if not found.objects:
        found.ignored = "S3 event names no created object"
    return found


def _eventbridge(message: dict[str, Any]) -> Notification:
    detail_type, detail = message["detail-type"], message["detail"]
    if detail_type == "Object Created":
        try:
            return Notification(objects=[_named(detail["bucket"]["name"], detail["object"]["key"])])
        except (KeyError, TypeError):
            raise UnknownShape("EventBridge Object Created without detail.bucket.name or detail.object.key") from None
    if detail_type == API_CALL:
        return Notification(records=[detail])
    raise UnknownShape(f"EventBridge event of detail-type {detail_type!r}")


def _named(bucket: Any, key: Any) -> tuple[str, str]:
    """A bucket and a URL-encoded key as S3 writes them; TypeError for anything else."""
    if not (isinstance(bucket, str) and bucket and isinstance(key, str) and key):
        raise TypeError("not a bucket name and a key")
    return bucket, unquote_plus(key)
