"""`forwarder package kibana`: the Kibana content pack, in Kibana 8.x's export formats.

- saved objects (Stack Management > Saved objects > Import, or POST /api/saved_objects/_import):
  a data view over the forwarder's indices, saved searches for triage (by chain origin, by role,
  by external caller), one Lens visualisation per dashboard panel (forwarder/package/panels.py)
  and the dashboard, whose events panel shows what a click on any chart filters to;
- detection rules (Security > Rules > Import, or POST /api/detection_engine/rules/_import): the
  Sigma rules converted to Lucene, as `forwarder sigma convert --format siem_rule_ndjson` gives them.

Object ids are fixed, so that importing again (with overwrite) updates instead of duplicating.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from forwarder import __version__
from forwarder.catalogue import load_catalogue
from forwarder.config import Config, KibanaContent
from forwarder.package.panels import Panel, Syntax, Value, condition, label, panels
from forwarder.rules.convert import convert, generated_rules
from forwarder.rules.pipelines import field_names

DATA_VIEW_ID = "forwarder-assumerole"
DASHBOARD_ID = "forwarder-assumerole-overview"
EVENTS_SEARCH_ID = "forwarder-assumerole-by-role"
# The versions the objects' shapes are those of (Kibana migrates them forward on import).
CORE_MIGRATION = "8.8.0"
TYPE_MIGRATION = {"index-pattern": "8.0.0", "search": "8.0.0", "lens": "8.9.0", "dashboard": "8.9.0"}
PANEL_VERSION = "8.9.0"
LENS_DATA_TYPES = {"keyword": "string", "boolean": "boolean", "long": "number", "ip": "ip", "date": "date"}


@dataclass(frozen=True)
class Triage:
    id: str
    title: str
    query: str  # KQL
    columns: tuple[str, ...]
    description: str


TRIAGE = (
    Triage("forwarder-assumerole-by-origin", "AssumeRole triage: by chain origin", "assumerole.chain.origin.arn: *",
           ("assumerole.chain.origin.arn", "eventName", "eventSource", "userIdentity.sessionContext.sessionIssuer.arn",
            "sourceIPAddress", "assumerole.chain.depth"),
           "Every call whose chain origin is known: filter assumerole.chain.origin.arn to follow one person or system "
           "through every role it reached."),
    Triage(EVENTS_SEARCH_ID, "AssumeRole triage: by role", "assumerole.role.arn: * and assumerole.primary: true",
           ("assumerole.role.arn", "assumerole.caller.arn", "assumerole.chain.origin.arn", "eventName",
            "assumerole.failed", "assumerole.error_code", "sourceIPAddress"),
           "STS credential issuances, one copy of each call: who assumed which role, from where, and whether it failed."),
    Triage("forwarder-assumerole-external-callers", "AssumeRole triage: external callers",
           "assumerole.caller.external: true",
           ("assumerole.caller.arn", "assumerole.caller.account_id", "assumerole.role.arn", "eventName", "assumerole.failed",
            "sourceIPAddress", "userAgent"),
           "Assumptions by callers from accounts outside the organization and the approved partners."),
)


KQL = Syntax(exists="{field}: *", equals="{field}: {value}", any_of="{field}: ({values})", separator=" or ")


def kql_condition(name: str, value: Value) -> str:
    return condition(KQL, field_names("elasticsearch").get(name, name), value)


def panel_query(panel: Panel) -> str:
    return " and ".join(kql_condition(name, value) for name, value in panel.where)


def _saved_object(kind: str, object_id: str, attributes: dict[str, Any], references: list[dict[str, str]]) -> dict[str, Any]:
    return {"attributes": attributes, "coreMigrationVersion": CORE_MIGRATION, "id": object_id, "managed": False,
            "references": references, "type": kind, "typeMigrationVersion": TYPE_MIGRATION[kind]}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def data_view(settings: KibanaContent) -> dict[str, Any]:
    return _saved_object("index-pattern", DATA_VIEW_ID, {
        "title": settings.index_pattern, "name": "CloudTrail AssumeRole (forwarder)", "timeFieldName": "@timestamp",
        "fields": "[]", "fieldAttrs": "{}", "fieldFormatMap": "{}", "runtimeFieldMap": "{}", "sourceFilters": "[]",
        "typeMeta": "{}", "allowNoIndex": True,
    }, [])


def saved_search(triage: Triage) -> dict[str, Any]:
    source = {"query": {"query": triage.query, "language": "kuery"}, "filter": [],
              "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"}
    return _saved_object("search", triage.id, {
        "title": triage.title, "description": triage.description, "columns": list(triage.columns),
        "sort": [["@timestamp", "desc"]], "grid": {}, "hideChart": False, "isTextBasedQuery": False,
        "timeRestore": False, "kibanaSavedObjectMeta": {"searchSourceJSON": _json(source)},
    }, [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": DATA_VIEW_ID}])


def _terms(field: str, size: int) -> dict[str, Any]:
    spec = next(spec for spec in load_catalogue().fields if spec.name == field)
    return {"label": f"Top values of {field}", "dataType": LENS_DATA_TYPES[spec.type], "operationType": "terms",
            "scale": "ordinal", "sourceField": field, "isBucketed": True,
            "params": {"size": size, "orderBy": {"type": "column", "columnId": "count"}, "orderDirection": "desc",
                       "otherBucket": True, "missingBucket": False}}


COUNT = {"label": "Count of records", "dataType": "number", "operationType": "count", "isBucketed": False,
         "scale": "ratio", "sourceField": "___records___", "params": {"emptyAsNull": True}}


def lens_id(panel: Panel) -> str:
    return f"forwarder-assumerole-{panel.key}"


def lens(panel: Panel) -> dict[str, Any]:
    """The panel as a Lens visualisation: a stacked bar chart over time, or a table of top values."""
    by = [label(name) for name in panel.by]
    columns: dict[str, Any] = {"count": COUNT}
    if panel.chart == "timeline":
        columns["time"] = {"label": "@timestamp", "dataType": "date", "operationType": "date_histogram",
                           "scale": "interval", "sourceField": "@timestamp", "isBucketed": True,
                           "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False}}
        columns[by[0]] = _terms(panel.by[0], 10)
        order = [by[0], "time", "count"]
        visualization: dict[str, Any] = {
            "legend": {"isVisible": True, "position": "right"}, "valueLabels": "hide",
            "preferredSeriesType": "bar_stacked",
            "layers": [{"layerId": "layer1", "layerType": "data", "seriesType": "bar_stacked", "xAccessor": "time",
                        "splitAccessor": by[0], "accessors": ["count"]}],
        }
        kind = "lnsXY"
    else:
        for name, column in zip(panel.by, by):
            columns[column] = _terms(name, 10 if panel.chart == "top" else 20)
        order = [*by, "count"]
        visualization = {"layerId": "layer1", "layerType": "data",
                         "columns": [{"columnId": column} for column in order]}
        kind = "lnsDatatable"
    state = {
        "datasourceStates": {"formBased": {"layers": {"layer1": {
            "columns": columns, "columnOrder": order, "incompleteColumns": {}}}}},
        "visualization": visualization,
        "query": {"query": panel_query(panel), "language": "kuery"},
        "filters": [], "internalReferences": [], "adHocDataViews": {},
    }
    return _saved_object("lens", lens_id(panel), {
        "title": panel.title, "description": "", "visualizationType": kind, "state": state,
    }, [{"type": "index-pattern", "id": DATA_VIEW_ID, "name": "indexpattern-datasource-layer-layer1"}])


def dashboard(catalogue_panels: tuple[Panel, ...]) -> dict[str, Any]:
    """Two charts a row, then the events panel: a click on a chart filters the dashboard, events included."""
    entries: list[tuple[str, str, dict[str, int]]] = []
    for index, panel in enumerate(catalogue_panels):
        entries.append(("lens", lens_id(panel), {"x": 24 * (index % 2), "y": 15 * (index // 2), "w": 24, "h": 15}))
    entries.append(("search", EVENTS_SEARCH_ID, {"x": 0, "y": 15 * ((len(catalogue_panels) + 1) // 2), "w": 48, "h": 20}))
    panels_json, references = [], []
    for number, (kind, object_id, grid) in enumerate(entries, 1):
        index = f"p{number}"
        panels_json.append({"version": PANEL_VERSION, "type": kind, "gridData": {**grid, "i": index},
                            "panelIndex": index, "embeddableConfig": {"enhancements": {}},
                            "panelRefName": f"panel_{index}"})
        references.append({"name": f"{index}:panel_{index}", "type": kind, "id": object_id})
    return _saved_object("dashboard", DASHBOARD_ID, {
        "title": "AssumeRole: who stands behind role assumptions",
        "description": "Role assumptions as the CloudTrail AssumeRole forwarder enriched them (one copy of each call). "
                       "Click a bar or a row to filter the dashboard; the events panel shows the events behind it.",
        "panelsJSON": _json(panels_json),
        "optionsJSON": _json({"useMargins": True, "syncColors": False, "syncCursor": True, "syncTooltips": False,
                              "hidePanelTitles": False}),
        "timeRestore": True, "timeFrom": "now-24h", "timeTo": "now",
        "refreshInterval": {"pause": True, "value": 60000},
        "kibanaSavedObjectMeta": {"searchSourceJSON": _json({"query": {"query": "", "language": "kuery"}, "filter": []})},
    }, references)


def saved_objects(settings: KibanaContent) -> list[dict[str, Any]]:
    """The saved objects, each after the objects it references (as Kibana exports them)."""
    catalogue_panels = panels()
    return [data_view(settings), *(saved_search(t) for t in TRIAGE), *(lens(p) for p in catalogue_panels),
            dashboard(catalogue_panels)]


def detection_rules(config: Config, settings: KibanaContent) -> list[dict[str, Any]]:
    """The configuration's Sigma rules as detection-engine rules (queries and threshold rules)."""
    with generated_rules(config) as rules:
        return [out for form in settings.forms
                for converted in convert(rules / form, "lucene", "siem_rule_ndjson", [settings.index_pattern]).results
                for out in converted.outputs]


