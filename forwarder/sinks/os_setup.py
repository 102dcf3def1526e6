"""`forwarder setup opensearch`: the index templates (as for Elasticsearch, with OpenSearch's
types) and, when the sink asks for one, its Index State Management policy; idempotently."""

from __future__ import annotations

import re
from typing import Any

from opensearchpy import OpenSearch

from forwarder import config
from forwarder.sinks.base import SinkFatal
from forwarder.sinks.bulk import HttpError
from forwarder.sinks.es_setup import install_templates, setup_errors
from forwarder.sinks.opensearch import OsCluster, cluster_for, policy_for, templates_for

DIGEST = re.compile(r"\(digest (\w+)\)")


def _digest(policy: dict[str, Any] | None) -> str | None:
    found = DIGEST.search(str(((policy or {}).get("policy") or {}).get("description", "")))
    return found[1] if found else None


def install_policy(cluster: OsCluster, policy_id: str, body: dict[str, Any]) -> str:
    try:
        installed = cluster.ism_policy(policy_id)
    except HttpError as exc:
        if exc.status == 400 and "no handler found" in str(exc):  # the plugin is not there
            raise SinkFatal(f"opensearch setup: {cluster.where} has no Index State Management plugin "
                            "(the ISM API is missing): remove 'ism' from the sink, or install the plugin") from None
        raise
    if installed is not None and _digest(installed) == _digest(body):
        return f"ISM policy {policy_id}: unchanged"
    cluster.put_ism_policy(policy_id, body, installed)
    return f"ISM policy {policy_id}: {'created' if installed is None else 'updated'}"


def setup_opensearch(cfg: config.OpenSearchSink, client: OpenSearch | None = None) -> list[str]:
    """Install what is missing, update what differs; returns one line per template or policy saying which."""
    cluster, redact = cluster_for(cfg, client)
    try:
        with setup_errors("opensearch", cluster.where, redact):
            done = install_templates(cluster, templates_for(cfg))
            policy = policy_for(cfg)
            if policy is not None:
                done.append(install_policy(cluster, cfg.template_name, policy))
            return done
    finally:
        if client is None:
            cluster.close()
