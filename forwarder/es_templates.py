"""The Elasticsearch and OpenSearch index templates, generated from the field catalogue.

Component templates (settings, then one per catalogue group) and a composable index template
over them; one more index template for the dead-letter index. OpenSearch gets the same, with its
own types: ``flat_object`` where Elasticsearch has ``flattened`` (OpenSearch 2.7 and later), and
an Index State Management policy on request (``ism_policy``). The defaults are checked in under
mappings/elasticsearch/ and mappings/opensearch/, and a test fails when they drift from the catalogue:

    python -m forwarder.es_templates --write     # regenerate mappings/elasticsearch/ and mappings/opensearch/
    python -m forwarder.es_templates --check     # exit 1 when they differ
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from forwarder.catalogue import Catalogue, FieldSpec, load_catalogue
from forwarder.resources import project_dir

DEFAULT_NAME = "cloudtrail-assumerole"
DEFAULT_DEAD_LETTER_INDEX = "cloudtrail-assumerole-dead-letter"
CHECKED_IN = project_dir("mappings") / "elasticsearch"
Product = Literal["elasticsearch", "opensearch"]
PRODUCTS: tuple[Product, ...] = ("elasticsearch", "opensearch")
MANAGED_BY = "cloudtrail-assumerole-forwarder"
# Longest keyword indexed: 8191 characters of up to 4 UTF-8 bytes stay under Lucene's
# 32766-byte term limit, so no value (a 40 KB requestParameters string included) fails a document.
IGNORE_ABOVE = 8191
# CloudTrail nests deeper than flattened's default of 20 in a few services' requestParameters.
FLATTENED_DEPTH_LIMIT = 100
MAPPED_GROUPS = ("cloudtrail", "ecs", "assumerole")

SETTINGS_TEMPLATE: dict[str, Any] = {
    "template": {
        "settings": {
            # A value of the wrong type (a date that is not one, "True" for a boolean) is left
            # unindexed and listed in _ignored instead of refusing the whole document.
            "index.mapping.ignore_malformed": True,
        },
        "mappings": {
            # Keys the catalogue does not list (new CloudTrail keys, exporters' extras) stay in
            # _source without a mapping: they can never conflict or exhaust the field limit.
            "dynamic": False,
            "date_detection": False,
        },
    }
}


@dataclass(frozen=True, slots=True)
class Templates:
    component: dict[str, dict[str, Any]]  # name -> body for PUT _component_template/{name}
    index: dict[str, dict[str, Any]]  # name -> body for PUT _index_template/{name}

    def files(self) -> dict[str, dict[str, Any]]:
        """File name -> body, as checked in under mappings/elasticsearch/."""
        out = {f"component-{name.replace('@', '-')}.json": body for name, body in self.component.items()}
        out.update({f"index-{name}.json": body for name, body in self.index.items()})
        return out


def checked_in(product: Product) -> Path:
    return CHECKED_IN.parent / product


def field_mapping(spec: FieldSpec, product: Product = "elasticsearch") -> dict[str, Any]:
    if spec.type == "keyword":
        return {"type": "keyword", "ignore_above": IGNORE_ABOVE}
    if spec.type == "flattened" and product == "opensearch":
        # flat_object takes no parameters: no depth limit to raise, and no ignore_above, so a
        # value over Lucene's term limit refuses its document (the sink then moves that object
        # to aws.cloudtrail.unindexed and sends the document again: forwarder.sinks.opensearch).
        return {"type": "flat_object"}
    if spec.type == "flattened":
        return {"type": "flattened", "ignore_above": IGNORE_ABOVE, "depth_limit": FLATTENED_DEPTH_LIMIT}
    if spec.type == "unindexed":
        return {"type": "object", "enabled": False}
    if spec.type == "date" and spec.format:
        return {"type": "date", "format": spec.format}
    return {"type": spec.type}


def properties(specs: tuple[FieldSpec, ...], product: Product = "elasticsearch") -> dict[str, Any]:
    """Nested ``properties`` from dotted field names."""
    root: dict[str, Any] = {}
    for spec in specs:
        *parents, leaf = spec.name.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[leaf] = field_mapping(spec, product)
    return root


def index_patterns(index: str) -> list[str]:
    """``cloudtrail-assumerole-{%Y.%m.%d}`` -> ``cloudtrail-assumerole-*``."""
    head, brace, _ = index.partition("{")
    return [head + "*"] if brace else [index]


def _digest(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def _managed(body: dict[str, Any], version: int) -> dict[str, Any]:
    """``body`` with the version and the digest by which setup and the sink recognise it."""
    return {**body, "version": version, "_meta": {"managed_by": MANAGED_BY, "digest": _digest(body)}}


def build_templates(
    name: str = DEFAULT_NAME,
    patterns: list[str] | None = None,
    data_stream: bool = False,
    dead_letter_index: str | None = DEFAULT_DEAD_LETTER_INDEX,
    catalogue: Catalogue | None = None,
    product: Product = "elasticsearch",
) -> Templates:
    catalogue = catalogue or load_catalogue()
    component = {f"{name}@settings": _managed(SETTINGS_TEMPLATE, catalogue.version)}
    for group in MAPPED_GROUPS:
        mappings = {"template": {"mappings": {"properties": properties(catalogue.group(group), product)}}}
        component[f"{name}@{group}"] = _managed(mappings, catalogue.version)
    main: dict[str, Any] = {
        "index_patterns": patterns or [f"{name}-*"],
        "composed_of": list(component),
        "priority": 200,
    }
    if data_stream:
        main["data_stream"] = {}
    # The digest covers the components too, so the sink can tell an outdated install.
    parts = [body["_meta"]["digest"] for body in component.values()]
    index = {name: {**main, "version": catalogue.version, "_meta": {"managed_by": MANAGED_BY, "digest": _digest([main, parts])}}}
    if dead_letter_index:
        dead: dict[str, Any] = {
            "index_patterns": [dead_letter_index],
            "composed_of": [f"{name}@settings"],
            # Above the main template, whose pattern may cover the dead-letter name too.
            "priority": 300,
            "template": {"mappings": {"properties": properties(catalogue.group("dead_letter"), product)}},
        }
        index[f"{name}-dead-letter"] = _managed(dead, catalogue.version)
    return Templates(component=component, index=index)


def ism_policy(patterns: list[str], delete_after: str, rollover_after: str | None = None,
               rollover_size: str | None = None) -> dict[str, Any]:
    """An OpenSearch Index State Management policy for the indices of ``patterns``: a rollover by
    age or size when one is given (data streams: a dated index is rolled over by its name), then
    deletion ``delete_after`` their creation. Its description carries the digest setup compares."""
    rollover = {key: value for key, value in (("min_index_age", rollover_after), ("min_size", rollover_size)) if value}
    policy: dict[str, Any] = {
        "default_state": "hot",
        "states": [
            {
                "name": "hot",
                "actions": [{"rollover": rollover}] if rollover else [],
                "transitions": [{"state_name": "delete", "conditions": {"min_index_age": delete_after}}],
            },
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
        ],
        # New indices of the patterns (a data stream's backing indices, by the stream's name) get it.
        "ism_template": [{"index_patterns": patterns, "priority": 100}],
    }
    policy["description"] = f"{MANAGED_BY}: delete after {delete_after} (digest {_digest(policy)})"
    return {"policy": policy}


def render(body: dict[str, Any]) -> str:
    return json.dumps(body, indent=2, sort_keys=False) + "\n"


def drift(directory: Path = CHECKED_IN, templates: Templates | None = None) -> list[str]:
    """The checked-in files that differ from what the catalogue generates (empty: in step)."""
    expected = (templates or build_templates(product=_product(directory))).files()
    problems = []
    for file_name, body in expected.items():
        path = directory / file_name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text() != render(body):
            problems.append(f"{path}: differs from the catalogue")
    problems += [f"{path}: not generated from the catalogue" for path in sorted(directory.glob("*.json")) if path.name not in expected]
    return problems


def _product(directory: Path) -> Product:
    return "opensearch" if directory == checked_in("opensearch") else "elasticsearch"


def write(directory: Path = CHECKED_IN) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, body in build_templates(product=_product(directory)).files().items():
        path = directory / file_name
        path.write_text(render(body))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m forwarder.es_templates", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help=f"regenerate {CHECKED_IN.parent}/{{{','.join(PRODUCTS)}}}")
    action.add_argument("--check", action="store_true", help="exit 1 when the checked-in templates drift")
    args = parser.parse_args(argv)
    if args.write:
        for path in (path for product in PRODUCTS for path in write(checked_in(product))):
            print(path)
        return 0
    problems = [problem for product in PRODUCTS for problem in drift(checked_in(product))]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