def ndjson(objects: list[dict[str, Any]], summary: dict[str, Any]) -> bytes:
    """Kibana's export file: one object a line, then the export's summary line."""
    return b"".join(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) + b"\n" for obj in [*objects, summary])


def saved_objects_file(objects: list[dict[str, Any]]) -> bytes:
    return ndjson(objects, {"excludedObjects": [], "excludedObjectsCount": 0, "exportedCount": len(objects),
                            "missingRefCount": 0, "missingReferences": []})


def rules_file(rules: list[dict[str, Any]]) -> bytes:
    return ndjson(rules, {"exported_count": len(rules), "exported_rules_count": len(rules), "missing_rules": [],
                          "missing_rules_count": 0, "exported_exception_list_count": 0,
                          "exported_exception_list_item_count": 0, "missing_exception_list_item_count": 0,
                          "missing_exception_list_items": [], "missing_exception_lists": [],
                          "missing_exception_lists_count": 0, "excluded_action_connection_count": 0,
                          "excluded_action_connections": [], "exported_action_connector_count": 0,
                          "missing_action_connection_count": 0, "missing_action_connections": []})


def build(config: Config, out: Path) -> Iterator[Path]:
    """Write the two import files under ``out`` (for the configuration's kibana section, else the
    default index pattern); yields each path."""
    settings = config.kibana or KibanaContent()
    out.mkdir(parents=True, exist_ok=True)
    files = {
        f"cloudtrail-assumerole-kibana-{__version__}.ndjson": saved_objects_file(saved_objects(settings)),
        f"cloudtrail-assumerole-detection-rules-{__version__}.ndjson": rules_file(detection_rules(config, settings)),
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
        yield out / name
