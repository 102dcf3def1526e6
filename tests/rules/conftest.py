"""Fixtures for the Sigma rule kit: generated rules, enriched scenarios, the Elasticsearch node.

The node comes from tests/servers/elasticsearch-node through the Elasticsearch tests' own helper
module (tests/elasticsearch/es_node.py: start/stop and per-test namespaces), imported from its
directory so that nothing is copied.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from forwarder.config import Config, load_config
from forwarder.document import Document
from forwarder.rules.generate import generate, write
from paths import DEMO_CONFIG, REPO

DEMO = REPO / "forwarder" / "samples" / "demo"
sys.path.insert(0, str(REPO / "tests" / "elasticsearch"))

from es_node import Namespace, es_url  # noqa: E402
from search_space import indexed_stories  # noqa: E402

from scenario import SCENARIO_CONFIG, scenario_objects  # noqa: E402


def demo_objects() -> list[list[dict[str, Any]]]:
    objects = []
    for path in sorted(DEMO.rglob("*.json.gz")):
        if "CloudTrail-Digest" in path.parts:
            continue
        objects.append(orjson.loads(gzip.decompress(path.read_bytes()))["Records"])
    return objects


def enrich(objects: list[list[dict[str, Any]]], config: Config) -> list[Document]:
    from cloudtrail import enrich_objects

    return enrich_objects(objects, config).documents


@pytest.fixture(scope="session")
def demo_config() -> Config:
    return load_config(DEMO_CONFIG)


@pytest.fixture(scope="session")
def demo_rules(tmp_path_factory: pytest.TempPathFactory, demo_config: Config) -> Path:
    out = tmp_path_factory.mktemp("demo-rules")
    write(generate(demo_config), out)
    return out


@pytest.fixture(scope="session")
def scenario_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scenario-rules")
    write(generate(SCENARIO_CONFIG), out)
    return out


@pytest.fixture(scope="session")
def demo_docs(demo_config: Config) -> list[Document]:
    return enrich(demo_objects(), demo_config)


@pytest.fixture(scope="session")
def scenario() -> tuple[list[Document], dict[str, set[str]]]:
    objects, expected = scenario_objects()
    return enrich(objects, SCENARIO_CONFIG), expected


@pytest.fixture(scope="module")
def indexed(es_url: str, demo_docs: list[Document], scenario: tuple[list[Document], dict[str, set[str]]]) -> Iterator[dict[str, Namespace]]:
    """The demo story and the scenario, each in its own namespace on the node, through the real sink."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url, request_timeout=60)
    yield from indexed_stories(lambda: Namespace(es_url, client), {"demo": demo_docs, "scenario": scenario[0]})
    client.close()
