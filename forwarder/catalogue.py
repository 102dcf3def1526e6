"""The field catalogue (mappings/fields.yml): every field the forwarder writes, with its type.

The Elasticsearch templates, the Splunk docs and the pySigma pipelines are generated from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from forwarder.resources import project_dir

CATALOGUE_PATH = project_dir("mappings") / "fields.yml"
TYPES = frozenset({"keyword", "date", "boolean", "long", "ip", "flattened", "unindexed"})


class CatalogueError(Exception):
    """The catalogue file is missing or malformed; the message names the entry."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    group: str
    name: str  # as indexed in Elasticsearch
    type: str
    cloudtrail: str | None = None  # as AWS writes it in the record (CloudTrail fields only)
    array: bool = False
    format: str | None = None  # Elasticsearch date format, where not ISO 8601 only
    description: str | None = None
    project: bool = False  # added by this project, beyond the contract of SCHEMA.md


@dataclass(frozen=True, slots=True)
class Catalogue:
    version: int
    fields: tuple[FieldSpec, ...]

    def group(self, name: str) -> tuple[FieldSpec, ...]:
        return tuple(spec for spec in self.fields if spec.group == name)

    def cloudtrail_to_elasticsearch(self) -> dict[str, str]:
        """Raw CloudTrail field name -> Elasticsearch field name (for pySigma pipelines)."""
        return {spec.cloudtrail: spec.name for spec in self.fields if spec.cloudtrail}


def _spec(group: str, entry: object, where: str) -> FieldSpec:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise CatalogueError(f"{where}: each field needs a 'name'")
    unknown = set(entry) - {"name", "type", "cloudtrail", "array", "format", "description", "from", "project"}
    if unknown:
        raise CatalogueError(f"{where} ({entry['name']}): unknown keys {sorted(unknown)}")
    if entry.get("type") not in TYPES:
        raise CatalogueError(f"{where} ({entry['name']}): type must be one of {sorted(TYPES)}")
    return FieldSpec(
        group=group,
        name=entry["name"],
        type=entry["type"],
        cloudtrail=entry.get("cloudtrail"),
        array=bool(entry.get("array", False)),
        format=entry.get("format"),
        description=entry.get("description") or entry.get("from"),
        project=bool(entry.get("project", False)),
    )


def parse_catalogue(data: object, origin: str = "fields.yml") -> Catalogue:
    if not isinstance(data, dict) or not isinstance(data.get("groups"), dict):
        raise CatalogueError(f"{origin}: expected a mapping with 'version' and 'groups'")
    fields: list[FieldSpec] = []
    for group, body in data["groups"].items():
        entries = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise CatalogueError(f"{origin}: group {group!r} needs a 'fields' list")
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            spec = _spec(group, entry, f"{origin}: groups.{group}.fields[{index}]")
            if spec.name in seen:
                raise CatalogueError(f"{origin}: {spec.name} is listed twice in group {group!r}")
            seen.add(spec.name)
            fields.append(spec)
    return Catalogue(version=int(data.get("version", 1)), fields=tuple(fields))


@cache
def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    import yaml  # here: the commands that never read the catalogue do not load PyYAML

    try:
        text = path.read_text()
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read the field catalogue: {exc.strerror or exc}") from None
    return parse_catalogue(yaml.safe_load(text), str(path))
