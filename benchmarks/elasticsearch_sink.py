"""Elasticsearch sink throughput, next to a plain ``helpers.bulk`` of the same documents (the floor).

Input: the 2,900 real records of ../shared/data/invictus-aws-dataset, through the real
enrichment (select: all, so every record ships), repeated COPIES times with fresh eventIDs.

- floor: ``elasticsearch.helpers.bulk`` of the finished, pre-serialised documents
  (same _index/_id/op_type, 1,000 per request): what the node takes when the client has
  nothing else to do.
- sink: ``ElasticsearchSink.send`` from the enriched Documents, so its own work is timed too
  (ECS fields, serialisation, index names, per-item verdicts).

Each run writes into a fresh index on the test node (tests/servers/elasticsearch-node, or
ES_URL); runs alternate floor/sink so that both see the same node state.

    python benchmarks/elasticsearch_sink.py [--copies 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
from elasticsearch import Elasticsearch, helpers

from forwarder.config import Config, ElasticsearchSink
from forwarder.deadletter import StderrDeadLetter
from forwarder.document import Document
from forwarder.enrich import Enricher
from forwarder.pipeline import Pipeline
from forwarder.sinks.base import Delivery
from forwarder.sinks.elasticsearch import ElasticsearchSink as Sink
from forwarder.sinks.es_document import to_es
from forwarder.sinks.es_setup import setup_elasticsearch
from forwarder.state.sqlite import SqliteStore
from enrich_throughput import DATA  # the same public samples as the other benchmarks

REPO = Path(__file__).resolve().parents[1]
NODE = REPO / "tests" / "servers" / "elasticsearch-node"
NAME = "fwbench"
SEND_SIZE = 5000  # documents per send(), about what one large CloudTrail object yields


class _Keep:
    name = "keep"

    def __init__(self) -> None:
        self.documents: list[Document] = []

    def send(self, documents: list[Document]) -> Delivery:
        self.documents.extend(documents)
        return Delivery()

    def close(self) -> None:
        pass


def enriched(copies: int) -> list[Document]:
    keep = _Keep()
    pipeline = Pipeline(Enricher(Config(select="all"), SqliteStore(), batch=True), [keep], StderrDeadLetter())
    for path in sorted(DATA.glob("*.json")):
        pipeline.process(path.name, path.read_bytes())
    pipeline.flush()
    out = []
    for _ in range(copies):
        for doc in keep.documents:
            record = dict(doc.record, eventID=str(uuid.uuid4()))
            out.append(Document(record, doc.assumerole, doc.source, orjson.dumps(record)))
    return out


def node_url() -> str:
    if os.environ.get("ES_URL"):
        return os.environ["ES_URL"]
    return subprocess.run([str(NODE), "start"], check=True, capture_output=True, text=True).stdout.strip()


def fresh(client: Elasticsearch, index: str) -> None:
    client.options(ignore_status=404).indices.delete(index=index)


def run_floor(client: Elasticsearch, actions: list[dict[str, object]], index: str) -> float:
    fresh(client, index)
    start = time.perf_counter()
    ok, errors = helpers.bulk(client, actions, chunk_size=1000, max_chunk_bytes=5 * 1024 * 1024, raise_on_error=False)
    elapsed = time.perf_counter() - start
    assert ok == len(actions) and not errors, errors[:1]
    return elapsed


def run_sink(sink: Sink, documents: list[Document], index: str) -> float:
    fresh(sink.client, index)
    start = time.perf_counter()
    for first in range(0, len(documents), SEND_SIZE):
        delivery = sink.send(documents[first : first + SEND_SIZE])
        assert not delivery.rejected, delivery.rejected[0].reason
    return time.perf_counter() - start


def inputs(description: str) -> tuple[argparse.Namespace, list[Document]] | None:
    """The command line (--copies, --runs) and the documents; None, said why, without the samples."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not DATA.exists():
        print(f"no input: {DATA} is absent", file=sys.stderr)
        return None
    return args, enriched(args.copies)


def main() -> int:
    given = inputs(__doc__.splitlines()[0])
    if given is None:
        return 1
    args, documents = given
    url = node_url()
    cfg = ElasticsearchSink(type="elasticsearch", hosts=[url], template_name=NAME, index=f"{NAME}-{{%Y.%m.%d}}")
    print(*setup_elasticsearch(cfg), sep="\n", file=sys.stderr)
    sink = Sink(cfg)
    index = f"{NAME}-2023.07.10"  # every invictus record is of that day
    actions: list[dict[str, object]] = []
    for doc in documents:
        prepared = to_es(doc)
        actions.append({"_op_type": "create", "_index": index, "_id": doc.event_id, "_source": prepared.body})
    floor, ours = [], []
    for _ in range(args.runs):
        floor.append(len(documents) / run_floor(sink.client, actions, index))
        ours.append(len(documents) / run_sink(sink, documents, index))
    fresh(sink.client, index)
    sink.close()
    nodes = Elasticsearch(url).nodes.info(node_id="_local")["nodes"]  # the stripped node has no GET /
    version = next(iter(nodes.values()))["version"]
    f, s = statistics.median(floor), statistics.median(ours)
    print("| documents | runs | helpers.bulk floor (docs/s) | ElasticsearchSink (docs/s) | sink / floor |")
    print("|---|---|---|---|---|")
    print(f"| {len(documents):,} | {args.runs} | {f:,.0f} | {s:,.0f} | {s / f:.0%} |")
    print(f"floor runs: {[round(x) for x in floor]}; sink runs: {[round(x) for x in ours]}; "
          f"Elasticsearch {version} at {url}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
