"""The OpenSearch sink: bulk indexing (forwarder.sinks.bulk) through opensearch-py.

The Elasticsearch client refuses an OpenSearch cluster (it checks the product), so this sink has
its own client: basic auth from the environment or a file, or AWS SigV4 for Amazon OpenSearch
Service (``es``) and OpenSearch Serverless (``aoss``) with the boto3 chain's credentials.

``flat_object`` has no ``ignore_above``: a value longer than Lucene's term limit (32766 bytes)
refuses its whole document. Such a document is sent once more with that object moved, unchanged,
to ``aws.cloudtrail.unindexed`` (kept in ``_source``, not indexed), as es_document does for a
value its mapping cannot take.
"""

from __future__ import annotations

import base64
import re
from functools import cache
from typing import Any

import orjson
from opensearchpy import JSONSerializer, OpenSearch, Urllib3AWSV4SignerAuth
from opensearchpy.exceptions import ConnectionError as NoAnswer
from opensearchpy.exceptions import TransportError

from forwarder import config
from forwarder.catalogue import load_catalogue
from forwarder.es_templates import Templates, build_templates, index_patterns, ism_policy
from forwarder.sinks import tls
from forwarder.sinks.base import SinkFatal
from forwarder.sinks.bulk import (BULK_FILTER, BulkSink, ClientCluster, HttpError, Item, Unreachable, bulk_answer,
                                  item_error, secret)
from forwarder.sinks.es_document import UNINDEXED
from forwarder.sinks.redact import Redactor

SETUP_HINT = "run `forwarder setup opensearch --config FILE`"
# OpenSearch names the flat_object's own subfield in the refusal: field="requestParameters._value"
IMMENSE_TERM = re.compile(r'immense term in field="(?P<field>[^"]+?)\._value(?:AndPath)?"')


class _Orjson(JSONSerializer):
    """opensearch-py's JSON, parsed and written by orjson; a bulk answer that says every item was
    taken is not read further."""

    def loads(self, s: str) -> Any:
        return bulk_answer(s) or orjson.loads(s)

    def dumps(self, data: Any) -> Any:
        return data if isinstance(data, str | bytes) else orjson.dumps(data)


def _aws_credentials(sigv4: config.AwsSigV4) -> tuple[Any, str]:
    """(the boto3 chain's credentials, the region) for signing; SinkFatal when either is missing."""
    import boto3

    session = boto3.Session(region_name=sigv4.region) if sigv4.region else boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise SinkFatal("opensearch sink: aws_sigv4 is set but the boto3 chain found no AWS credentials "
                        "(environment, profile, container or instance role)")
    region = sigv4.region or session.region_name
    if not region:
        raise SinkFatal("opensearch sink: aws_sigv4 needs a region: set aws_sigv4.region or AWS_REGION")
    return credentials, region


def build_client(cfg: config.OpenSearchSink) -> tuple[OpenSearch, Redactor]:
    """A client for ``cfg`` and the redactor of its secrets (read here and going nowhere else)."""
    kwargs: dict[str, Any] = {
        "hosts": cfg.hosts,
        "timeout": cfg.request_timeout_seconds,
        # The sink retries with backoff; retries inside the client would stack.
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": cfg.verify_tls,
        "serializer": _Orjson(),
    }
    if cfg.ca_file is not None:
        kwargs["ca_certs"] = str(cfg.ca_file)
    if not cfg.verify_tls:
        kwargs["ssl_show_warn"] = False
    secrets: list[str] = []
    if cfg.aws_sigv4 is not None:
        credentials, region = _aws_credentials(cfg.aws_sigv4)
        frozen = credentials.get_frozen_credentials()
        secrets += [value for value in (frozen.secret_key, frozen.token) if value]
        kwargs["http_auth"] = Urllib3AWSV4SignerAuth(credentials, region, cfg.aws_sigv4.service)
    elif cfg.username is not None:
        password = secret(cfg.password, "opensearch") or ""
        # As given, and as the Authorization header carries it (an error may quote the header).
        secrets += [password, base64.b64encode(f"{cfg.username}:{password}".encode()).decode()]
        kwargs["http_auth"] = (cfg.username, password)
    return OpenSearch(**kwargs), Redactor(secrets)


def templates_for(cfg: config.OpenSearchSink) -> Templates:
    return build_templates(
        name=cfg.template_name,
        patterns=_patterns(cfg),
        data_stream=bool(cfg.data_stream),
        dead_letter_index=cfg.dead_letter_index,
        product="opensearch",
    )


