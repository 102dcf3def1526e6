"""The Kibana content pack against Kibana 8.x's published shapes: valid export NDJSON, every
reference resolving, every field catalogued and in the index template, the detection rules the
Sigma rules as `sigma convert` writes them, the same panels as the Splunk dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from forwarder.catalogue import load_catalogue
from forwarder.cli import main
from forwarder.config import load_config
from forwarder.package import kibana
from forwarder.package.panels import panels
from forwarder.rules.convert import convert, generated_rules, load_rules
from forwarder.rules.pipelines import open_object_keys
from kibana_objects import fields_used
from paths import DEMO_CONFIG, REPO

TEMPLATES = REPO / "mappings" / "elasticsearch"
EXPORT_KEYS = {"attributes", "coreMigrationVersion", "id", "managed", "references", "type", "typeMigrationVersion"}


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("kibana")
    assert main(["package", "kibana", "--config", str(DEMO_CONFIG), "--out", str(out)]) == 0
    objects_file, = out.glob("cloudtrail-assumerole-kibana-*.ndjson")
    rules_file, = out.glob("cloudtrail-assumerole-detection-rules-*.ndjson")
    objects, rules = _lines(objects_file, "exportedCount"), _lines(rules_file, "exported_count")
    return objects, rules


def _lines(path: Path, summary_key: str) -> list[dict[str, Any]]:
    """The file's objects, after checking it is NDJSON ending in the export's summary line."""
    data = path.read_bytes()
    assert data.endswith(b"\n") and b"\n\n" not in data
    lines = [orjson.loads(line) for line in data.splitlines()]
    *objects, summary = lines
    assert summary[summary_key] == len(objects)
    assert not any(summary_key in obj for obj in objects)
    return objects


def template_fields() -> set[str]:
    """Every property path of the index template the forwarder installs (mappings/elasticsearch)."""
    paths: set[str] = set()

    def walk(properties: dict[str, Any], prefix: str) -> None:
        for name, body in properties.items():
            paths.add(prefix + name)
            walk(body.get("properties", {}), f"{prefix}{name}.")

    for path in TEMPLATES.glob("component-*.json"):
        walk(json.loads(path.read_text()).get("template", {}).get("mappings", {}).get("properties", {}), "")
    return paths


def known(field: str, catalogued: set[str], template: set[str]) -> bool:
    """In the catalogue and the template, or a key inside one of the flattened CloudTrail objects."""
    inside_object = any(re.match(pattern, field) for pattern in open_object_keys())
    return inside_object or (field in catalogued and field in template)


def test_saved_objects_are_kibana_8_export_objects(pack: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    objects, _ = pack
    assert all(set(obj) == EXPORT_KEYS for obj in objects)
    assert len({(obj["type"], obj["id"]) for obj in objects}) == len(objects)
    kinds = [obj["type"] for obj in objects]
    assert kinds.count("index-pattern") == 1 and kinds.count("dashboard") == 1 and kinds.count("search") == 3
    assert kinds.count("lens") == len(panels())
    for obj in objects:  # the attributes Kibana keeps as JSON strings are JSON
        attributes = obj["attributes"]
        for key in ("panelsJSON", "optionsJSON", "fields", "fieldAttrs", "fieldFormatMap", "runtimeFieldMap",
                    "sourceFilters", "typeMeta"):
            if key in attributes:
                json.loads(attributes[key])
        if "kibanaSavedObjectMeta" in attributes:
            json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])


def test_every_reference_resolves(pack: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    objects, _ = pack
    present = {(obj["type"], obj["id"]) for obj in objects}
    seen_before: set[tuple[str, str]] = set()
    for obj in objects:
        names = {ref["name"] for ref in obj["references"]}
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in present, (obj["id"], ref)
            assert (ref["type"], ref["id"]) in seen_before, f"{obj['id']} comes before {ref['id']}"
        attributes = obj["attributes"]
        if obj["type"] == "dashboard":
            for panel in json.loads(attributes["panelsJSON"]):
                assert f"{panel['panelIndex']}:{panel['panelRefName']}" in names
        if obj["type"] == "lens":
            for layer in attributes["state"]["datasourceStates"]["formBased"]["layers"]:
                assert f"indexpattern-datasource-layer-{layer}" in names
        if obj["type"] == "search":
            assert json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])["indexRefName"] in names
        seen_before.add((obj["type"], obj["id"]))


def test_every_field_of_a_panel_search_or_rule_is_catalogued_and_in_the_template(
        pack: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    objects, rules = pack
    catalogued, template = {spec.name for spec in load_catalogue().fields}, template_fields()
    for obj in objects:
        for layer in obj["attributes"].get("state", {}).get("datasourceStates", {}).get("formBased", {}).get("layers", {}).values():
            assert layer["columnOrder"] and set(layer["columnOrder"]) == set(layer["columns"])
    used = fields_used(objects, rules)
    unknown = sorted(name for name in used if not known(name, catalogued, template))
    assert not unknown, unknown
    assert {"assumerole.chain.origin.arn", "assumerole.caller.external", "@timestamp"} <= used


def test_detection_rules_are_the_sigma_rules_as_sigma_convert_writes_them(
        pack: tuple[list[dict[str, Any]], list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    _, rules = pack
    with generated_rules(load_config(DEMO_CONFIG)) as generated:
        expected = [out for c in convert(generated / "enriched", "lucene", "siem_rule_ndjson").results for out in c.outputs]
        assert main(["sigma", "convert", "--target", "lucene", "--format", "siem_rule_ndjson",
                     str(generated / "enriched")]) == 0
        ids = {str(rule.id) for rule in load_rules(generated / "enriched").rules}
    printed = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rules == expected == printed
    # One rule per detection: a correlation's base rule is counted by its threshold rule, not alerted alone.
    assert {rule["rule_id"] for rule in rules} <= ids and len(rules) == len({rule["rule_id"] for rule in rules})
    assert all(rule["index"] == ["cloudtrail-assumerole-*"] for rule in rules)
    assert all(rule["from"] == ("now-1h" if rule["type"] == "query" else "now-600s") for rule in rules)


def test_the_dashboard_has_the_splunk_dashboards_panels(pack: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    from forwarder.package.splunk_app import dashboard_xml

    objects, _ = pack
    lens = {obj["id"]: obj for obj in objects if obj["type"] == "lens"}
    dashboard, = (obj for obj in objects if obj["type"] == "dashboard")
    shown = [ref["id"] for ref in dashboard["references"]]
    assert [lens[i]["attributes"]["title"] for i in shown if i in lens] == [p.title for p in panels()]
    assert all(f"<title>{p.title}</title>" in dashboard_xml(panels()) for p in panels())
    assert shown[-1] == kibana.EVENTS_SEARCH_ID  # the events a click on a chart filters to
    for panel in panels():
        assert lens[kibana.lens_id(panel)]["attributes"]["state"]["query"]["query"] == kibana.panel_query(panel)


def test_the_pack_follows_the_configured_index_pattern(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(DEMO_CONFIG.read_text() + "\nkibana:\n  url: https://kibana.example.com:5601\n"
                      "  api_key: {env: KIBANA_API_KEY}\n  index_pattern: 'logs-cloudtrail.assumerole-*'\n")
    assert main(["package", "kibana", "--config", str(config), "--out", str(tmp_path)]) == 0
    objects = _lines(next(tmp_path.glob("*-kibana-*.ndjson")), "exportedCount")
    rules = _lines(next(tmp_path.glob("*-detection-rules-*.ndjson")), "exported_count")
    assert objects[0]["attributes"]["title"] == "logs-cloudtrail.assumerole-*"
    assert all(rule["index"] == ["logs-cloudtrail.assumerole-*"] for rule in rules)
