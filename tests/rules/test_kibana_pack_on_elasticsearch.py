"""The Kibana content pack on the real Elasticsearch node: every field it uses is in the index
template as installed there, every detection rule's query runs and finds what its Sigma rule must,
and every dashboard panel's conditions find the demo story's events."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from forwarder.config import Config, KibanaContent
from forwarder.document import Document
from forwarder.package import kibana
from forwarder.package.panels import EXISTS, panels
from forwarder.rules.convert import load_rules
from forwarder.rules.pipelines import open_object_keys
from kibana_objects import fields_used

from test_rules_on_elasticsearch import _found, demo_expected

pytestmark = pytest.mark.elasticsearch


def _mapped(properties: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for name, body in properties.items():
        paths.add(prefix + name)
        paths |= _mapped(body.get("properties", {}), f"{prefix}{name}.")
    return paths


def test_every_field_the_pack_uses_is_in_the_installed_template(indexed: dict[str, Any], demo_config: Config) -> None:
    space = indexed["demo"]
    settings = KibanaContent(index_pattern=f"{space.prefix}-ct-*")
    mappings = space.client.indices.get_mapping(index=settings.index_pattern).body
    installed = set.intersection(*(_mapped(m["mappings"]["properties"]) for m in mappings.values()))
    used = fields_used(kibana.saved_objects(settings), kibana.detection_rules(demo_config, settings))
    inside_objects = [re.compile(pattern) for pattern in open_object_keys()]
    missing = sorted(f for f in used if f not in installed and not any(p.match(f) for p in inside_objects))
    assert not missing, missing


def test_every_detection_rule_query_runs_and_finds_what_its_rule_must(indexed: dict[str, Any], demo_rules: Path,
                                                                      demo_config: Config,
                                                                      demo_docs: list[Document]) -> None:
    space = indexed["demo"]
    expected = demo_expected(demo_docs)
    names = {str(rule.id): rule for rule in load_rules(demo_rules / "enriched").rules}
    rules = kibana.detection_rules(demo_config, KibanaContent(index_pattern=f"{space.prefix}-ct-*"))
    for rule in rules:
        sigma = names[rule["rule_id"]]
        # A threshold rule's query is its base rule's: it must find the events the burst counts.
        name = sigma.rules[0].rule.name if rule["type"] == "threshold" else sigma.name
        assert _found(space, rule["query"]) == expected[name], name


def _lucene(name: str, value: object) -> str:
    if value is EXISTS:
        return f"{name}:*"
    return f"{name}:{str(value).lower() if isinstance(value, bool) else value}"


def test_every_panel_finds_the_demo_storys_events(indexed: dict[str, Any]) -> None:
    space = indexed["demo"]
    for panel in panels():
        if panel.key == "baseline-findings":
            continue  # the demo configuration learns no baseline
        found = _found(space, " AND ".join(_lucene(name, value) for name, value in panel.where))
        assert found, panel.title
