"""Where enriched documents go: every sink implements ``forwarder.sinks.base.Sink``."""

from __future__ import annotations

from collections.abc import Callable

from forwarder.config import ElasticsearchSink, NdjsonSink, OpenSearchSink, SinkConfig, SplunkHecSink
from forwarder.sinks.base import Delivery, Rejected, Sink, SinkError, SinkFatal


def build_sink(config: SinkConfig) -> Sink:
    # Imported here so a forwarder writing NDJSON does not load the SIEM clients.
    if isinstance(config, NdjsonSink):
        from forwarder.sinks.ndjson import NdjsonSink as Ndjson

        return Ndjson(config)
    if isinstance(config, ElasticsearchSink):
        from forwarder.sinks.elasticsearch import ElasticsearchSink as Elasticsearch

        return Elasticsearch(config)
    if isinstance(config, OpenSearchSink):
        from forwarder.sinks.opensearch import OpenSearchSink as OpenSearch

        return OpenSearch(config)
    if isinstance(config, SplunkHecSink):
        from forwarder.sinks.splunk_hec import HecSink

        return HecSink(config)
    raise TypeError(f"no sink for {type(config).__name__}")


def build_batched(config: SinkConfig, wrap: Callable[[Sink], Sink] = lambda sink: sink) -> Sink:
    """The daemon's sink: ``config``'s behind the batching that gathers the documents of every
    object in work (forwarder.sinks.batching), ``wrap`` around each of its workers' sinks."""
    from forwarder.sinks.batching import Batching, Bounds

    if isinstance(config, ElasticsearchSink | OpenSearchSink):
        shared = wrap(build_sink(config))  # the client is thread-safe: one for every worker
        return Batching([shared] * config.bulk_concurrency,
                        Bounds(config.batch_max_docs, config.batch_max_bytes, config.batch_linger_seconds))
    if isinstance(config, SplunkHecSink):
        # One send at a time per HEC sink (its acknowledgement channel): one sink per worker.
        return Batching([wrap(build_sink(config)) for _ in range(config.send_concurrency)],
                        Bounds(config.batch_max_events, config.batch_max_bytes, config.batch_linger_seconds))
    return Batching([wrap(build_sink(config))], Bounds(max_documents=2000, max_bytes=8 << 20, linger=0.002))


__all__ = ["Delivery", "Rejected", "Sink", "SinkError", "SinkFatal", "build_batched", "build_sink"]
