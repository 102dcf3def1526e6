"""The OpenSearch test node and per-test namespaces on it, shared by the OpenSearch tests and the
rule tests (tests/rules/test_rules_on_opensearch.py imports it from this directory)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opensearchpy import OpenSearch
from search_space import Space, run_node, session_node

from forwarder.config import OpenSearchSink
from forwarder.sinks.opensearch import OpenSearchSink as Sink
from forwarder.sinks.os_setup import setup_opensearch
from paths import REPO

NODE_SCRIPT = REPO / "tests" / "servers" / "opensearch-node"


@pytest.fixture(scope="session")
def os_url() -> Iterator[str]:
    """The node's URL for the session: OS_URL, or the test node (stopped at the end if started here)."""
    yield from session_node(NODE_SCRIPT, "OS_URL")


def node(command: str) -> str:
    return run_node(NODE_SCRIPT, command)


class Namespace(Space):
    """A Space on the OpenSearch node (tests/search_space.py), and a sink factory over it."""

    product, model, existing, parsing_error = "opensearch", OpenSearchSink, "OS_URL", "mapper_parsing_exception"
    client: OpenSearch
    node = staticmethod(node)
    sink_class = Sink
    install = staticmethod(setup_opensearch)

    def count(self, query: dict[str, Any] | None = None, index: str | None = None) -> int:
        self.refresh()
        body = {"query": query or {"match_all": {}}}
        return int(self.client.count(index=index or f"{self.prefix}-ct-*", body=body)["count"])

    def search_ids(self, query: dict[str, Any], index: str | None = None) -> set[str]:
        self.refresh()
        hits = self.client.search(index=index or f"{self.prefix}-ct-*", body={"query": query, "size": 10000, "_source": False})
        return {hit["_id"] for hit in hits["hits"]["hits"]}

    def cleanup(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.client.indices.delete_data_stream(name=f"{self.prefix}-*", ignore=(400, 404))
        self.client.indices.delete(index=self.pattern, expand_wildcards="all", ignore=404)
        for name in (self.prefix, f"{self.prefix}-dead-letter"):
            self.client.indices.delete_index_template(name=name, ignore=(400, 404))
        templates = self.client.cluster.get_component_template(name=f"{self.prefix}@*", ignore=404)
        for entry in templates.get("component_templates", []):
            self.client.cluster.delete_component_template(name=entry["name"], ignore=(400, 404))
