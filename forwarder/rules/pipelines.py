"""pySigma processing pipelines generated from the field catalogue (mappings/fields.yml).

The rules name fields as CloudTrail writes them (``userIdentity.arn``) and as the forwarder adds
them (``assumerole.role.sensitive``). Each pipeline maps those names to the target's, and fails a
rule that names a field the target does not have, instead of emitting a query that silently
matches nothing:

- elasticsearch: raw CloudTrail name -> Elasticsearch field name (``cloudtrail:`` -> ``name:``);
  keys inside the flattened CloudTrail objects (``requestParameters.roleArn``) pass as they are.
- splunk: the JSON names of sourcetype aws:cloudtrail, where fields inside arrays of objects
  are named with ``{}`` (``resources{}.ARN``, ``assumerole.chain.hops{}``).

The generated files live in mappings/sigma/ (``python -m forwarder.rules.pipelines`` rewrites
them; a test fails when they drift from the catalogue).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml
from sigma.processing.pipeline import ProcessingPipeline

from forwarder.catalogue import Catalogue, FieldSpec, load_catalogue
from forwarder.resources import project_dir

CHECKED_IN = project_dir("mappings") / "sigma"
TARGETS = ("elasticsearch", "splunk")
LOGSOURCE = {"type": "logsource", "product": "aws", "service": "cloudtrail"}


def _splunk_name(spec: FieldSpec) -> str:
    if not spec.array:
        return spec.name
    if "." not in spec.name or spec.group == "assumerole":
        return f"{spec.name}{{}}"  # an array of values
    parent, leaf = spec.name.rsplit(".", 1)
    return f"{parent}{{}}.{leaf}"  # a key of the objects in an array


def _fields(catalogue: Catalogue, target: str) -> tuple[dict[str, str], list[str]]:
    """(mapping of rule field names to target names, the names a rule may use)."""
    groups = ("cloudtrail", "cloudtrail_list_keys", "assumerole") + (("ecs",) if target == "elasticsearch" else ())
    mapping: dict[str, str] = {}
    for spec in catalogue.fields:
        if spec.group not in groups:
            continue
        rule_name = spec.cloudtrail or spec.name
        mapping[rule_name] = spec.name if target == "elasticsearch" else _splunk_name(spec)
    return mapping, sorted(mapping)


def field_names(target: str) -> dict[str, str]:
    """Rule field name -> the target's field name."""
    return _fields(load_catalogue(), target)[0]


def _flattened_wildcards(open_objects: list[str]) -> list[dict[str, Any]]:
    # Elasticsearch's flattened fields match a wildcard at either end of a value but silently
    # match nothing for one in the middle (arn:aws:iam::*:role/X); everything before the first
    # such wildcard becomes a leading one (*:role/X), which the ARN's fixed prefix makes equivalent.
    return [
        {
            "id": "forwarder_elasticsearch_flattened_wildcards",
            "type": "replace_string",
            "regex": r"^[^*?]+[*?](?=[^*?])",
            "replacement": "*",
            "field_name_conditions": [
                {"type": "include_fields", "mode": "re", "fields": [rf"^{re.escape(name)}\..+" for name in open_objects]}
            ],
            "rule_conditions": [LOGSOURCE],
        }
    ]


def _open_objects(catalogue: Catalogue) -> list[str]:
    """The CloudTrail objects whose keys a rule may name freely (requestParameters.roleArn)."""
    return sorted(spec.cloudtrail for spec in catalogue.fields if spec.cloudtrail and spec.type == "flattened")


def open_object_keys(catalogue: Catalogue | None = None) -> list[str]:
    """Regular expressions of the keys inside the free-form objects (requestParameters.roleArn)."""
    return [rf"^{re.escape(name)}\..+" for name in _open_objects(catalogue or load_catalogue())]


def allowed_fields(target: str, catalogue: Catalogue | None = None) -> list[str]:
    """Regular expressions of the field names a rule may use for ``target``, as rules write them."""
    catalogue = catalogue or load_catalogue()
    known = _fields(catalogue, target)[1]
    return [f"^{re.escape(name)}$" for name in known] + open_object_keys(catalogue)


def pipeline_dict(target: str, catalogue: Catalogue | None = None) -> dict[str, Any]:
    catalogue = catalogue or load_catalogue()
    mapping = _fields(catalogue, target)[0]
    open_objects = _open_objects(catalogue)
    allowed = allowed_fields(target, catalogue)
    return {
        "name": f"forwarder CloudTrail AssumeRole fields for {target}",
        "priority": 20,
        # The unknown-field check comes first: it reads the names the rules use, before mapping.
        "transformations": [
            {
                "id": f"forwarder_{target}_unknown_field",
                "type": "detection_item_failure",
                "message": (
                    "this field is not in mappings/fields.yml (a CloudTrail key, a key inside a CloudTrail "
                    f"object such as requestParameters.roleArn, or an assumerole.* field): {target} has no such field"
                ),
                "field_name_conditions": [{"type": "exclude_fields", "mode": "re", "fields": allowed}],
                "rule_conditions": [LOGSOURCE],
            },
            *(_flattened_wildcards(open_objects) if target == "elasticsearch" else []),
            {
                "id": f"forwarder_{target}_field_names",
                "type": "field_name_mapping",
                "mapping": mapping,
                "rule_conditions": [LOGSOURCE],
            },
        ],
    }


def render(target: str, catalogue: Catalogue | None = None) -> str:
    header = (
        "# Generated from mappings/fields.yml by `python -m forwarder.rules.pipelines`: do not edit.\n"
        f"# The pySigma processing pipeline of the forwarder's rules for {target}.\n"
    )
    return header + yaml.safe_dump(pipeline_dict(target, catalogue), sort_keys=False, width=120)


def path_for(target: str, directory: Path = CHECKED_IN) -> Path:
    return directory / f"{target}.yml"


def load_pipeline(target: str, directory: Path = CHECKED_IN) -> ProcessingPipeline:
    """The checked-in pipeline of ``target`` (the drift test keeps it equal to the generated one)."""
    return ProcessingPipeline.from_yaml(path_for(target, directory).read_text())


def drift(directory: Path = CHECKED_IN) -> list[str]:
    """The pipeline files that differ from what the catalogue generates."""
    stale = []
    for target in TARGETS:
        path = path_for(target, directory)
        if not path.is_file() or path.read_text() != render(target):
            stale.append(str(path))
    return stale


def write(directory: Path = CHECKED_IN) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for target in TARGETS:
        path = path_for(target, directory)
        path.write_text(render(target))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    for path in write(Path(argv[0]) if argv else CHECKED_IN):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
