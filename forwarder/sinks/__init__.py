"""Where enriched documents go: every sink implements ``forwarder.sinks.base.Sink``."""

from __future__ import annotations

from forwarder.config import ElasticsearchSink, NdjsonSink, SinkConfig, SplunkHecSink
from forwarder.sinks.base import Delivery, Rejected, Sink, SinkError, SinkFatal


def build_sink(config: SinkConfig) -> Sink:
    # Imported here so a forwarder writing NDJSON does not load the SIEM clients.
    if isinstance(config, NdjsonSink):
        from forwarder.sinks.ndjson import NdjsonSink as Ndjson

        return Ndjson(config)
    if isinstance(config, ElasticsearchSink):
        from forwarder.sinks.elasticsearch import ElasticsearchSink as Elasticsearch

        return Elasticsearch(config)
    if isinstance(config, SplunkHecSink):
        from forwarder.sinks.splunk_hec import HecSink

        return HecSink(config)
    raise TypeError(f"no sink for {type(config).__name__}")


__all__ = ["Delivery", "Rejected", "Sink", "SinkError", "SinkFatal", "build_sink"]
