"""`forwarder setup elasticsearch`: install or update the index templates, idempotently.

The loop over the templates and what its errors mean are the OpenSearch setup's too (os_setup).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from elasticsearch import Elasticsearch

from forwarder import config
from forwarder.es_templates import Templates
from forwarder.sinks import tls
from forwarder.sinks.base import SinkError, SinkFatal
from forwarder.sinks.bulk import HttpError, Unreachable
from forwarder.sinks.elasticsearch import cluster_for, redactor_for, templates_for
from forwarder.sinks.redact import Redactor


class TemplateCluster(Protocol):
    where: str

    def component_template(self, name: str) -> dict[str, Any] | None: ...
    def index_template(self, name: str) -> dict[str, Any] | None: ...
    def put_component_template(self, name: str, body: dict[str, Any]) -> None: ...
    def put_index_template(self, name: str, body: dict[str, Any]) -> None: ...


def install_templates(cluster: TemplateCluster, templates: Templates) -> list[str]:
    """Install what is missing, update what differs; one line per template saying which."""
    done: list[str] = []
    # Components first: an index template may only name components that exist.
    for kind, bodies in (("component", templates.component), ("index", templates.index)):
        for name, body in bodies.items():
            installed = cluster.component_template(name) if kind == "component" else cluster.index_template(name)
            if installed is not None and (installed.get("_meta") or {}).get("digest") == body["_meta"]["digest"]:
                done.append(f"{kind} template {name}: unchanged")
                continue
            if kind == "component":
                cluster.put_component_template(name, body)
            else:
                cluster.put_index_template(name, body)
            done.append(f"{kind} template {name}: {'created' if installed is None else 'updated'}")
    return done


@contextmanager
def setup_errors(product: str, where: str, redact: Redactor) -> Iterator[None]:
    """What the cluster said, as SinkFatal (a setting or a privilege to fix) or SinkError (try again)."""
    try:
        yield
    except HttpError as exc:
        raise (SinkFatal if exc.status in (400, 401, 403) else SinkError)(redact(f"{product} setup: {exc}")) from None
    except Unreachable as exc:  # connection refused, TLS, DNS: say where, not a traceback
        if exc.certificate:
            raise SinkFatal(redact(f"{product} sink: {tls.advice(where, exc)}")) from None
        raise SinkError(f"{product} setup: cannot reach {where}: {redact(exc)}") from None


def setup_elasticsearch(cfg: config.ElasticsearchSink, client: Elasticsearch | None = None) -> list[str]:
    """Install what is missing, update what differs; returns one line per template saying which."""
    cluster = cluster_for(cfg, client)
    try:
        with setup_errors("elasticsearch", cluster.where, redactor_for(cfg)):
            return install_templates(cluster, templates_for(cfg))
    finally:
        if client is None:
            cluster.close()
