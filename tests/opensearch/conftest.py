"""Fixtures for the OpenSearch sink: the test node, a per-test namespace on it, documents.

The node is started once per session by tests/servers/opensearch-node (and stopped at the end if
this session started it); OS_URL in the environment points at an existing cluster instead. Each
test gets its own template name, index pattern and dead-letter index, removed afterwards. The
inputs are the Elasticsearch tests' (tests/elasticsearch: its test module and its helper, imported
from its directory: nothing is copied), so both sinks are held to the same documents.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from opensearchpy import OpenSearch
from os_node import Namespace, os_url
from search_space import documents, enriched_public

from paths import REPO

# The Elasticsearch tests' module, whose sink tests test_os_sink.py runs here too.
sys.path.insert(0, str(REPO / "tests" / "elasticsearch"))


@pytest.fixture(scope="session")
def opensearch(os_url: str) -> Iterator[OpenSearch]:
    client = OpenSearch(os_url, timeout=60)
    yield client
    client.close()


@pytest.fixture
def ns(os_url: str, opensearch: OpenSearch) -> Iterator[Namespace]:
    namespace = Namespace(os_url, opensearch)
    yield namespace
    namespace.cleanup()
