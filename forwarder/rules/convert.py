"""Convert generated rules with pySigma's Splunk and Elasticsearch backends.

Correlation rules (the bursts) go to the backends that can express them (Splunk, ES|QL).
Lucene and EQL cannot count events per group, so for them a correlation becomes a Kibana
threshold detection rule over the base rule's Lucene query: each burst is covered on every target.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sigma.backends.elasticsearch import EqlBackend, ESQLBackend, LuceneBackend
from sigma.backends.splunk import SplunkBackend
from sigma.collection import SigmaCollection
from sigma.conditions import ConditionAND, ConditionFieldEqualsValueExpression, ConditionOR
from sigma.conversion.base import Backend
from sigma.conversion.state import ConversionState
from sigma.correlations import SigmaCorrelationConditionOperator, SigmaCorrelationRule, SigmaCorrelationType
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import SetStateTransformation
from sigma.rule import SigmaRule
from sigma.types import SigmaRegularExpression, SigmaRegularExpressionFlag, SigmaString, SpecialChars

from forwarder.config import Config, SplunkAlerts
from forwarder.rules.attack import use_local_attack_data
from forwarder.rules.generate import generate, write
from forwarder.rules.opensearch import OpenSearchLucene
from forwarder.rules.pipelines import field_names, load_pipeline
from forwarder.rules import DEFAULT_INDEX, TARGETS
from forwarder.strict_yaml import YamlError, read_all


def _literal_star(value: object) -> bool:
    return isinstance(value, SigmaString) and any(isinstance(part, str) and "*" in part for part in value.s)


def _as_regex(value: SigmaString) -> SigmaRegularExpression:
    """The same match as a case-insensitive regular expression (SPL's matching is case-insensitive)."""
    parts, head, tail = list(value.s), "^", "$"
    if parts[:1] == [SpecialChars.WILDCARD_MULTI]:
        parts, head = parts[1:], ""
    if parts[-1:] == [SpecialChars.WILDCARD_MULTI]:
        parts, tail = parts[:-1], ""
    wildcards = {SpecialChars.WILDCARD_MULTI: ".*", SpecialChars.WILDCARD_SINGLE: "."}
    body = "".join(re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", part) if isinstance(part, str) else wildcards[part]
                   for part in parts)
    return SigmaRegularExpression(head + body + tail, {SigmaRegularExpressionFlag.IGNORECASE})


class _Splunk(SplunkBackend):
    """Splunk SPL as pySigma-backend-splunk 2.1 writes it, but counting in a sliding window, and
    matching a literal ``*``.

    The backend's ``bin _time span=10m | stats`` counts in fixed buckets: eight failures from
    09:18 to 09:24 fall 3 + 5 into two buckets and never reach 6. ``streamstats time_window``
    counts, at each event, the group's events of the preceding window.

    SPL has no escape for ``*`` in a search term: the backend's ``\\*`` is a wildcard there, so
    '"Action":"*"' would match every action. A value with a literal ``*`` becomes the equivalent
    regular expression, which the backend runs as ``regex`` (or ``rex`` and ``eval`` under OR).
    """

    event_count_aggregation_expression = {
        "stats": "| sort 0 _time\n| streamstats time_window={timespan} count as event_count by{groupby}",
    }

    def decide_convert_condition_as_in_expression(self, cond: ConditionOR | ConditionAND, state: ConversionState) -> bool:
        return super().decide_convert_condition_as_in_expression(cond, state) and not any(
            isinstance(arg, ConditionFieldEqualsValueExpression) and _literal_star(arg.value) for arg in cond.args
        )

    def convert_condition_field_eq_val_str(self, cond: ConditionFieldEqualsValueExpression, state: ConversionState) -> Any:
        if not _literal_star(cond.value):
            return super().convert_condition_field_eq_val_str(cond, state)
        regex = ConditionFieldEqualsValueExpression(cond.field, _as_regex(cond.value))
        regex.parent = cond.parent  # the backend decides regex or rex by the OR above the condition
        return self.convert_condition_field_eq_val_re(regex, state)


class _Eql(EqlBackend):
    """EQL as pySigma-backend-elasticsearch 2.1 writes it, plus the field-exists test it lacks."""

    field_exists_expression = "{field} != null"
    field_not_exists_expression = "{field} == null"


BACKENDS: dict[str, tuple[type[Backend], str]] = {
    "opensearch": (OpenSearchLucene, "opensearch"),  # its bursts: bucket-level monitors (forwarder.rules.opensearch)
    "splunk": (_Splunk, "splunk"),
    "lucene": (LuceneBackend, "elasticsearch"),
    "esql": (ESQLBackend, "elasticsearch"),
    "eql": (_Eql, "elasticsearch"),
}
assert tuple(sorted(BACKENDS)) == TARGETS
CORRELATING = frozenset({"splunk", "esql", "opensearch"})
# How a line naming the rule is written in each target's query language, so that a rule's heading
# and query can be pasted together; a target missing here (Lucene has no comments) gets "# ...".
COMMENTS = {"splunk": "```{}```", "esql": "// {}", "eql": "// {}"}
# Formats whose every output object carries its rule's name and id (Kibana import files): printed
# as the backend finalises them. Every other format prints each query under its rule's heading.
NAMED_FORMATS = frozenset({"kibana_ndjson", "siem_rule", "siem_rule_ndjson"})
# Formats this kit writes itself from the plain queries: the Splunk alerts of `sigma deploy splunk`.
OWN_FORMATS = frozenset({("splunk", "savedsearches")})


class ConvertError(Exception):
    """A rule cannot be read or converted; the message names the rule file."""


@dataclass(frozen=True)
class Conversion:
    target: str
    output_format: str
    backend: Backend  # it holds the pipeline state the format's finalisation reads
    results: list[Converted]


@dataclass(frozen=True)
class Converted:
    rule: SigmaRule | SigmaCorrelationRule
    outputs: list[Any]  # what the backend made of it (a query string or a format's dict)
    threshold: bool = False  # a Kibana threshold rule standing in for a correlation


# Splunk's data_model format needs a CIM data-model pipeline; CloudTrail events are not mapped to one.
UNSUPPORTED_FORMATS = frozenset({("splunk", "data_model")})


def formats(target: str) -> list[str]:
    return [fmt for fmt in BACKENDS[target][0].formats if (target, fmt) not in UNSUPPORTED_FORMATS]


def load_rules(directory: Path) -> SigmaCollection:
    """Every rule under ``directory`` (recursively), each file parsed on its own for clear errors."""
    files = sorted(directory.rglob("*.yml"))
    if not files:
        raise ConvertError(f"{directory}: no Sigma rules (*.yml) here")
    collections = []
    for path in files:
        try:
            # The strict loader, where from_yaml would use safe_load: a key given twice is refused.
            documents = read_all(path)
        except YamlError as exc:
            raise ConvertError(f"{path}: {exc}") from None
        for number, document in enumerate(documents, 1):
            if not isinstance(document, dict | None):
                raise ConvertError(f"{path}: YAML document {number} is a {type(document).__name__}, not a Sigma rule "
                                   "(a mapping with title, logsource, detection, ...)")
        try:
            collections.append(SigmaCollection.from_dicts(documents, source=SigmaRuleLocation(path)))
        except SigmaError as exc:
            raise ConvertError(f"{path}: {exc}") from None
    collection = SigmaCollection.merge(collections)
    try:
        collection.resolve_rule_references()
    except SigmaError as exc:  # a correlation naming a rule that is in none of the files
        raise ConvertError(f"{directory}: {exc}") from None
    return collection


def _backend(target: str, index: Sequence[str]) -> Backend:
    backend_class, pipeline_name = BACKENDS[target]
    pipeline = load_pipeline(pipeline_name)
    if target == "esql":  # ES|QL reads its FROM clause from the processing state
        pipeline = pipeline + ProcessingPipeline([ProcessingItem(SetStateTransformation("index", ",".join(index)))])
    options: dict[str, Any] = {"index_names": list(index)} if target in ("lucene", "eql", "opensearch") else {}
    return backend_class(pipeline, **options)


def _where(rule: SigmaRule | SigmaCorrelationRule) -> str:
    return f"{rule.source.path if rule.source else rule.title} ({rule.name or rule.id})"


def level_of(rule: SigmaRule | SigmaCorrelationRule) -> str:
    """The rule's Sigma level; a correlation without one has its (first) base rule's."""
    level = rule.level
    if level is None and isinstance(rule, SigmaCorrelationRule) and rule.rules:
        level = rule.rules[0].rule.level  # type: ignore[union-attr]
    return level.name.lower() if level else "medium"


def heading(rule: SigmaRule | SigmaCorrelationRule) -> str:
    """What names a converted rule for the analyst: its name, title and level."""
    return f"{rule.name}: {rule.title} (level {level_of(rule)})"


@contextmanager
def generated_rules(config: Config) -> Iterator[Path]:
    """The configuration's rules (`forwarder sigma generate`), in a directory that lasts the block."""
    with tempfile.TemporaryDirectory(prefix="forwarder-sigma-") as workdir:
        write(generate(config), Path(workdir))
        yield Path(workdir)


def convert(directory: Path, target: str, output_format: str | None = None, index: Sequence[str] = DEFAULT_INDEX) -> Conversion:
    """Each output rule of ``directory`` converted for ``target`` (base rules of correlations are folded in)."""
    if target not in BACKENDS:
        raise ConvertError(f"unknown target {target!r}; choose one of {', '.join(BACKENDS)}")
    fmt = output_format or "default"
    if fmt not in formats(target):
        raise ConvertError(f"target {target} has no format {fmt!r}; it has {', '.join(formats(target))}")
    use_local_attack_data()
    collection = load_rules(directory)
    backend = _backend(target, index)
    backend_format = "default" if (target, fmt) in OWN_FORMATS else fmt
    results: list[Converted] = []
    thresholds: list[SigmaCorrelationRule] = []
    for rule in collection.rules:
        try:
            if isinstance(rule, SigmaCorrelationRule):
                if target in CORRELATING:
                    results.append(Converted(rule, backend.convert_correlation_rule(rule, backend_format)))
                else:
                    thresholds.append(rule)
                continue
            outputs = backend.convert_rule(rule, backend_format)
        except (SigmaError, NotImplementedError) as exc:
            raise ConvertError(f"{_where(rule)}: {exc}") from None
        if outputs:
            results.append(Converted(rule, [_scheduled(out) for out in outputs]))
    results.extend(Converted(rule, [threshold_rule(rule, index)], threshold=True) for rule in thresholds)
    return Conversion(target, fmt, backend, results)


# A Kibana rule selects on @timestamp (the event's time), and CloudTrail delivers minutes late: about
# five, up to fifteen, plus the forwarder's hold-back of a young session's calls (15 minutes by
# default). Each run looks back an hour; Kibana does not alert twice on one event in the overlap.
QUERY_RULE_LOOKBACK = "now-1h"


def _scheduled(output: Any) -> Any:
    """A Kibana query rule from the backend (detection-engine import shape, or the alerting API's with
    ``params``), with the look-back late delivery needs and this project's license."""
    if not isinstance(output, dict):
        return output
    if output.get("rule_id") and output.get("type") in ("query", "eql", "esql"):
        return {**output, "from": QUERY_RULE_LOOKBACK, "license": "Apache-2.0"}
    params = output.get("params")
    if isinstance(params, dict) and params.get("ruleId"):
        return {**output, "params": {**params, "from": QUERY_RULE_LOOKBACK, "license": "Apache-2.0"}}
    return output


def threshold_rule(correlation: SigmaCorrelationRule, index: Sequence[str] = DEFAULT_INDEX) -> dict[str, Any]:
    """A Kibana threshold detection rule (import NDJSON shape) for an event_count correlation.

    Kibana counts over each run's look-back: the rule looks back ``timespan`` and runs every half
    ``timespan``, so a burst within half the window always falls whole into one run (one run per
    full window would split a burst across two runs, each under the threshold).
    """
    if correlation.type != SigmaCorrelationType.EVENT_COUNT or len(correlation.rules) != 1:
        raise ConvertError(f"{_where(correlation)}: only an event_count correlation over one rule becomes a threshold rule")
    condition = correlation.condition
    if condition.op not in (SigmaCorrelationConditionOperator.GTE, SigmaCorrelationConditionOperator.GT):
        raise ConvertError(f"{_where(correlation)}: a threshold rule needs a gte or gt condition")
    base = correlation.rules[0].rule
    assert isinstance(base, SigmaRule)
    backend = _backend("lucene", index)
    try:
        query = backend.convert_rule(_fresh(base), "default")[0]
    except SigmaError as exc:
        raise ConvertError(f"{_where(base)}: {exc}") from None
    names = field_names("elasticsearch")
    seconds = correlation.timespan.seconds
    level = (correlation.level or base.level).name  # type: ignore[union-attr]
    rule = backend.finalize_query_siem_rule_ndjson(correlation, query, 0, None)  # type: ignore[arg-type]
    rule.update(
        type="threshold",
        threshold={
            "field": [names.get(name, name) for name in correlation.group_by or []],
            "value": condition.count + (1 if condition.op == SigmaCorrelationConditionOperator.GT else 0),
            "cardinality": [],
        },
        interval=f"{max(60, seconds // 2)}s",
        **{"from": f"now-{seconds}s"},
        severity=level.lower(),
        risk_score=backend.severity_risk_mapping[level],
        license="Apache-2.0",
    )
    return rule


def _fresh(rule: SigmaRule) -> SigmaRule:
    # The backend's pipeline rewrites a rule in place; the base rule is converted again here.
    return SigmaRule.from_dict(rule.to_dict())


def render(conversion: Conversion, alerts: SplunkAlerts | None = None) -> str:
    """The text the command prints. Kibana import formats: the backend's own output, threshold rules
    as NDJSON lines. Splunk savedsearches: the alerts `sigma deploy splunk` creates. Every other
    format: each rule's heading (a comment where the language has them), then its query (Splunk's
    after ``alerts.search_prefix``), a blank line between rules."""
    alerts = alerts or SplunkAlerts()
    results, fmt = conversion.results, conversion.output_format
    if (conversion.target, fmt) in OWN_FORMATS:
        from forwarder.rules import splunk_alerts  # it builds on this module

        return splunk_alerts.conf_text(splunk_alerts.alert(result, alerts) for result in results)
    if fmt in NAMED_FORMATS:
        finalized = conversion.backend.finalize([out for r in results if not r.threshold for out in r.outputs], fmt)
        lines = _lines(finalized)
        lines += [_json(out) for r in results if r.threshold for out in r.outputs]
        return "\n".join(lines) + "\n"
    return "\n".join(_headed(conversion.target, result, alerts.search_prefix) for result in results)


def _headed(target: str, result: Converted, search_prefix: str) -> str:
    title = heading(result.rule)
    if result.threshold:
        title += ": a Kibana threshold rule (detection-engine import NDJSON)"
    lines = []
    for output in result.outputs:
        if isinstance(output, str):
            lines.append(COMMENTS.get(target, "# {}").format(title))
            query = prefixed(search_prefix, output) if target == "splunk" else output
            lines += [line for line in query.splitlines() if line.strip()]  # a blank line separates rules
        else:  # a JSON body: JSON has no comments
            lines += [f"# {title}", _json(output)]
    return "\n".join(lines) + "\n"


def prefixed(search_prefix: str, query: str) -> str:
    """A Splunk query as it runs: where the events are, then the rule's conditions."""
    return f"{search_prefix} {query.rstrip()}".strip()


def _json(output: Any) -> str:
    return orjson.dumps(output, option=orjson.OPT_SORT_KEYS).decode()


def _lines(output: Any) -> list[str]:
    if isinstance(output, str):
        return [output.rstrip("\n")]
    if isinstance(output, dict):
        return [_json(output)]
    if isinstance(output, list):
        return [line for item in output for line in _lines(item)]
    return [str(output)]
