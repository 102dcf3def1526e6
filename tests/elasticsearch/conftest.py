"""Fixtures for the Elasticsearch sink: the test node, a per-test namespace on it, documents.

The node is started once per session by tests/servers/elasticsearch-node (and stopped at the
end if this session started it); ES_URL in the environment points at an existing cluster
instead. Each test gets its own template name, index pattern and dead-letter index, removed
afterwards, so tests neither see nor disturb each other's data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from es_node import Namespace, es_url, public_records

from forwarder.config import Config
from forwarder.document import Document

@pytest.fixture(scope="session")
def es(es_url: str) -> Iterator[Elasticsearch]:
    client = Elasticsearch(es_url, request_timeout=60)
    yield client
    client.close()


@pytest.fixture
def ns(es_url: str, es: Elasticsearch) -> Iterator[Namespace]:
    namespace = Namespace(es_url, es)
    yield namespace
    namespace.cleanup()


@pytest.fixture(scope="session")
def enriched_public() -> list[Document]:
    """Every public sample record, through the real enrichment (select: all), each eventID once."""
    from cloudtrail import enrich_objects

    return enrich_objects([records for _, records in public_records()], Config(select="all")).documents


@pytest.fixture
def documents() -> Callable[..., list[Document]]:
    """Enriched documents made from the shapes AWS documents (tests/cloudtrail.py)."""
    from cloudtrail import enrich_objects

    def build(records: list[dict[str, Any]], config: Config | None = None) -> list[Document]:
        return enrich_objects([records], config or Config(select="all")).documents

    return build
