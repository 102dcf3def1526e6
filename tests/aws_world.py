"""The AWS side of a daemon test: a bucket, a queue, a config and the forwarder's outputs."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import time
import sys
import uuid
from datetime import datetime
from pathlib import Path
from collections.abc import Callable
from typing import Any

import boto3
import orjson
import yaml

from forwarder.config import load_config
from paths import REPO


def log_key(account: str, day: str, stamp: str, region: str = "us-east-1", org: str | None = None,
            suffix: str | None = None) -> str:
    """A key as CloudTrail names it; ``day`` is YYYY/MM/DD, ``stamp`` HHMM, ``suffix`` the random
    16 characters that end the name."""
    folder = f"AWSLogs/{org}/{account}" if org else f"AWSLogs/{account}"
    compact = day.replace("/", "")
    suffix = suffix or uuid.uuid4().hex[:16]
    return f"{folder}/CloudTrail/{region}/{day}/{account}_CloudTrail_{region}_{compact}T{stamp}Z_{suffix}.json.gz"


class World:
    """One bucket, one queue and a working directory: what one test's forwarder reads and writes."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        name = f"t{uuid.uuid4().hex[:12]}"
        self.bucket = f"trail-{name}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.queue_url = self.sqs.create_queue(QueueName=f"q-{name}")["QueueUrl"]
        self.output = tmp / "out.ndjson"
        self.dead_letter = tmp / "dead-letter"

    def put_log(self, key: str, records: list[dict[str, Any]]) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=gzip.compress(orjson.dumps({"Records": records})))
        return key

    def put_raw(self, key: str, body: bytes) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return key

    def send(self, body: dict[str, Any] | str) -> str:
        text = body if isinstance(body, str) else orjson.dumps(body).decode()
        return self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=text)["MessageId"]

    def queue_depth(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def config(self, source: dict[str, Any] | None = None, **sections: Any) -> Path:
        settings: dict[str, Any] = {
            "select": "all",
            "source": source or {"type": "sqs", "queue_url": self.queue_url, "wait_time_seconds": 1,
                                 "visibility_timeout_seconds": 5, "retry_delay_seconds": 1, "concurrency": 4},
            "state": {"type": "sqlite", "path": str(self.tmp / "state.db")},
            "sinks": [{"type": "ndjson", "path": str(self.output)}],
            "dead_letter": {"path": str(self.dead_letter)},
            "metrics": {"listen": None},
            **sections,
        }
        state = settings["state"]
        if state.get("type") == "redis" and "claim_lease_seconds" not in state:
            # Shorter than the tests' 5-second visibility timeout, as the configuration requires.
            settings["state"] = {**state, "claim_lease_seconds": 3}
        path = self.tmp / "forwarder.yaml"
        path.write_text(yaml.safe_dump(settings))
        return path

    def documents(self) -> list[dict[str, Any]]:
        if not self.output.exists():
            return []
        return [orjson.loads(line) for line in self.output.read_bytes().splitlines() if line.strip()]

    def event_ids(self) -> list[str]:
        return [doc["eventID"] for doc in self.documents()]

    def dead_objects(self) -> list[dict[str, Any]]:
        path = self.dead_letter / "objects.ndjson"
        return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []

    def run(self, config: Path, idle: float = 2.0) -> int:
        """The daemon in this process until idle (signal handlers restored afterwards)."""
        from forwarder import daemon

        handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
        try:
            return daemon.Daemon(load_config(config), exit_when_idle=idle, shutdown_timeout=10).run()
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        """``python -m forwarder ...`` as its own process, JSON logs on stderr."""
        return subprocess.Popen([sys.executable, "-m", "forwarder", *args], cwd=REPO, env=dict(os.environ),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def spawn_logged(self, log: Path, *args: str) -> subprocess.Popen[bytes]:
        """``spawn`` with standard error written to ``log`` and standard output dropped: a long or
        chatty run cannot fill a pipe nobody reads, and the log can be read while it runs."""
        with open(log, "ab") as stderr:
            return subprocess.Popen([sys.executable, "-m", "forwarder", *args], cwd=REPO, env=dict(os.environ),
                                    stdout=subprocess.DEVNULL, stderr=stderr)


def wait_until(check: Callable[[], bool], seconds: float, every: float = 0.05) -> bool:
    """Whether ``check`` came true within ``seconds`` (asked every ``every`` seconds)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True


def json_logs(stderr: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stderr.splitlines() if line.startswith(b"{")]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
