"""``forwarder enrich`` as SCHEMA.md describes it, bad input included."""

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from cloudtrail import assume, call, issued_key, session_identity, user, write_log
from forwarder.cli import main

T0 = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
ROLE = "arn:aws:iam::222222222222:role/Deploy"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict], str]:
    status = main(["enrich", *args])
    captured = capsys.readouterr()
    return status, [orjson.loads(line) for line in captured.out.splitlines()], captured.err


def story(tmp_path: Path) -> tuple[Path, dict]:
    parent = assume(user("111111111111", "alice"), ROLE, T0)
    child = call(session_identity(ROLE, issued_key(parent), parent["eventTime"]), T0 + timedelta(minutes=3))
    base = tmp_path / "AWSLogs"
    # The child's file sorts first: the reader meets it before its parent.
    write_log(base / "222222222222/CloudTrail/us-east-1/2026/03/31/a_CloudTrail.json.gz", [child])
    write_log(base / "111111111111/CloudTrail/us-east-1/2026/03/31/b_CloudTrail.json", [parent, parent])
    write_log(base / "111111111111/CloudTrail-Digest/us-east-1/2026/03/31/c_CloudTrail-Digest.json.gz", [])
    return base, {"parent": parent, "child": child}


def test_directory_recursively_each_event_once_order_free(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, records = story(tmp_path)
    status, docs, err = run(capsys, str(base))
    assert status == 0 and err == ""
    assert sorted(d["eventID"] for d in docs) == sorted(r["eventID"] for r in records.values())
    child = next(d for d in docs if d["eventID"] == records["child"]["eventID"])
    assert child["assumerole"]["chain"]["origin"]["arn"] == "arn:aws:iam::111111111111:user/alice"
    # The record is kept exactly as AWS wrote it, with one key added.
    assert {k: v for k, v in child.items() if k != "assumerole"} == records["child"]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("truncated.json.gz", gzip.compress(b'{"Records": []}' * 50)[:30], "truncated gzip"),
        ("garbage.json", b"this is not json", "not JSON"),
        ("norecords.json", b'{"events": []}', 'no "Records"'),
        ("notalist.json", b'{"Records": {"a": 1}}', '"Records" is not a list'),
    ],
)
def test_bad_object_is_named_and_the_rest_still_flows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, reason: str
) -> None:
    base, records = story(tmp_path)
    bad = base / name
    bad.write_bytes(content)
    status, docs, err = run(capsys, str(base))
    assert status == 1
    assert str(bad) in err and reason in err and "Traceback" not in err
    assert len(docs) == len(records)


def test_record_that_is_not_an_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = assume(user("111111111111", "alice"), ROLE, T0)
    path = tmp_path / "mixed.json"
    path.write_bytes(orjson.dumps({"Records": [good, "oops", 7]}))
    status, docs, err = run(capsys, str(path))
    assert status == 1 and [d["eventID"] for d in docs] == [good["eventID"]]
    assert "record 1: a record is a JSON object, not a string" in err and "record 2: a record is a JSON object, not a number" in err
    assert str(path) in err


def test_missing_path_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, docs, err = run(capsys, str(tmp_path / "nope.json"))
    assert status == 1 and docs == [] and "nope.json: cannot read" in err


def test_timestamp_export_shape_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = assume(user("111111111111", "alice"), "arn:aws:iam::111111111111:role/HumanAdmin", T0)
    record["@timestamp"] = record.pop("eventTime")
    config = tmp_path / "c.yaml"
    config.write_text("roles: {human: {patterns: ['arn:aws:iam::*:role/Human*']}}\n")
    status, docs, _ = run(capsys, "--config", str(config), str(write_log(tmp_path / "x.json", [record])))
    assert status == 0 and docs[0]["assumerole"]["after_hours"] is False


def test_bad_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("roles: {sensitive: [{approved_principals: []}]}\n")
    assert main(["enrich", "--config", str(config), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "roles.sensitive.0.pattern" in err and "Traceback" not in err
