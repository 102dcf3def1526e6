"""Validate Sigma rules offline: pySigma's own validators, and what they let pass.

pySigma validates each rule on its own, so three mistakes go through that only a conversion (or
no alert ever) would show: a field the forwarder does not write, a condition that names a
detection the rule does not define, and a number compared with a key inside CloudTrail's
free-form objects (Elasticsearch indexes those keys as keywords, where ``>`` matches nothing).
"Known" fields are those of the field catalogue that every target's pipeline takes: CloudTrail's
own names (``userIdentity.arn``), keys inside CloudTrail's free-form objects
(``requestParameters.roleArn``), and ``assumerole.*``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaCompareExpression
from sigma.validation import SigmaValidator
from sigma.validators.core import validators

from forwarder.rules.attack import use_local_attack_data
from forwarder.rules.convert import load_rules
from forwarder.rules.pipelines import TARGETS, allowed_fields, open_object_keys

# d3_fendtag: D3FEND tags would be checked against data pySigma downloads; the rules use none.
# number_as_string: AWS account ids are 12-digit strings (keyword fields, leading zeros allowed),
# quoted on purpose.
# escaped_wildcard: IAM policies name every action or principal with a literal "*", which rules
# on policy documents must write as \*.
SKIPPED = frozenset({"d3_fendtag", "number_as_string", "escaped_wildcard"})


@dataclass(frozen=True)
class Finding:
    where: str
    severity: str
    description: str
    detail: str


def check(directory: Path) -> list[Finding]:
    """Every finding for the rules under ``directory`` (empty: all rules pass).

    A file that does not parse raises ConvertError naming it.
    """
    use_local_attack_data()
    collection = load_rules(directory)
    validator = SigmaValidator([cls for name, cls in validators.items() if name not in SKIPPED])
    findings = []
    for issue in validator.validate_rules(collection):
        where = ", ".join(_where(rule) for rule in issue.rules)
        extra = {k: v for k, v in vars(issue).items() if k not in ("rules",)}
        findings.append(Finding(where, issue.severity.name.lower(), issue.description, str(extra) if extra else ""))
    allowed = {target: re.compile("|".join(allowed_fields(target))) for target in TARGETS}
    open_keys = re.compile("|".join(open_object_keys()))
    for rule in collection.rules:
        findings += _conditions(rule)
        findings += _compared_open_keys(rule, open_keys)
        for field in dict.fromkeys(_fields(rule)):
            missing = [target for target, pattern in allowed.items() if not pattern.match(field)]
            if missing:
                findings.append(Finding(_where(rule), "error", f"field {field!r} is not in the field catalogue "
                                        f"(mappings/fields.yml) for {' or '.join(missing)}: name a CloudTrail "
                                        "field, a key inside a CloudTrail object such as requestParameters.roleArn, "
                                        "or an assumerole.* field", ""))
    return findings


def _where(rule: SigmaRule | SigmaCorrelationRule) -> str:
    return str(rule.source.path) if rule.source else str(rule.id)


def _conditions(rule: SigmaRule | SigmaCorrelationRule) -> Iterator[Finding]:
    if not isinstance(rule, SigmaRule):
        return
    for condition in rule.detection.parsed_condition:
        try:
            condition.parsed  # noqa: B018 - parsing is what finds a detection the rule does not define
        except SigmaError as exc:  # args[0]: the message without the " in <file>" that str() adds
            yield Finding(_where(rule), "error", f"condition {condition.condition!r}: {exc.args[0]}: "
                          "define the detection it names, or correct the condition", "")


def _compared_open_keys(rule: SigmaRule | SigmaCorrelationRule, open_keys: re.Pattern[str]) -> Iterator[Finding]:
    if not isinstance(rule, SigmaRule):
        return
    for detection in rule.detection.detections.values():
        for item in _detection_items(detection):
            if item.field and open_keys.match(item.field) and any(isinstance(v, SigmaCompareExpression) for v in item.value):
                yield Finding(_where(rule), "error", f"field {item.field!r} is compared as a number: Elasticsearch "
                              "indexes the keys inside CloudTrail objects as keywords, where a comparison matches "
                              "nothing; compare an assumerole.* number such as assumerole.session.duration_seconds", "")


def _fields(rule: SigmaRule | SigmaCorrelationRule) -> Iterator[str]:
    """The field names the rule matches on or groups by, as written."""
    if isinstance(rule, SigmaCorrelationRule):
        aliases = rule.aliases.aliases
        yield from (name for name in rule.group_by or [] if name not in aliases)
        for alias in aliases.values():
            yield from alias.mapping.values()
        fieldref = getattr(rule.condition, "fieldref", None)
        yield from [fieldref] if isinstance(fieldref, str) else fieldref or []
        return
    for detection in rule.detection.detections.values():
        # None: a keyword search, no field
        yield from (item.field for item in _detection_items(detection) if item.field is not None)


def _detection_items(detection: SigmaDetection) -> Iterator[SigmaDetectionItem]:
    for item in detection.detection_items:
        if isinstance(item, SigmaDetectionItem):
            yield item
        else:
            yield from _detection_items(item)
