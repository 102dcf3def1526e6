"""The forwarder as its own process: bad input, SIGKILL mid-batch, SIGTERM, a fatal sink."""

from __future__ import annotations

import gzip
import signal
import urllib.request
from collections import Counter
from datetime import timedelta

import orjson
import pytest
from aws_world import World, json_logs, log_key, wait_until, when
from cloudtrail import assume, user
from servers.hec_server import HecServer, Token
from servers.ports import free_port

from forwarder.state.base import Writes
from forwarder.state.sqlite import SqliteStore

ROLE = "arn:aws:iam::111111111111:role/Ops"


def _log(world: World, stamp: str, count: int) -> tuple[str, list[str]]:
    start = when(f"2026-03-31T{stamp[:2]}:{stamp[2:]}:00Z")
    records = [assume(user("111111111111", "alice"), ROLE, start + timedelta(milliseconds=i)) for i in range(count)]
    return world.put_log(log_key("111111111111", "2026/03/31", stamp), records), [r["eventID"] for r in records]


def test_bad_objects_and_bodies_are_named_and_everything_else_flows(world: World) -> None:
    good, ids = _log(world, "0700", 3)
    truncated = world.put_raw(log_key("111111111111", "2026/03/31", "0705"),
                              gzip.compress(orjson.dumps({"Records": [{"eventID": "x"}] * 50}))[:-30])
    not_json = world.put_raw(log_key("111111111111", "2026/03/31", "0710"), gzip.compress(b"<html>Access Denied</html>"))
    missing = log_key("111111111111", "2026/03/31", "0715")
    for key in (good, truncated, not_json, missing):
        world.send({"s3Bucket": world.bucket, "s3ObjectKey": [key]})
    unknown = world.send({"hello": "not a notification"})

    run = world.spawn("run", "--config", str(world.config()), "--exit-when-idle", "3")
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr.decode()

    assert sorted(world.event_ids()) == sorted(ids)
    dead = {entry["source"]: entry["reason"] for entry in world.dead_objects()}
    assert set(dead) == {f"s3://{world.bucket}/{key}" for key in (truncated, not_json, missing)}
    assert "truncated" in dead[f"s3://{world.bucket}/{truncated}"]
    assert "not JSON" in dead[f"s3://{world.bucket}/{not_json}"]
    assert "NoSuchKey" in dead[f"s3://{world.bucket}/{missing}"]
    logs = json_logs(stderr)
    named = {entry.get("object") for entry in logs if entry["message"] == "object dead-lettered"}
    assert named == set(dead)
    assert any(entry.get("message_id") == unknown and entry["level"] == "WARNING" for entry in logs)
    # The unknown body is left for the redrive policy; the four others are acknowledged.
    assert world.queue_depth() == 1


def test_sigkill_mid_batch_then_restart_loses_nothing(world: World) -> None:
    expected: list[str] = []
    for n in range(40):
        key, ids = _log(world, f"{n // 60 + 7:02d}{n % 60:02d}", 250)
        expected.extend(ids)
        world.send({"s3Bucket": world.bucket, "s3ObjectKey": [key]})
    config = world.config()

    first = world.spawn("run", "--config", str(config))
    wait_until(lambda: world.output.exists() and world.output.stat().st_size >= 200_000, 60, every=0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    partial = len(_whole_lines(world))
    assert 0 < partial < len(expected), "the kill must land mid-batch"

    # Messages in work at the kill come back after their 5 s visibility timeout.
    second = world.spawn("run", "--config", str(config), "--exit-when-idle", "8")
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr.decode()
    delivered = Counter(_whole_lines(world))
    assert set(delivered) == set(expected)  # none lost, nothing foreign
    assert world.queue_depth() == 0


def _whole_lines(world: World) -> list[str]:
    """The eventIDs of the output's whole lines. A kill in the middle of a write leaves at most
    one torn line; the restarted sink begins on a fresh line after it, and the torn document's
    object, never acknowledged, is delivered again whole."""
    ids, torn = [], 0
    for line in world.output.read_bytes().splitlines():
        try:
            ids.append(orjson.loads(line)["eventID"])
        except orjson.JSONDecodeError:
            torn += 1
    assert torn <= 1
    return ids


def test_sigterm_exits_0_promptly_and_serves_health_and_metrics(world: World) -> None:
    key, ids = _log(world, "0700", 5)
    world.send({"s3Bucket": world.bucket, "s3ObjectKey": [key]})
    port, configured = free_port(), free_port()
    config = world.config(
        source={"type": "sqs", "queue_url": world.queue_url, "wait_time_seconds": 20, "visibility_timeout_seconds": 30},
        metrics={"listen": f"127.0.0.1:{configured}"},
    )
    # The port of this process, as each of several processes on one host with one configuration gets its own.
    run = world.spawn("run", "--config", str(config), "--metrics-listen", f"127.0.0.1:{port}")
    wait_until(lambda: len(world.event_ids()) >= len(ids), 30)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{configured}/healthz", timeout=5)
    assert sorted(world.event_ids()) == sorted(ids)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        assert answer.status == 200
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'forwarder_records_in_total{source="sqs"} 5.0' in metrics
    assert 'forwarder_records_out_total{sink="ndjson"} 5.0' in metrics
    assert "forwarder_delivery_lag_seconds_count" in metrics
    # A 20-second long poll is open now: the signal must not wait for it.
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=10)
    assert run.returncode == 0, stderr.decode()
    assert any(entry["message"].startswith("signal received") for entry in json_logs(stderr))