def _patterns(cfg: config.OpenSearchSink) -> list[str]:
    return [cfg.data_stream] if cfg.data_stream else index_patterns(cfg.index)


def policy_for(cfg: config.OpenSearchSink) -> dict[str, Any] | None:
    """The ISM policy `forwarder setup opensearch` installs, when the sink asks for one."""
    ism = cfg.ism
    if ism is None:
        return None
    return ism_policy(_patterns(cfg), ism.delete_after, ism.rollover_after if cfg.data_stream else None,
                      ism.rollover_size if cfg.data_stream else None)


class OsCluster(ClientCluster):
    """opensearch-py's calls, its errors as ``HttpError`` and ``Unreachable``."""

    client: OpenSearch
    errors = (TransportError,)

    def translate(self, exc: Exception) -> HttpError | Unreachable:
        assert isinstance(exc, TransportError)
        if isinstance(exc, NoAnswer):  # refused, reset, timed out, TLS: no status
            return Unreachable(f"{type(exc).__name__}: {exc.error}", tls.certificate_refused(exc))
        status = exc.status_code if isinstance(exc.status_code, int) else 500
        return HttpError(status, exc.info, f"{status} {exc.error}: {exc.info}")

    def bulk(self, body: bytes) -> dict[str, Any]:
        return self.call(lambda: self.client.bulk(body=body, filter_path=BULK_FILTER))

    # A 404 is an answer here, not an error (the client would log it as a failed request).

    def index_template(self, name: str) -> dict[str, Any] | None:
        answer = self.call(lambda: self.client.indices.get_index_template(name=name, ignore=404))
        return dict(answer["index_templates"][0]["index_template"]) if "index_templates" in answer else None

    def component_template(self, name: str) -> dict[str, Any] | None:
        answer = self.call(lambda: self.client.cluster.get_component_template(name=name, ignore=404))
        return dict(answer["component_templates"][0]["component_template"]) if "component_templates" in answer else None

    def ism_policy(self, policy_id: str) -> dict[str, Any] | None:
        """GET _plugins/_ism/policies/ID: the policy with its ``_seq_no`` and ``_primary_term``, or None."""
        answer = self.call(lambda: self.client.transport.perform_request(
            "GET", f"/_plugins/_ism/policies/{policy_id}", params={"ignore": 404}))
        return answer if "policy" in answer else None

    def put_ism_policy(self, policy_id: str, body: dict[str, Any], installed: dict[str, Any] | None) -> None:
        # An update names the version it replaces (ISM refuses a PUT over a policy without it).
        params = {} if installed is None else {"if_seq_no": installed["_seq_no"], "if_primary_term": installed["_primary_term"]}
        self.call(lambda: self.client.transport.perform_request(
            "PUT", f"/_plugins/_ism/policies/{policy_id}", params=params, body=body))


def cluster_for(cfg: config.OpenSearchSink, client: OpenSearch | None = None) -> tuple[OsCluster, Redactor]:
    built, redact = build_client(cfg) if client is None else (client, Redactor(()))
    return OsCluster(built, ", ".join(cfg.hosts)), redact


@cache
def _flat_objects() -> frozenset[str]:
    return frozenset(spec.name for spec in load_catalogue().group("cloudtrail") if spec.type == "flattened")


def without_object(body: bytes, path: str) -> bytes | None:
    """``body`` with the object at ``path`` moved to aws.cloudtrail.unindexed, or None if it has none."""
    document = orjson.loads(body)
    *parents, leaf = path.split(".")
    node = document
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or leaf not in node:
        return None
    target = document.setdefault("aws", {}).setdefault("cloudtrail", {}).setdefault(UNINDEXED, {})
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = node.pop(leaf)
    return orjson.dumps(document)


class OpenSearchSink(BulkSink):
    """Indexes documents into OpenSearch; constructed from ``config.OpenSearchSink``."""

    name = "opensearch"
    setup_hint = SETUP_HINT

    def __init__(self, cfg: config.OpenSearchSink, client: OpenSearch | None = None) -> None:
        cluster, redact = cluster_for(cfg, client)
        self.client = cluster.client
        super().__init__(cfg, cluster, redact, templates_for(cfg))

    def rework(self, item: Item, info: dict[str, Any]) -> bytes | None:
        error = item_error(info)
        found = IMMENSE_TERM.search(str(error.get("reason"))) if isinstance(error, dict) else None
        if found is None or found["field"] not in _flat_objects() or item.reworked >= len(_flat_objects()):
            return None
        return without_object(item.body, found["field"])
