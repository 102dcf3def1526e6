"""The Elasticsearch test node and per-test namespaces on it, shared by the tests here."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from forwarder.config import ElasticsearchSink
from forwarder.sinks.elasticsearch import ElasticsearchSink as Sink
from forwarder.sinks.es_setup import setup_elasticsearch
from paths import DATA, REPO

NODE_SCRIPT = REPO / "tests" / "servers" / "elasticsearch-node"


@pytest.fixture(scope="session")
def es_url() -> Iterator[str]:
    """The node's URL for the session: ES_URL, or the test node (stopped at the end if started here)."""
    if os.environ.get("ES_URL"):
        yield os.environ["ES_URL"]
        return
    was_running = subprocess.run([str(NODE_SCRIPT), "url"], capture_output=True).returncode == 0
    url = node("start")
    yield url
    if not was_running:
        node("stop")


def node(command: str) -> str:
    done = subprocess.run([str(NODE_SCRIPT), command], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"elasticsearch-node {command} failed:\n{done.stderr}")
    return done.stdout.strip()


class Namespace:
    """Names for one test on the shared node, and a sink factory over them."""

    def __init__(self, url: str, client: Elasticsearch) -> None:
        self.url = url
        self.client = client
        self.prefix = f"fwtest-{uuid.uuid4().hex[:10]}"
        self.pattern = f"{self.prefix}-*"
        self.dead_letter = f"{self.prefix}-dead-letter"
        self.sinks: list[Sink] = []

    def config(self, **overrides: Any) -> ElasticsearchSink:
        settings: dict[str, Any] = {
            "type": "elasticsearch",
            "hosts": [self.url],
            "template_name": self.prefix,
            "index": f"{self.prefix}-ct-{{%Y.%m.%d}}",
            "dead_letter_index": self.dead_letter,
            "max_retries": 3,
            "retry_initial_seconds": 0.05,
            "retry_max_seconds": 0.5,
            "request_timeout_seconds": 20,
            **overrides,
        }
        return ElasticsearchSink.model_validate(settings)

    def sink(self, setup: bool = True, **overrides: Any) -> Sink:
        cfg = self.config(**overrides)
        if setup:
            setup_elasticsearch(cfg)
        sink = Sink(cfg)
        self.sinks.append(sink)
        return sink

    def refresh(self) -> None:
        self.client.indices.refresh(index=self.pattern, ignore_unavailable=True, allow_no_indices=True)

    def count(self, query: dict[str, Any] | None = None, index: str | None = None) -> int:
        self.refresh()
        return int(self.client.count(index=index or f"{self.prefix}-ct-*", query=query or {"match_all": {}})["count"])

    def cleanup(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.client.options(ignore_status=404).indices.delete(index=self.pattern, expand_wildcards="all")
        for name in (self.prefix, f"{self.prefix}-dead-letter"):
            self.client.options(ignore_status=(400, 404)).indices.delete_index_template(name=name)
        templates = self.client.options(ignore_status=404).cluster.get_component_template(name=f"{self.prefix}@*")
        for entry in templates.get("component_templates", []):
            self.client.options(ignore_status=(400, 404)).cluster.delete_component_template(name=entry["name"])


def public_records() -> list[tuple[str, list[dict[str, Any]]]]:
    """(file name, records) of every public sample file; the test is skipped where they are absent."""
    files = sorted((DATA / "invictus-aws-dataset").glob("*.json")) + sorted((DATA / "corpus").glob("*.json"))
    if not files:
        pytest.skip(f"the public CloudTrail samples are not in {DATA.resolve()}")
    return [(path.name, json.loads(path.read_bytes())["Records"]) for path in files]


