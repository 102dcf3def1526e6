"""The notification parser on any SQS body: a Notification or UnknownShape, nothing else.

UnknownShape leaves the message to the queue's redrive policy, with a log line; any other
exception is a worker's crash on every receive of that message. A Notification must also be
what it says (bucket and key strings, records objects): the source hands its parts to boto3,
which is told not to validate them (forwarder/aws.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from cloudtrail import assume, user
from hypothesis import example, given
from hypothesis import strategies as st
from json_strategies import FUZZ, encode, json_values, mutated

from forwarder.sources.notifications import Notification, UnknownShape, parse

KEY = "AWSLogs/111111111111/CloudTrail/us-east-1/2026/03/31/111111111111_CloudTrail_us-east-1_20260331T0700Z_a.json.gz"

S3_EVENT = {"Records": [{
    "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2026-03-31T07:05:00.000Z",
    "eventName": "ObjectCreated:Put",
    "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": "trail", "arn": "arn:aws:s3:::trail"},
           "object": {"key": KEY.replace("_", "%5F"), "size": 1234}},
}]}
S3_TEST_EVENT = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-03-31T07:00:00.000Z", "Bucket": "trail"}
CLOUDTRAIL = {"s3Bucket": "trail", "s3ObjectKey": [KEY]}
EVENTBRIDGE_OBJECT = {
    "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": "Object Created", "source": "aws.s3",
    "account": "111111111111", "time": "2026-03-31T07:05:00Z", "region": "us-east-1",
    "resources": ["arn:aws:s3:::trail"],
    "detail": {"version": "0", "bucket": {"name": "trail"}, "object": {"key": KEY, "size": 1234}, "reason": "PutObject"},
}
EVENTBRIDGE_CALL = {
    "version": "0", "detail-type": "AWS API Call via CloudTrail", "source": "aws.sts", "account": "111111111111",
    "detail": assume(user("111111111111", "alice"), "arn:aws:iam::111111111111:role/Ops",
                     datetime(2026, 3, 31, 7, tzinfo=timezone.utc)),
}
SHAPES = [S3_EVENT, S3_TEST_EVENT, CLOUDTRAIL, EVENTBRIDGE_OBJECT, EVENTBRIDGE_CALL]


def sns(message: str) -> dict[str, Any]:
    return {"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:111111111111:trail", "Message": message,
            "Timestamp": "2026-03-31T07:05:00.000Z", "SignatureVersion": "1"}


def _parse(body: str | bytes) -> Notification | None:
    try:
        notification = parse(body)
    except UnknownShape as exc:
        assert str(exc), "UnknownShape says what the body looked like"
        return None
    assert isinstance(notification, Notification)
    # S3 has no bucket or key that is empty or not a string.
    assert all(isinstance(bucket, str) and isinstance(key, str) and bucket and key
               for bucket, key in notification.objects), notification.objects
    assert all(isinstance(record, dict) for record in notification.records)
    assert notification.ignored is None or isinstance(notification.ignored, str)
    return notification


shapes = st.sampled_from(SHAPES).flatmap(mutated)


@FUZZ
@given(st.one_of(st.text(), st.binary()))
def test_arbitrary_bodies(body: str | bytes) -> None:
    _parse(body)


@FUZZ
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    _parse(encode(value))


def _s3_event(bucket: Any, key: Any) -> dict[str, Any]:
    record = S3_EVENT["Records"][0]
    return {"Records": [{**record, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]}


@FUZZ
@given(shapes)
# Found before: a key that is a number (AttributeError in unquote_plus), a bucket that is null.
@example(_s3_event("trail", 5))
@example(_s3_event(None, KEY))
@example({**EVENTBRIDGE_OBJECT, "detail": {"bucket": {"name": "trail"}, "object": {"key": [KEY]}}})
def test_known_shapes_with_any_field_replaced(message: dict[str, Any]) -> None:
    _parse(encode(message))


@FUZZ
@given(st.one_of(shapes, st.sampled_from(SHAPES)), st.booleans(), st.data())
def test_sns_wrapped_shapes_with_any_field_replaced(message: dict[str, Any], touch_envelope: bool,
                                                    data: st.DataObject) -> None:
    envelope = sns(encode(message).decode("utf-8", "surrogateescape"))
    if touch_envelope:
        envelope = data.draw(mutated(envelope))
    _parse(encode(envelope))


def test_the_templates_are_read_as_what_they_are() -> None:
    """Unchanged, each shape is understood: the fuzzing starts from real notifications."""
    for shape in SHAPES:
        for body in (encode(shape), encode(sns(encode(shape).decode()))):
            notification = _parse(body)
            assert notification is not None and (notification.objects or notification.records or notification.ignored)