def test_a_fatal_sink_stops_the_forwarder_and_deletes_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from servers.hec_server import HecServer, Token

    key, _ = _log(world, "0700", 5)
    world.send({"s3Bucket": world.bucket, "s3ObjectKey": [key]})
    with HecServer([Token("the-right-token")]) as hec:
        config = world.config(sinks=[{"type": "splunk_hec", "url": hec.url, "token": {"env": "TEST_HEC_TOKEN"},
                                      "max_retries": 0}])
        monkeypatch.setenv("TEST_HEC_TOKEN", "a-wrong-token")
        run = world.spawn("run", "--config", str(config), "--exit-when-idle", "10")
        _, stderr = run.communicate(timeout=60)
    assert run.returncode == 3
    fatal = [entry for entry in json_logs(stderr) if entry["level"] == "ERROR" and entry["message"].startswith("stopping")]
    assert fatal and "refused the token" in fatal[0]["message"]
    assert "a-wrong-token" not in stderr.decode()
    assert world.queue_depth() == 1


def test_a_message_in_work_longer_than_its_visibility_is_extended_not_handed_out_again(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The indexer acknowledges only after 12 s, more than twice the 5 s visibility timeout: the
    message must stay invisible until its records are acknowledged, then go."""
    key, ids = _log(world, "0800", 4)
    world.send({"s3Bucket": world.bucket, "s3ObjectKey": [key]})
    token = "9f1e2d3c-4b5a-4697-8877-665544332211"
    monkeypatch.setenv("TEST_HEC_TOKEN", token)
    port = free_port()
    with HecServer([Token(token, ack=True, indexes=["aws"], default_index="aws")]) as hec:
        hec.ack_delay = 12.0
        config = world.config(
            source={"type": "sqs", "queue_url": world.queue_url, "wait_time_seconds": 1, "visibility_timeout_seconds": 5,
                    "concurrency": 2},
            sinks=[{"type": "splunk_hec", "url": hec.url, "token": {"env": "TEST_HEC_TOKEN"}, "index": "aws", "ack": True,
                    "ack_poll_seconds": 0.5, "ack_timeout_seconds": 60}],
            metrics={"listen": f"127.0.0.1:{port}"},
        )
        run = world.spawn("run", "--config", str(config))
        wait_until(lambda: world.queue_depth() == 0, 60, every=0.5)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=20)
        assert run.returncode == 0, stderr.decode()
        sent = Counter(event.event["eventID"] for event in hec.events())
    assert world.queue_depth() == 0
    assert sorted(sent) == sorted(ids) and set(sent.values()) == {1}
    # Handed out again, the message would have been received twice and its object read twice.
    assert 'forwarder_sqs_messages_total{outcome="received"} 1.0' in metrics
    assert 'forwarder_records_in_total{source="sqs"} 4.0' in metrics


def test_a_queue_that_does_not_exist_stops_the_forwarder_as_a_configuration_error(world: World) -> None:
    missing = world.queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    config = world.config(source={"type": "sqs", "queue_url": missing, "wait_time_seconds": 1})
    run = world.spawn("run", "--config", str(config))
    _, stderr = run.communicate(timeout=30)
    assert run.returncode == 2  # systemd's unit does not restart on 2: the file needs fixing
    [stopping] = [entry for entry in json_logs(stderr) if entry["message"].startswith("stopping:")]
    assert f"source.queue_url {missing}: no such queue" in stopping["message"]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "directory"])
def test_a_damaged_state_file_stops_the_start_with_exit_2_and_its_path(world: World, damage: str) -> None:
    state = world.tmp / "state.db"
    if damage == "directory":
        state.mkdir()
    elif damage == "garbage":
        state.write_bytes(b"\x00garbage\xff" * 4096)
    else:
        good = world.tmp / "good.db"
        store = SqliteStore(good)
        store.commit(Writes(values={("session", f"k{n}"): (b"x" * 200, None) for n in range(500)}))
        store.close()
        state.write_bytes(good.read_bytes()[:6000])  # cut inside its pages
    key, ids = _log(world, "0700", 2)
    world.send({"s3Bucket": world.bucket, "s3ObjectKey": [key]})
    run = world.spawn("run", "--config", str(world.config()), "--exit-when-idle", "2")
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 2, stderr.decode()
    assert b"Traceback" not in stderr
    assert any(str(state) in entry["message"] and entry["level"] == "ERROR" for entry in json_logs(stderr))
    assert world.queue_depth() == 1 and world.event_ids() == []  # nothing read, nothing acknowledged


def test_a_bucket_that_does_not_exist_is_dead_lettered_by_name_and_the_rest_flows(world: World) -> None:
    good, ids = _log(world, "0700", 2)
    world.send({"s3Bucket": "no-such-bucket-for-this-test", "s3ObjectKey": [good]})
    world.send({"s3Bucket": world.bucket, "s3ObjectKey": [good]})
    run = world.spawn("run", "--config", str(world.config()), "--exit-when-idle", "3")
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0 and b"Traceback" not in stderr, stderr.decode()
    assert sorted(world.event_ids()) == sorted(ids)
    dead = {entry["source"]: entry["reason"] for entry in world.dead_objects()}
    assert "NoSuchBucket" in dead[f"s3://no-such-bucket-for-this-test/{good}"]
    assert not any(entry["level"] == "ERROR" for entry in json_logs(stderr))
    assert world.queue_depth() == 0
