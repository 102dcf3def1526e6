"""Sigma for OpenSearch: pySigma-backend-opensearch's Lucene, a pipeline generated from the
catalogue, the rewrite ``flat_object`` needs, and a bucket-level monitor for each burst.

OpenSearch's query_string matches a key inside a ``flat_object`` (``requestParameters.roleArn``)
for an exact value or a value with one trailing ``*``, and silently matches nothing for any other
wildcard (``*:role/aws-service-role/*``, ``arn:aws:iam::*:role/BreakGlass``, a ``?``) or a regular
expression: that query goes to a field that does not exist (shown on the test node, OpenSearch
2.19). The object's own ``_valueAndPath`` field holds every key as ``<path>=<value>``, so such a
test becomes ``requestParameters._valueAndPath:requestParameters.roleArn=*:role/aws-service-role/*``:
the same match, kept to its key (Elasticsearch's ``flattened`` matches a leading wildcard against
any key of the object).

Lucene cannot count per group; the correlations (the bursts) become OpenSearch Alerting
bucket-level monitors: the base rule's query over the last ``timespan``, a composite aggregation
on the group-by fields, and a trigger on each bucket's count.

    python -m forwarder.rules.opensearch     # rewrite mappings/sigma/opensearch.yml
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from sigma.backends.opensearch import OpensearchLuceneBackend
from sigma.correlations import SigmaCorrelationConditionOperator, SigmaCorrelationRule, SigmaCorrelationType
from sigma.exceptions import SigmaConversionError
from sigma.processing import transformations
from sigma.processing.transformations.base import DetectionItemTransformation
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaLevel, SigmaRule
from sigma.types import SigmaRegularExpression, SigmaString, SpecialChars

from forwarder.catalogue import Catalogue, load_catalogue
from forwarder.rules.pipelines import LOGSOURCE, allowed_fields, field_names, path_for

TARGET = "opensearch"
TRANSFORMATION = "forwarder_flat_object_keys"
# OpenSearch Alerting's severities: 1 the highest.
SEVERITY = {SigmaLevel.CRITICAL: "1", SigmaLevel.HIGH: "2", SigmaLevel.MEDIUM: "3", SigmaLevel.LOW: "4",
            SigmaLevel.INFORMATIONAL: "5"}


def _natively_matched(value: SigmaString) -> bool:
    """An exact value, or one ``*`` at the end only: what query_string matches on a flat_object key."""
    specials = [index for index, part in enumerate(value.s) if isinstance(part, SpecialChars)]
    return not specials or (specials == [len(value.s) - 1] and value.s[-1] == SpecialChars.WILDCARD_MULTI)


@dataclass
class FlatObjectKeys(DetectionItemTransformation):
    """A test on a key inside one of ``objects`` that query_string would not match there goes to
    the object's ``_valueAndPath``, its value prefixed with ``<key>=``."""

    objects: list[str] = field(default_factory=list)

    def _object(self, name: str | None) -> str | None:
        return next((obj for obj in self.objects if name and name.startswith(obj + ".")), None)

    def apply_detection_item(self, detection_item: SigmaDetectionItem) -> SigmaDetectionItem | SigmaDetection | None:
        owner = self._object(detection_item.field)
        if owner is None:
            return None
        native, moved = [], []
        for value in detection_item.value:
            if isinstance(value, SigmaString) and not _natively_matched(value):
                moved.append(SigmaString(f"{detection_item.field}=") + value)
            elif isinstance(value, SigmaRegularExpression):
                moved.append(SigmaRegularExpression(re.escape(f"{detection_item.field}=") + value.regexp, value.flags))
            else:
                native.append(value)
        if not moved:
            return None
        item = replace(detection_item, field=f"{owner}._valueAndPath", value=moved, auto_modifiers=False)
        if not native:
            return item
        # One field per detection item: the values that stay and those that move, linked as they were.
        kept = replace(detection_item, value=native, auto_modifiers=False)
        return SigmaDetection([kept, item], item_linking=detection_item.value_linking)


transformations.transformations[TRANSFORMATION] = FlatObjectKeys


def flat_objects(catalogue: Catalogue | None = None) -> list[str]:
    """The CloudTrail objects indexed as flat_object (the catalogue's flattened ones)."""
    return sorted(spec.name for spec in (catalogue or load_catalogue()).fields if spec.cloudtrail and spec.type == "flattened")


