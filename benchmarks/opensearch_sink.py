"""OpenSearch sink throughput, next to a plain opensearch-py ``helpers.bulk`` of the same documents.

Input: the 2,900 real records of ../shared/data/invictus-aws-dataset, through the real
enrichment (select: all, so every record ships), repeated COPIES times with fresh eventIDs
(benchmarks/elasticsearch_sink.py makes them: the same input for both sinks).

- floor: ``opensearchpy.helpers.bulk`` of the finished documents, already serialised (``_source``
  the JSON text, same _index/_id/op_type, 1,000 per request, the default client): what the node
  takes when the client has nothing else to do.
- sink: ``OpenSearchSink.send`` from the enriched Documents, SEND_SIZE per call on one thread, so
  its own work is timed too (ECS fields, serialisation, index names, verdicts).
- sink, 2 callers: the same from two threads at once, as the daemon's batching calls it with the
  default ``bulk_concurrency: 2`` (not a like-for-like ratio: the floor has one request in flight).

Each run writes into a fresh index on the test node (tests/servers/opensearch-node, or OS_URL);
runs go floor / sink / sink with 2 callers and back the other way, so that all see the same node state.

    python benchmarks/opensearch_sink.py [--copies 10] [--runs 3]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from opensearchpy import OpenSearch, helpers

from forwarder.config import OpenSearchSink
from forwarder.document import Document
from forwarder.sinks.es_document import to_es
from forwarder.sinks.opensearch import OpenSearchSink as Sink
from forwarder.sinks.os_setup import setup_opensearch
from elasticsearch_sink import SEND_SIZE, inputs  # the same documents as the Elasticsearch benchmark

REPO = Path(__file__).resolve().parents[1]
NODE = REPO / "tests" / "servers" / "opensearch-node"
NAME = "fwbench"
INDEX = f"{NAME}-2023.07.10"  # every invictus record is of that day


def node_url() -> str:
    if os.environ.get("OS_URL"):
        return os.environ["OS_URL"]
    return subprocess.run([str(NODE), "start"], check=True, capture_output=True, text=True).stdout.strip()


def fresh(client: OpenSearch) -> None:
    client.indices.delete(index=INDEX, ignore=404)


def run_floor(client: OpenSearch, actions: list[dict[str, object]]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds)."""
    fresh(client)
    start, cpu = time.perf_counter(), time.process_time()
    ok, errors = helpers.bulk(client, actions, chunk_size=1000, max_chunk_bytes=5 * 1024 * 1024, raise_on_error=False)
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    assert ok == len(actions) and not errors, errors[:1]
    return elapsed


def _send_all(sink: Sink, documents: list[Document]) -> None:
    for first in range(0, len(documents), SEND_SIZE):
        delivery = sink.send(documents[first : first + SEND_SIZE])
        assert not delivery.rejected, delivery.rejected[0].reason


def run_sink(sink: Sink, documents: list[Document], callers: int) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds)."""
    fresh(sink.client)
    shares = [documents[n::callers] for n in range(callers)]
    threads = [threading.Thread(target=_send_all, args=(sink, share)) for share in shares]
    start, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> int:
    given = inputs(__doc__.splitlines()[0])
    if given is None:
        return 1
    args, documents = given
    url = node_url()
    cfg = OpenSearchSink(type="opensearch", hosts=[url], template_name=NAME, index=f"{NAME}-{{%Y.%m.%d}}")
    print(*setup_opensearch(cfg), sep="\n", file=sys.stderr)
    sink = Sink(cfg)
    plain = OpenSearch(url, timeout=30)  # the default client: the floor as anyone would write it
    actions: list[dict[str, object]] = [
        {"_op_type": "create", "_index": INDEX, "_id": doc.event_id, "_source": to_es(doc).body.decode()}
        for doc in documents]
    runs: dict[str, list[tuple[float, float]]] = {"floor": [], "sink": [], "pair": []}
    measure = {"floor": lambda: run_floor(plain, actions), "sink": lambda: run_sink(sink, documents, 1),
               "pair": lambda: run_sink(sink, documents, 2)}
    for number in range(args.runs):
        # The node slows as it ages (merges, a fuller heap): every other run goes the other way round.
        for name in (list(measure) if number % 2 == 0 else reversed(list(measure))):
            runs[name].append(measure[name]())
        plain.indices.refresh(index=INDEX)
        assert plain.count(index=INDEX)["count"] == len(documents)  # the last run delivered every one
    fresh(plain)
    sink.close()
    version = plain.info()["version"]["number"]
    plain.close()
    rate = {name: [len(documents) / wall for wall, _ in measured] for name, measured in runs.items()}
    cpu = {name: statistics.median(spent for _, spent in measured) * 1e6 / len(documents) for name, measured in runs.items()}
    f, s, p = (statistics.median(rate[name]) for name in ("floor", "sink", "pair"))
    print("| documents | runs | helpers.bulk floor (docs/s) | OpenSearchSink (docs/s) | sink / floor "
          "| client CPU µs/doc, floor / sink | 2 callers (docs/s) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {len(documents):,} | {args.runs} | {f:,.0f} | {s:,.0f} | {s / f:.0%} "
          f"| {cpu['floor']:.0f} / {cpu['sink']:.0f} | {p:,.0f} |")
    print("; ".join(f"{name} runs: {[round(x) for x in values]}" for name, values in rate.items())
          + f"; OpenSearch {version} at {url}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
