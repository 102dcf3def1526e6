"""Every message shape AWS produces for new CloudTrail objects, through moto's own S3, SNS and SQS."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus

import boto3
import orjson
from aws_world import World, log_key, when
from cloudtrail import assume, call, session_identity, user


def _records(n: int, at: str) -> list[dict[str, Any]]:
    moment = when(at)
    return [assume(user("111111111111", f"u{n}"), "arn:aws:iam::111111111111:role/Ops", moment + timedelta(seconds=i))
            for i in range(2)]


def _s3_event(bucket: str, key: str) -> dict[str, Any]:
    # The shape S3 writes (and moto copies): keys URL-encoded, '+' for a space.
    return {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                         "eventTime": "2026-03-31T07:30:00.000Z", "eventName": "ObjectCreated:Put",
                         "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                                "object": {"key": quote_plus(key), "size": 100}}}]}


def _topic(world: World, name: str, raw: bool) -> str:
    sns = boto3.client("sns")
    topic = sns.create_topic(Name=f"{name}-{world.bucket}")["TopicArn"]
    queue_arn = world.sqs.get_queue_attributes(QueueUrl=world.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn,
                  Attributes={"RawMessageDelivery": "true" if raw else "false"})
    return topic


def test_every_notification_shape_delivers_its_records_and_empties_the_queue(world: World) -> None:
    expected: list[str] = []

    def put(n: int, prefix: str = "") -> str:
        records = _records(n, f"2026-03-31T07:{n:02d}:00Z")
        expected.extend(r["eventID"] for r in records)
        return world.put_log(prefix + log_key("111111111111", "2026/03/31", f"07{n:02d}"), records)

    # 1. S3's own notification to SQS (moto sends the s3:TestEvent first); a key that needs decoding.
    queue_arn = world.sqs.get_queue_attributes(QueueUrl=world.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    world.s3.put_bucket_notification_configuration(Bucket=world.bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]})
    put(1, "exported logs/a+b:c/")
    world.s3.put_bucket_notification_configuration(Bucket=world.bucket, NotificationConfiguration={})
    # 2. and 3. The S3 event inside SNS, raw delivery off (envelope) and on (bare).
    sns = boto3.client("sns")
    sns.publish(TopicArn=_topic(world, "wrapped", raw=False), Message=orjson.dumps(_s3_event(world.bucket, put(2))).decode())
    sns.publish(TopicArn=_topic(world, "raw", raw=True), Message=orjson.dumps(_s3_event(world.bucket, put(3))).decode())
    # 4. CloudTrail's own SNS notification: several keys, as written.
    sns.publish(TopicArn=_topic(world, "cloudtrail", raw=False),
                Message=orjson.dumps({"s3Bucket": world.bucket, "s3ObjectKey": [put(4), put(5)]}).decode())
    # 5. EventBridge "Object Created".
    world.send({"version": "0", "id": "e1", "detail-type": "Object Created", "source": "aws.s3",
                "account": "111111111111", "time": "2026-03-31T07:30:00Z", "region": "us-east-1",
                "resources": [f"arn:aws:s3:::{world.bucket}"],
                "detail": {"version": "0", "bucket": {"name": world.bucket},
                           "object": {"key": quote_plus(put(6)), "size": 10}, "reason": "PutObject"}})
    # 6. EventBridge "AWS API Call via CloudTrail": the record itself.
    role = "arn:aws:iam::111111111111:role/Ops"
    inline = call(session_identity(role, "ASIAINLINE0000000001", "2026-03-31T07:00:00Z"), when("2026-03-31T07:40:00Z"))
    expected.append(inline["eventID"])
    world.send({"version": "0", "id": "e2", "detail-type": "AWS API Call via CloudTrail", "source": "aws.s3",
                "account": "111111111111", "time": "2026-03-31T07:40:00Z", "region": "us-east-1", "detail": inline})

    assert world.run(world.config()) == 0

    delivered = Counter(world.event_ids())
    assert sorted(delivered) == sorted(expected)
    assert max(delivered.values()) == 1
    assert world.queue_depth() == 0
    assert world.dead_objects() == []
    inline_doc = next(d for d in world.documents() if d["eventID"] == inline["eventID"])
    assert inline_doc["assumerole"]["session"]["access_key_id"] == "ASIAINLINE0000000001"
