"""The Elasticsearch test node and per-test namespaces on it, shared by the tests here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from search_space import Space, public_records, run_node, session_node  # noqa: F401 - public_records: for tests/package

from forwarder.config import ElasticsearchSink
from forwarder.sinks.elasticsearch import ElasticsearchSink as Sink
from forwarder.sinks.es_setup import setup_elasticsearch
from paths import REPO

NODE_SCRIPT = REPO / "tests" / "servers" / "elasticsearch-node"


@pytest.fixture(scope="session")
def es_url() -> Iterator[str]:
    """The node's URL for the session: ES_URL, or the test node (stopped at the end if started here)."""
    yield from session_node(NODE_SCRIPT, "ES_URL")


def node(command: str) -> str:
    return run_node(NODE_SCRIPT, command)


class Namespace(Space):
    """A Space on the Elasticsearch node (tests/search_space.py), and a sink factory over it."""

    product, model, existing, parsing_error = "elasticsearch", ElasticsearchSink, "ES_URL", "document_parsing_exception"
    client: Elasticsearch
    node = staticmethod(node)
    sink_class = Sink
    install = staticmethod(setup_elasticsearch)

    def search_ids(self, query: dict[str, Any]) -> set[str]:
        self.refresh()
        hits = self.client.search(index=f"{self.prefix}-ct-*", query=query, size=1000, source=False)["hits"]["hits"]
        return {hit["_id"] for hit in hits}

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
