"""The container image: hadolint on the Dockerfile, and its entry point run exactly as the image
runs it (same program, arguments, environment and working directory) against moto."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import orjson
import yaml
from cloudtrail import assume, user
from artifacts import DEPLOY, tool, worst_case_memory_mib
from servers.ports import free_port
from dockerfile import image_env, instructions, last

from forwarder.config import SqsSource, parse_config

DOCKERFILE = DEPLOY / "container" / "Dockerfile"
CONTAINER_CONFIG = DEPLOY / "container" / "config.yaml"
CONFIG_IN_IMAGE = "/etc/forwarder/config.yaml"
STATE_IN_IMAGE = "/var/lib/forwarder"


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD forwarder\n")
    result = subprocess.run([tool("hadolint"), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_runtime_stage_is_slim_non_root_with_a_volume() -> None:
    stages = [rest for key, rest in instructions(DOCKERFILE) if key == "FROM"]
    assert stages == ["python:3.11-slim-bookworm"]
    assert last(DOCKERFILE, "USER") != "root" and not last(DOCKERFILE, "USER").startswith("0")
    assert json.loads(last(DOCKERFILE, "VOLUME")) == [STATE_IN_IMAGE]
    assert last(DOCKERFILE, "WORKDIR") == STATE_IN_IMAGE
    assert "/healthz" in last(DOCKERFILE, "HEALTHCHECK")


def test_documented_memory_limit_holds_what_the_configuration_lets_in() -> None:
    source = parse_config(yaml.safe_load(CONTAINER_CONFIG.read_text()), str(CONTAINER_CONFIG)).source
    assert isinstance(source, SqsSource)
    for documented in (DOCKERFILE, CONTAINER_CONFIG):
        memory = re.search(r"--memory (\d+)m", documented.read_text())
        assert memory, f"{documented.name} gives docker run no --memory"
        assert int(memory.group(1)) >= worst_case_memory_mib(source.concurrency, source.max_object_bytes)


def _world(endpoint: str) -> tuple[str, str]:
    """A bucket with one CloudTrail object and a queue holding its S3 notification."""
    s3, sqs = boto3.client("s3", endpoint_url=endpoint), boto3.client("sqs", endpoint_url=endpoint)
    name = f"image-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    record = assume(user("111111111111", "alice"), "arn:aws:iam::222222222222:role/Deploy", datetime.now(UTC))
    key = "AWSLogs/111111111111/CloudTrail/us-east-1/2026/03/31/111111111111_CloudTrail_us-east-1_x.json.gz"
    s3.put_object(Bucket=name, Key=key, Body=gzip.compress(orjson.dumps({"Records": [record]})))
    notification = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                 "s3": {"bucket": {"name": name}, "object": {"key": key}}}]}
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(notification))
    return queue, record["eventID"]


def _config(tmp_path: Path, queue: str, port: int, output: Path) -> dict[str, Any]:
    """The shipped container configuration, pointed at moto and a file sink, paths in the volume."""
    config = yaml.safe_load(CONTAINER_CONFIG.read_text())
    config["source"].update(queue_url=queue, region="us-east-1", wait_time_seconds=1)
    config["sinks"] = [{"type": "ndjson", "path": str(output)}]
    config["metrics"]["listen"] = f"127.0.0.1:{port}"  # tests bind loopback; the image binds 0.0.0.0
    config["state"]["path"] = config["state"]["path"].replace(STATE_IN_IMAGE, str(tmp_path / "volume"))
    config["dead_letter"]["path"] = config["dead_letter"]["path"].replace(STATE_IN_IMAGE, str(tmp_path / "volume"))
    return config


def _wait(predicate: Any, seconds: float, what: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{what}; forwarder said:\n{process.communicate()[1]}")
        time.sleep(0.2)


def test_entry_point_runs_the_daemon_against_moto(aws: str, tmp_path: Path) -> None:
    queue, event_id = _world(aws)
    port = free_port()
    output = tmp_path / "out.ndjson"
    (tmp_path / "volume").mkdir()
    mounted = tmp_path / "config.yaml"  # what the volume mount puts at CONFIG_IN_IMAGE
    mounted.write_text(yaml.safe_dump(_config(tmp_path, queue, port, output)))

    command = json.loads(last(DOCKERFILE, "ENTRYPOINT")) + json.loads(last(DOCKERFILE, "CMD"))
    assert CONFIG_IN_IMAGE in command
    argv = [str(mounted) if part == CONFIG_IN_IMAGE else part for part in command]
    env = dict(os.environ)
    env.update(image_env(DOCKERFILE))
    # The image's PATH puts its virtualenv first; here that virtualenv is this one.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    process = subprocess.Popen(argv, cwd=tmp_path / "volume", env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: output.exists() and event_id in output.read_text(), 60,
              "the notified object was not delivered", process)
        healthcheck = json.loads(last(DOCKERFILE, "HEALTHCHECK").split(" CMD ", 1)[1])
        healthcheck = [sys.executable if part == "python" else part.replace(":9108/", f":{port}/") for part in healthcheck]
        assert subprocess.run(healthcheck, env=env, timeout=30).returncode == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert b"forwarder_records_out" in answer.read()
        process.send_signal(signal.SIGTERM)  # STOPSIGNAL: the graceful stop
        _, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, errors
    assert '"forwarder stopped"' in errors
    assert (tmp_path / "volume" / "state.db").exists()
    left = boto3.client("sqs", endpoint_url=aws).get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    assert set(left["Attributes"].values()) == {"0"}, "the message was not deleted after delivery"
