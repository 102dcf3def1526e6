"""Fixtures for the Elasticsearch sink: the test node, a per-test namespace on it, documents.

The node is started once per session by tests/servers/elasticsearch-node (and stopped at the
end if this session started it); ES_URL in the environment points at an existing cluster
instead. Each test gets its own template name, index pattern and dead-letter index, removed
afterwards, so tests neither see nor disturb each other's data.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch
from es_node import Namespace, es_url
from search_space import documents, enriched_public

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
