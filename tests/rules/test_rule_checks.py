"""`forwarder sigma check` beyond pySigma's validators: catalogued fields, defined detections,
and a file that is not a rule is one clear line, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from forwarder.cli import main
from forwarder.rules.check import check

HEAD = """title: A Rule Written For These Tests
id: {id}
status: test
description: Written into a temporary directory by tests/rules/test_rule_checks.py.
author: CloudTrail AssumeRole forwarder
date: 2026-11-25
logsource:
  product: aws
  service: cloudtrail
level: low
"""
ID = "9b1b4a52-3c55-4f41-a2a5-4a2d1c0e7f10"


def rule(tmp_path: Path, detection: str, name: str = "cloudtrail_rule_under_test.yml", extra: str = "") -> Path:
    path = tmp_path / "rules" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(HEAD.format(id=ID) + "detection:\n" + detection + extra)
    return path


def descriptions(directory: Path) -> list[str]:
    return [f"{finding.where}: {finding.description}" for finding in check(directory)]


def test_catalogued_names_of_every_kind_pass(tmp_path: Path) -> None:
    rule(tmp_path, """  selection:
    eventSource: sts.amazonaws.com
    userIdentity.sessionContext.sessionIssuer.arn|endswith: ':role/Admin'
    requestParameters.roleSessionName|startswith: 'ci-'
    resources.ARN|contains: ':role/'
    assumerole.role.sensitive: true
  condition: selection
""")
    assert check(tmp_path / "rules") == []


@pytest.mark.parametrize(("field", "targets"), [("bogusField", "for elasticsearch or splunk"),
                                                ("userIdentity.nosuchkey", "for elasticsearch or splunk"),
                                                ("assumerole.no_such_flag", "for elasticsearch or splunk"),
                                                ("event.action", "for splunk")])
def test_a_field_outside_the_catalogue_fails_naming_file_and_field(tmp_path: Path, field: str, targets: str) -> None:
    path = rule(tmp_path, f"  selection:\n    eventName: AssumeRole\n    {field}: x\n  condition: selection\n")
    found = descriptions(tmp_path / "rules")
    assert len(found) == 1
    assert found[0].startswith(f"{path}: field {field!r} is not in the field catalogue") and targets in found[0]


def test_a_correlation_grouping_by_an_unknown_field_fails(tmp_path: Path) -> None:
    rule(tmp_path, "  failure:\n    errorCode|exists: true\n  condition: failure\n",
         extra="""name: cloudtrail_rule_under_test
---
title: A Correlation Written For These Tests
id: 1c7e2f0a-64b5-4e0b-9d4e-0e4f7b1d2c3a
name: cloudtrail_rule_under_test_burst
status: test
description: Written by tests/rules/test_rule_checks.py.
author: CloudTrail AssumeRole forwarder
date: 2026-11-25
correlation:
  type: event_count
  rules: [cloudtrail_rule_under_test]
  group-by: [callerArn]
  timespan: 10m
  condition: {gte: 6}
level: low
""")
    found = descriptions(tmp_path / "rules")
    assert [line for line in found if "'callerArn' is not in the field catalogue" in line], found


def test_a_condition_naming_an_undefined_detection_fails_naming_it(tmp_path: Path) -> None:
    path = rule(tmp_path, "  selection:\n    eventName: AssumeRole\n  condition: selection and not approved\n")
    found = descriptions(tmp_path / "rules")
    assert len(found) == 1
    assert found[0].startswith(f"{path}: condition 'selection and not approved'") and "'approved'" in found[0]


def test_a_number_compared_with_a_key_inside_a_cloudtrail_object_fails(tmp_path: Path) -> None:
    # Elasticsearch indexes requestParameters.* as keywords: durationSeconds:>43200 matches nothing there.
    path = rule(tmp_path, """  selection:
    eventName: GetFederationToken
    requestParameters.durationSeconds|gt: 43200
  enriched:
    assumerole.session.duration_seconds|gt: 43200
  condition: selection or enriched
""")
    found = descriptions(tmp_path / "rules")
    assert found == [f"{path}: field 'requestParameters.durationSeconds' is compared as a number: Elasticsearch indexes "
                     "the keys inside CloudTrail objects as keywords, where a comparison matches nothing; compare an "
                     "assumerole.* number such as assumerole.session.duration_seconds"]


@pytest.mark.parametrize(("text", "expected"), [
    ("title: broken\n  detection: [\n", "not valid YAML at line 2, column"),
    (HEAD.format(id=ID) + "detection: {a: {eventName: x}, condition: a}\ndetection: {b: {eventName: y}, condition: b}\n",
     "key 'detection' is given twice, at line 11 and line 12"),
    ("- just\n- a list\n", "YAML document 1 is a list, not a Sigma rule"),
    ("\xff\xfe not text", "not UTF-8 text"),
])
@pytest.mark.parametrize("command", [["check"], ["convert", "--target", "splunk"]])
def test_a_file_that_is_no_rule_is_one_line_with_its_path(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          text: str, expected: str, command: list[str]) -> None:
    rule(tmp_path, "  selection:\n    eventName: AssumeRole\n  condition: selection\n")
    broken = tmp_path / "rules" / "cloudtrail_broken_rule_file.yml"
    broken.write_bytes(text.encode("latin-1") if text.startswith("\xff") else text.encode())
    assert main(["sigma", *command, str(tmp_path / "rules")]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(broken) in err and expected in err
