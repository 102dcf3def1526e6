"""`forwarder setup elasticsearch`: install or update the index templates, idempotently."""

from __future__ import annotations

from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch, NotFoundError

from forwarder import config
from forwarder.sinks.base import SinkError, SinkFatal
from forwarder.sinks.elasticsearch import (
    build_client,
    certificate_fatal,
    redactor_for,
    templates_for,
    transport_reason,
    where,
)
from forwarder.sinks.tls import certificate_refused


def _installed(client: Elasticsearch, kind: str, name: str) -> dict[str, Any] | None:
    """The installed template's body, or None when there is none."""
    try:
        if kind == "component":
            answer = client.cluster.get_component_template(name=name)
            return dict(answer["component_templates"][0]["component_template"])
        answer = client.indices.get_index_template(name=name)
        return dict(answer["index_templates"][0]["index_template"])
    except NotFoundError:
        return None


def setup_elasticsearch(cfg: config.ElasticsearchSink, client: Elasticsearch | None = None) -> list[str]:
    """Install what is missing, update what differs; returns one line per template saying which."""
    templates = templates_for(cfg)
    own_client = client is None
    client = client or build_client(cfg)
    done: list[str] = []
    try:
        # Components first: an index template may only name components that exist.
        for kind, bodies in (("component", templates.component), ("index", templates.index)):
            for name, body in bodies.items():
                installed = _installed(client, kind, name)
                if installed is not None and (installed.get("_meta") or {}).get("digest") == body["_meta"]["digest"]:
                    done.append(f"{kind} template {name}: unchanged")
                    continue
                if kind == "component":
                    client.cluster.put_component_template(name=name, body=body)
                else:
                    client.indices.put_index_template(name=name, body=body)
                done.append(f"{kind} template {name}: {'created' if installed is None else 'updated'}")
    except ApiError as exc:
        message = redactor_for(cfg)(f"elasticsearch setup: {exc.status_code} {exc.message}: {exc.body}")
        raise (SinkFatal if exc.status_code in (400, 401, 403) else SinkError)(message) from None
    except TransportError as exc:  # connection refused, TLS, DNS: say where, not a traceback
        redact = redactor_for(cfg)
        if certificate_refused(exc):
            raise SinkFatal(redact(certificate_fatal(where(cfg), exc))) from None
        raise SinkError(f"elasticsearch setup: cannot reach {where(cfg)}: {redact(transport_reason(exc))}") from None
    finally:
        if own_client:
            client.close()
    return done
