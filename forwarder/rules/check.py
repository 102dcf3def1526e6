"""Validate Sigma rules with pySigma's own validators (offline)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sigma.validation import SigmaValidator
from sigma.validators.core import validators

from forwarder.rules.attack import use_local_attack_data
from forwarder.rules.convert import load_rules

# d3_fendtag: D3FEND tags would be checked against data pySigma downloads; the rules use none.
# number_as_string: AWS account ids are 12-digit strings (keyword fields, leading zeros allowed),
# quoted on purpose.
SKIPPED = frozenset({"d3_fendtag", "number_as_string"})


@dataclass(frozen=True)
class Finding:
    where: str
    severity: str
    description: str
    detail: str


def check(directory: Path) -> list[Finding]:
    """Every validator finding for the rules under ``directory`` (empty: all rules pass).

    A file that does not parse raises ConvertError naming it.
    """
    use_local_attack_data()
    collection = load_rules(directory)
    validator = SigmaValidator([cls for name, cls in validators.items() if name not in SKIPPED])
    findings = []
    for issue in validator.validate_rules(collection):
        where = ", ".join(str(rule.source.path) if rule.source else str(rule.id) for rule in issue.rules)
        extra = {k: v for k, v in vars(issue).items() if k not in ("rules",)}
        findings.append(Finding(where, issue.severity.name.lower(), issue.description, str(extra) if extra else ""))
    return findings
