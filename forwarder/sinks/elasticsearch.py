"""The Elasticsearch sink: bulk indexing (forwarder.sinks.bulk) through elasticsearch-py.

Requests go straight through ``client.bulk`` with the body already serialised: no helper
re-encodes the actions, and no thread pool is started per call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch, NotFoundError
from elasticsearch.serializer import NdjsonSerializer, OrjsonSerializer

from forwarder import config
from forwarder.es_templates import Templates, build_templates, index_patterns
from forwarder.sinks import tls
from forwarder.sinks.bulk import BULK_FILTER, BulkSink, ClientCluster, HttpError, Unreachable, bulk_answer, secret
from forwarder.sinks.redact import Redactor

SETUP_HINT = "run `forwarder setup elasticsearch --config FILE`"


class _Serializer(OrjsonSerializer):
    """orjson, and a bulk answer that says every item was taken is not read further."""

    def loads(self, data: bytes) -> Any:
        return bulk_answer(data) or super().loads(data)


class _Body(NdjsonSerializer):
    """A bulk body the sink wrote whole goes out as it is: the client's own serializer would
    copy it twice (into a buffer, then into bytes), a megabyte a request."""

    def dumps(self, data: Any) -> bytes:
        if isinstance(data, bytes) and data.endswith(b"\n"):
            return data
        return super().dumps(data)


def redactor_for(cfg: config.ElasticsearchSink) -> Redactor:
    """Masks the cluster's secrets in whatever the client or the cluster says."""
    found = (secret(cfg.api_key, "elasticsearch"), secret(cfg.password, "elasticsearch"))
    return Redactor(value for value in found if value)


def build_client(cfg: config.ElasticsearchSink) -> Elasticsearch:
    """A client for ``cfg``; secrets are read here and go nowhere else (but the sink's redactor)."""
    kwargs: dict[str, Any] = {
        "request_timeout": cfg.request_timeout_seconds,
        # The sink retries whole batches with backoff; retries inside the client would stack.
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": cfg.verify_tls,
        "serializers": {"application/json": _Serializer(), "application/x-ndjson": _Body()},
    }
    if cfg.cloud_id:
        kwargs["cloud_id"] = cfg.cloud_id
    else:
        kwargs["hosts"] = cfg.hosts
    if cfg.ca_file is not None:
        kwargs["ca_certs"] = str(cfg.ca_file)
    if not cfg.verify_tls:
        kwargs["ssl_show_warn"] = False
    if cfg.api_key is not None:
        kwargs["api_key"] = secret(cfg.api_key, "elasticsearch")
    elif cfg.username is not None:
        kwargs["basic_auth"] = (cfg.username, secret(cfg.password, "elasticsearch") or "")
    return Elasticsearch(**kwargs)


def templates_for(cfg: config.ElasticsearchSink) -> Templates:
    return build_templates(
        name=cfg.template_name,
        patterns=[cfg.data_stream] if cfg.data_stream else index_patterns(cfg.index),
        data_stream=bool(cfg.data_stream),
        dead_letter_index=cfg.dead_letter_index,
    )


def where(cfg: config.ElasticsearchSink) -> str:
    """The cluster's name in messages."""
    return "Elastic Cloud" if cfg.cloud_id else ", ".join(cfg.hosts)


def transport_reason(exc: TransportError) -> str:
    """What went wrong on the wire, in the transport's own words (once the transport is done
    with an error, its str() says no more than "TLS error" or "Connection error")."""
    return f"{type(exc).__name__}: {exc.message}"


class EsCluster(ClientCluster):
    """elasticsearch-py's calls, its errors as ``HttpError`` and ``Unreachable``."""

    client: Elasticsearch
    errors = (ApiError, TransportError)

    def translate(self, exc: Exception) -> HttpError | Unreachable:
        if isinstance(exc, ApiError):
            return HttpError(exc.status_code, exc.body, f"{exc.status_code} {exc.message}: {exc.body}")
        assert isinstance(exc, TransportError)
        return Unreachable(transport_reason(exc), tls.certificate_refused(exc))

    def bulk(self, body: bytes) -> dict[str, Any]:
        return self.call(lambda: self.client.bulk(operations=body, filter_path=BULK_FILTER)).body  # type: ignore[arg-type]

    def _template(self, fetch: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        try:
            return fetch()
        except NotFoundError:
            return None

    def index_template(self, name: str) -> dict[str, Any] | None:
        return self.call(lambda: self._template(
            lambda: dict(self.client.indices.get_index_template(name=name)["index_templates"][0]["index_template"])))

    def component_template(self, name: str) -> dict[str, Any] | None:
        return self.call(lambda: self._template(
            lambda: dict(self.client.cluster.get_component_template(name=name)["component_templates"][0]["component_template"])))


def cluster_for(cfg: config.ElasticsearchSink, client: Elasticsearch | None = None) -> EsCluster:
    return EsCluster(client or build_client(cfg), where(cfg))


class ElasticsearchSink(BulkSink):
    """Indexes documents into Elasticsearch; constructed from ``config.ElasticsearchSink``."""

    name = "elasticsearch"
    setup_hint = SETUP_HINT

    def __init__(self, cfg: config.ElasticsearchSink, client: Elasticsearch | None = None) -> None:
        cluster = cluster_for(cfg, client)
        self.client = cluster.client
        super().__init__(cfg, cluster, redactor_for(cfg), templates_for(cfg))
