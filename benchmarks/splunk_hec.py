"""Splunk HEC sink throughput: events per second into the HEC test server, and bytes per event.

The test server (tests/servers/hec_server.py) runs as its own process on 127.0.0.1; the sink
sends enriched invictus-ir records (``forwarder enrich`` with ``select: all``), repeated to
``--events``. Run from the repository root:

    .venv/bin/python benchmarks/splunk_hec.py [--events 29000] [--repeat 3]

The figures bound the sink plus a stdlib Python server that parses every envelope; a real
Splunk indexer is a different machine with different limits.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from isal import igzip

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from forwarder.config import SplunkHecSink  # noqa: E402
from forwarder.document import Document  # noqa: E402
from forwarder.sinks.splunk_hec import HecSink  # noqa: E402
from enrich_throughput import DATA  # noqa: E402 - the same public samples as the other benchmarks

TOKEN = "3f1e2d4c-5b6a-4789-8a9b-0c1d2e3f4a5b"


def enriched_documents(count: int) -> list[Document]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as config:
        config.write("select: all\n")
        config.flush()
        run = subprocess.run([sys.executable, "-m", "forwarder", "enrich", "--config", config.name, str(DATA)],
                             cwd=REPO, capture_output=True, check=True)
    base = []
    for line in run.stdout.splitlines():
        record = orjson.loads(line)
        assumerole = record.pop("assumerole", None)
        base.append(Document(record, assumerole, f"s3://cloudtrail-bucket/{record.get('eventID')}.json.gz",
                             orjson.dumps(record)))
    return [base[i % len(base)] for i in range(count)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _CountingPool:
    """Wraps the sink's connection pool to count request bodies as they go on the wire."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.body_bytes = 0
        self.requests = 0

    def request(self, method: str, url: str, body: bytes | None = None, **kwargs: Any) -> Any:
        if url.endswith("/services/collector/event"):
            self.body_bytes += len(body or b"")
            self.requests += 1
        return self.pool.request(method, url, body=body, **kwargs)

    def clear(self) -> None:
        self.pool.clear()


def run(documents: list[Document], *, gzip: bool, ack: bool, repeat: int) -> dict[str, Any]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "servers" / "hec_server.py"), "--port", str(port), "--token", TOKEN,
         *(["--ack"] if ack else [])],
        stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and "listening" in server.stdout.readline()
        os.environ["BENCH_HEC_TOKEN"] = TOKEN
        config = SplunkHecSink.model_validate({
            "type": "splunk_hec", "url": f"http://127.0.0.1:{port}", "token": {"env": "BENCH_HEC_TOKEN"},
            "index": "main", "gzip": gzip, "ack": ack, "ack_poll_seconds": 0.01})
        rates, per_event = [], []
        for _ in range(repeat):
            sink = HecSink(config)
            counter = _CountingPool(sink._http)
            sink._http = counter  # type: ignore[assignment]
            started = time.perf_counter()
            delivery = sink.send(documents)
            elapsed = time.perf_counter() - started
            sink.close()
            assert not delivery.rejected
            rates.append(len(documents) / elapsed)
            per_event.append(counter.body_bytes / len(documents))
        return {"gzip": gzip, "ack": ack, "events_per_second": statistics.median(rates),
                "body_bytes_per_event": statistics.median(per_event), "requests": counter.requests}
    finally:
        server.terminate()
        server.wait(timeout=10)


def sink_side_rate(documents: list[Document]) -> float:
    """Envelopes built and gzipped per second, no network: the sink's own ceiling."""
    os.environ["BENCH_HEC_TOKEN"] = TOKEN
    sink = HecSink(SplunkHecSink.model_validate(
        {"type": "splunk_hec", "url": "http://127.0.0.1:9", "token": {"env": "BENCH_HEC_TOKEN"}, "index": "main"}))
    started = time.perf_counter()
    for batch in sink._batches(documents):
        igzip.compress(b"".join(batch.envelopes), compresslevel=1)
    return len(documents) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=29000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"the invictus-ir samples are not at {DATA}")
    documents = enriched_documents(args.events)
    document_bytes = sum(len(d.to_json()) for d in documents) / len(documents)
    print(f"{len(documents)} enriched events, {document_bytes:.0f} bytes per document (to_json), "
          f"batches of 500 events / 1 MiB, median of {args.repeat} runs")
    print("| gzip | ack | events/s | body bytes/event on the wire | requests |")
    print("|---|---|---:|---:|---:|")
    for gzip, ack in ((False, False), (True, False), (True, True)):
        result = run(documents, gzip=gzip, ack=ack, repeat=args.repeat)
        print(f"| {'on' if gzip else 'off'} | {'on' if ack else 'off'} | {result['events_per_second']:,.0f} | "
              f"{result['body_bytes_per_event']:.0f} | {result['requests']} |", flush=True)
    print(f"sink alone (envelopes + gzip, no network): {sink_side_rate(documents):,.0f} events/s")


if __name__ == "__main__":
    main()
