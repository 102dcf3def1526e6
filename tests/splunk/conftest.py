"""Fixtures for the Splunk HEC sink: the protocol-faithful HEC test server and enriched documents."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from forwarder.config import SplunkHecSink
from forwarder.document import Document
from forwarder.sinks.splunk_hec import HecSink
from hec_setup import ACK_TOKEN, INDEX, TOKEN
from servers.hec_server import HecServer, Token
from paths import DATA, REPO


@pytest.fixture
def hec() -> Iterator[HecServer]:
    """A fresh HEC: one plain token, one with indexer acknowledgement; only INDEX is allowed."""
    server = HecServer([
        Token(TOKEN, indexes=[INDEX], default_index=INDEX),
        Token(ACK_TOKEN, ack=True, indexes=[INDEX], default_index=INDEX),
    ])
    with server:
        yield server


@pytest.fixture
def make_sink(hec: HecServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., HecSink]]:
    """Build a sink against ``hec``; keyword arguments override the configuration."""
    sinks: list[HecSink] = []

    def build(token: str = TOKEN, **overrides: Any) -> HecSink:
        monkeypatch.setenv("TEST_HEC_TOKEN", token)
        settings: dict[str, Any] = {
            "type": "splunk_hec",
            "url": hec.url,
            "token": {"env": "TEST_HEC_TOKEN"},
            "index": INDEX,
            "host": "forwarder-test",
            "retry_initial_seconds": 0.01,
            "retry_max_seconds": 0.05,
            "max_retries": 4,
            "ack_poll_seconds": 0.02,
            "request_timeout_seconds": 5,
            **overrides,
        }
        sink = HecSink(SplunkHecSink.model_validate(settings))
        sinks.append(sink)
        return sink

    yield build
    for sink in sinks:
        sink.close()


def _from_cli() -> list[Document] | None:
    """The demo story as the lead's ``forwarder enrich`` prints it, once that exists."""
    demo = REPO / "forwarder" / "samples" / "demo"
    if not demo.is_dir() or not (REPO / "forwarder" / "cli.py").exists():
        return None
    run = subprocess.run([sys.executable, "-m", "forwarder", "enrich", str(demo)], cwd=REPO,
                         capture_output=True, check=True, timeout=120)
    documents = []
    for line in run.stdout.splitlines():
        record = orjson.loads(line)
        assumerole = record.pop("assumerole", None)
        documents.append(Document(record, assumerole, "forwarder/samples/demo", orjson.dumps(record)))
    return documents or None


def _from_corpus() -> list[Document]:
    """Public records with a small ``assumerole`` object on the role assumptions."""
    corpus = DATA / "corpus"
    if not corpus.is_dir():
        pytest.skip(f"the public CloudTrail samples are not at {corpus}")
    documents = []
    for path in sorted(corpus.glob("*.json")):
        for record in json.loads(path.read_text())["Records"]:
            assumerole = None
            if str(record.get("eventName", "")).startswith("AssumeRole"):
                role_arn = ((record.get("requestParameters") or {}).get("roleArn")) or ""
                assumerole = {
                    "role": {"arn": role_arn, "name": role_arn.rpartition("/")[2] or None},
                    "caller": {"external": record.get("recipientAccountId") == "111111111111", "in_org": None},
                    "failed": "errorCode" in record,
                    "chain": {"hops": [role_arn] if role_arn else [], "depth": 1},
                }
            documents.append(Document(record, assumerole, f"s3://trail-bucket/{path.name}", orjson.dumps(record)))
    return documents


@pytest.fixture(scope="session")
def documents() -> list[Document]:
    return _from_cli() or _from_corpus()
