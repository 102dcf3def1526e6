"""The field names a Kibana content pack uses: Lens columns and queries, saved searches' columns and
queries, the data view's time field, detection rules' queries and threshold fields."""

from __future__ import annotations

import json
import re
from typing import Any


def kql_fields(query: str) -> list[str]:
    return re.findall(r"([\w.@]+):", query)


def lucene_fields(query: str) -> list[str]:
    return [name.replace("\\", "") for name in re.findall(r"((?:[\w@]|\\.)(?:[\w.@]|\\.)*):", query)]


def fields_used(objects: list[dict[str, Any]], rules: list[dict[str, Any]]) -> set[str]:
    used: set[str] = set()
    for obj in objects:
        attributes = obj["attributes"]
        if obj["type"] == "lens":
            state = attributes["state"]
            used |= set(kql_fields(state["query"]["query"]))
            for layer in state["datasourceStates"]["formBased"]["layers"].values():
                used |= {c["sourceField"] for c in layer["columns"].values() if c["sourceField"] != "___records___"}
        if obj["type"] == "search":
            used |= set(attributes["columns"]) | {name for name, _ in attributes["sort"]}
            used |= set(kql_fields(json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"]))
        if obj["type"] == "index-pattern":
            used.add(attributes["timeFieldName"])
    for rule in rules:
        used |= set(lucene_fields(rule["query"])) | set(rule.get("threshold", {}).get("field", []))
    return used