def pipeline_dict(catalogue: Catalogue | None = None) -> dict[str, Any]:
    catalogue = catalogue or load_catalogue()
    # The documents are the Elasticsearch sink's (es_document): the same field names.
    return {
        "name": f"forwarder CloudTrail AssumeRole fields for {TARGET}",
        "priority": 20,
        "transformations": [
            {
                "id": f"forwarder_{TARGET}_unknown_field",
                "type": "detection_item_failure",
                "message": ("this field is not in mappings/fields.yml (a CloudTrail key, a key inside a CloudTrail "
                            f"object such as requestParameters.roleArn, or an assumerole.* field): {TARGET} has no such field"),
                "field_name_conditions": [{"type": "exclude_fields", "mode": "re",
                                           "fields": allowed_fields("elasticsearch", catalogue)}],
                "rule_conditions": [LOGSOURCE],
            },
            {
                "id": f"forwarder_{TARGET}_flat_object_keys",
                "type": TRANSFORMATION,
                "objects": flat_objects(catalogue),
                "rule_conditions": [LOGSOURCE],
            },
            {
                "id": f"forwarder_{TARGET}_field_names",
                "type": "field_name_mapping",
                "mapping": field_names("elasticsearch"),
                "rule_conditions": [LOGSOURCE],
            },
        ],
    }


def render(catalogue: Catalogue | None = None) -> str:
    header = (
        "# Generated from mappings/fields.yml by `python -m forwarder.rules.opensearch`: do not edit.\n"
        f"# The pySigma processing pipeline of the forwarder's rules for {TARGET}; its type {TRANSFORMATION}\n"
        "# is forwarder.rules.opensearch.FlatObjectKeys (`forwarder sigma convert --target opensearch` loads it).\n"
    )
    return header + yaml.safe_dump(pipeline_dict(catalogue), sort_keys=False, width=120)


def drift(directory: Path | None = None) -> list[str]:
    path = path_for(TARGET, directory) if directory else path_for(TARGET)
    return [] if path.is_file() and path.read_text() == render() else [str(path)]


def write(directory: Path | None = None) -> Path:
    path = path_for(TARGET, directory) if directory else path_for(TARGET)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render())
    return path


class OpenSearchLucene(OpensearchLuceneBackend):
    """pySigma-backend-opensearch's Lucene; a correlation becomes a bucket-level monitor."""

    def convert_correlation_rule(self, rule: SigmaCorrelationRule, output_format: str | None = None,
                                 callback: Any = None) -> list[Any]:
        return [self.bucket_monitor(rule)]

    def bucket_monitor(self, correlation: SigmaCorrelationRule) -> dict[str, Any]:
        """An Alerting bucket-level monitor (the body of POST _plugins/_alerting/monitors) for an
        event_count correlation: every half ``timespan`` it counts the base rule's events of the last
        ``timespan`` per group-by value, and triggers for each group whose count meets the condition
        (a burst within half the window always falls whole into one run)."""
        where = f"{correlation.title} ({correlation.name or correlation.id})"
        if correlation.type != SigmaCorrelationType.EVENT_COUNT or len(correlation.rules) != 1:
            raise SigmaConversionError(f"{where}: only an event_count correlation over one rule becomes a monitor")
        condition = correlation.condition
        if condition.op not in (SigmaCorrelationConditionOperator.GTE, SigmaCorrelationConditionOperator.GT):
            raise SigmaConversionError(f"{where}: a monitor needs a gte or gt condition")
        base = correlation.rules[0].rule
        assert isinstance(base, SigmaRule)
        # The pipeline rewrites a rule in place: the base rule is converted afresh.
        query = self.convert_rule(SigmaRule.from_dict(base.to_dict()), "default")[0]
        names = field_names("elasticsearch")
        seconds = correlation.timespan.seconds
        minimum = condition.count + (1 if condition.op == SigmaCorrelationConditionOperator.GT else 0)
        level = correlation.level or base.level or SigmaLevel.MEDIUM
        return {
            "type": "monitor",
            "monitor_type": "bucket_level_monitor",
            "name": f"SIGMA - {correlation.title}",
            "enabled": True,
            "schedule": {"period": {"interval": max(1, seconds // 120), "unit": "MINUTES"}},
            "inputs": [{"search": {"indices": list(self.index_names), "query": {
                "size": 0,
                "query": {"bool": {"filter": [
                    {"range": {"@timestamp": {"gte": f"{{{{period_end}}}}||-{seconds}s", "lte": "{{period_end}}",
                                              "format": "epoch_millis"}}},
                    {"query_string": {"query": query, "analyze_wildcard": True}},
                ]}},
                "aggregations": {"groups": {"composite": {"sources": [
                    {name: {"terms": {"field": names.get(name, name)}}} for name in correlation.group_by or []]}}},
            }}}],
            "triggers": [{"bucket_level_trigger": {
                "name": correlation.title,
                "severity": SEVERITY[level],
                "condition": {
                    "buckets_path": {"event_count": "_count"},
                    "parent_bucket_path": "groups",
                    "script": {"source": f"params.event_count >= {minimum}", "lang": "painless"},
                },
                "actions": [],
            }}],
            "sigma_meta_data": {"rule_id": str(correlation.id), "base_rule_id": str(base.id)},
        }


def main(argv: list[str] | None = None) -> int:
    print(f"wrote {write(Path(argv[0]) if argv else None)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
