"""`forwarder dlq replay`: dead-lettered documents, objects and queue messages go back through
the forwarder; a dry run changes nothing; nothing leaves the dead letter unless accepted."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
import yaml
from cloudtrail import assume, call, user, write_log
from servers.ports import free_port

from forwarder.cli import main

ALICE = user("111111111111", "alice")


def configure(tmp_path: Path, **sections: Any) -> Path:
    config = {
        "state": {"type": "sqlite", "path": str(tmp_path / "state.db")},
        "dead_letter": {"path": str(tmp_path / "dead-letter")},
        "sinks": [{"type": "ndjson", "path": str(tmp_path / "out.ndjson")}],
        "metrics": {"listen": None},
        **sections,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_entries(path: Path, entries: list[dict[str, Any]]) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(entry) + b"\n" for entry in entries))
    return path.read_bytes()


def entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def delivered(tmp_path: Path) -> set[str]:
    out = tmp_path / "out.ndjson"
    return {json.loads(line)["eventID"] for line in out.read_text().splitlines()} if out.exists() else set()


@pytest.fixture
def dead_documents(tmp_path: Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    now = datetime.now(UTC)
    refused = assume(ALICE, "arn:aws:iam::222222222222:role/Deploy", now)
    other_sink = assume(ALICE, "arn:aws:iam::222222222222:role/Audit", now)
    path = tmp_path / "dead-letter" / "documents.ndjson"
    write_entries(path, [
        {"source": "s3://trail/a.json.gz", "reason": "mapper_parsing_exception", "sink": "ndjson", "record": refused},
        {"source": "s3://trail/b.json.gz", "reason": "record 3: a record is a JSON object, not an array", "sink": None, "raw": "[1, 2]"},
        {"source": "s3://trail/c.json.gz", "reason": "rejected", "sink": "elasticsearch", "record": other_sink},
    ])
    return path, refused, other_sink


def test_documents_dry_run_changes_nothing(tmp_path: Path, dead_documents: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path, _, _ = dead_documents
    before = path.read_bytes()
    assert main(["dlq", "replay", "--config", str(configure(tmp_path)), "--what", "documents", "--dry-run"]) == 0
    said = capsys.readouterr().out
    assert "3 would be replayed" in said and "s3://trail/b.json.gz" in said
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["documents.ndjson"]
    assert not (tmp_path / "out.ndjson").exists() and not (tmp_path / "state.db").exists()


def test_documents_replay_sends_again_and_keeps_what_fails(tmp_path: Path, dead_documents: Any,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path, refused, other_sink = dead_documents
    code = main(["dlq", "replay", "--config", str(configure(tmp_path)), "--what", "documents"])
    assert "2 replayed, 1 dead-lettered again" in capsys.readouterr().out
    assert code == 1  # something is still in the dead letter
    # The refused record went to its sink; the one whose sink is gone went to every sink.
    assert delivered(tmp_path) == {refused["eventID"], other_sink["eventID"]}
    out = [json.loads(line) for line in (tmp_path / "out.ndjson").read_text().splitlines()]
    assert all(document["assumerole"]["role"]["arn"].startswith("arn:aws:iam::222222222222:role/") for document in out)
    (left,) = entries(path)
    assert left["raw"] == "[1, 2]" and left["sink"] is None and "not an array" in left["reason"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["documents.ndjson"]  # no replay file left over


def test_documents_stay_when_the_sink_is_down(tmp_path: Path, dead_documents: Any, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path, _, _ = dead_documents
    before = sorted(path.read_bytes().splitlines())
    monkeypatch.setenv("HEC_TOKEN", "not-a-real-token")
    down = {"type": "splunk_hec", "url": f"http://127.0.0.1:{free_port()}", "token": {"env": "HEC_TOKEN"},
            "max_retries": 0, "request_timeout_seconds": 2}
    config = configure(tmp_path, sinks=[down])
    assert main(["dlq", "replay", "--config", str(config), "--what", "documents"]) == 3
    assert "forwarder:" in capsys.readouterr().err
    # Every entry is still there (the raw one re-dead-lettered with a fresh timestamp, the
    # others put back untouched); nothing was lost, no replay file is left.
    after = path.read_bytes().splitlines()
    assert len(after) == 3
    assert {orjson.loads(line)["source"] for line in after} == {orjson.loads(line)["source"] for line in before}
    assert sorted(p.name for p in path.parent.iterdir()) == ["documents.ndjson"]


def test_objects_replay_reads_again_from_disk_and_s3(aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    on_disk = assume(ALICE, "arn:aws:iam::222222222222:role/Deploy", now)
    in_s3 = call(ALICE, now, "ListBuckets")  # not selected by default: proves the object was read
    local = write_log(tmp_path / "logs" / "fixed.json.gz", [on_disk])
    s3 = boto3.client("s3")
    bucket = f"trail-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    key = "AWSLogs/111111111111/CloudTrail/us-east-1/2026/03/31/obj.json.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=orjson.dumps({"Records": [on_disk, in_s3]}))
    path = tmp_path / "dead-letter" / "objects.ndjson"
    before = write_entries(path, [
        {"source": str(local), "reason": "truncated gzip"},
        {"source": f"s3://{bucket}/{key}", "reason": "not JSON"},
        {"source": "sqs:0c9e6c1e", "reason": "Records is not a list"},
        {"source": str(tmp_path / "logs" / "gone.json.gz"), "reason": "truncated gzip"},
    ])
    config = configure(tmp_path, select="all")

    assert main(["dlq", "replay", "--config", str(config), "--what", "objects", "--dry-run"]) == 0
    assert "4 would be replayed" in capsys.readouterr().out
    assert path.read_bytes() == before and delivered(tmp_path) == set()

    assert main(["dlq", "replay", "--config", str(config), "--what", "objects"]) == 1
    assert "3 read again, 1 dead-lettered again, 1 kept" in capsys.readouterr().out
    assert delivered(tmp_path) == {on_disk["eventID"], in_s3["eventID"]}
    left = {entry["source"]: entry["reason"] for entry in entries(path)}
    assert left.keys() == {"sqs:0c9e6c1e", str(tmp_path / "logs" / "gone.json.gz")}
    assert left["sqs:0c9e6c1e"] == "Records is not a list"
    assert left[str(tmp_path / "logs" / "gone.json.gz")].startswith("cannot read")


def test_queue_replay_moves_the_dead_letter_queue_back(aws: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sqs = boto3.client("sqs")
    name = f"q-{uuid.uuid4().hex[:10]}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName=name, Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})["QueueUrl"]
    bodies = {json.dumps({"n": n}) for n in range(13)}
    for body in bodies:
        sqs.send_message(QueueUrl=dlq, MessageBody=body)
    config = configure(tmp_path, source={"type": "sqs", "queue_url": queue, "region": "us-east-1"})

    assert main(["dlq", "replay", "--config", str(config), "--what", "queue", "--dry-run"]) == 0
    assert "about 13 messages would move" in capsys.readouterr().out
    assert sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "0"

    assert main(["dlq", "replay", "--config", str(config), "--what", "queue"]) == 0
    assert "13 messages moved" in capsys.readouterr().out
    moved: set[str] = set()
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        moved |= {m["Body"] for m in messages}
    assert moved == bodies
    assert sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", []) == []


def test_queue_replay_needs_an_sqs_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "replay", "--config", str(configure(tmp_path)), "--what", "queue"]) == 2
    assert "needs source type sqs" in capsys.readouterr().err
