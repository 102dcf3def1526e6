"""The OpenSearch target of the rule kit, without a node: its pipeline is generated from the
catalogue, the flat_object rewrite takes exactly the tests query_string cannot match, and each
burst becomes a bucket-level monitor (run on the node by tests/rules/test_rules_on_opensearch.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from forwarder.cli import main
from forwarder.rules import opensearch
from forwarder.rules.convert import convert

RULE = """title: Probe
id: 9b7c2f43-0f0e-4c52-9b1e-6f2d3c7d9a10
status: test
logsource: {{product: aws, service: cloudtrail}}
detection:
  selection:
    {field}: {values}
  condition: selection
level: low
"""


def test_checked_in_pipeline_is_generated_from_the_catalogue() -> None:
    assert opensearch.drift() == [], "run: python -m forwarder.rules.opensearch"


def _query(tmp_path: Path, field: str, values: str) -> str:
    (tmp_path / "probe.yml").write_text(RULE.format(field=field, values=values))
    result = convert(tmp_path, "opensearch").results
    assert len(result) == 1
    return str(result[0].outputs[0])


@pytest.mark.parametrize(("field", "values", "query"), [
    ("requestParameters.roleArn", "arn:aws:iam::111122223333:role/X",
     r"requestParameters.roleArn:arn\:aws\:iam\:\:111122223333\:role\/X"),  # exact: as it is
    ("requestParameters.roleArn", "'arn:aws:iam::*'", r"requestParameters.roleArn:arn\:aws\:iam\:\:*"),  # trailing *
    ("requestParameters.roleArn", "'arn:aws:iam::*:role/X'",
     r"requestParameters._valueAndPath:requestParameters.roleArn\=arn\:aws\:iam\:\:*\:role\/X"),
    ("requestParameters.roleArn|endswith", "':role/X'", r"requestParameters._valueAndPath:requestParameters.roleArn\=*\:role\/X"),
    ("userIdentity.sessionContext.webIdFederationData.federatedProvider|contains", "google",
     r"userIdentity.sessionContext.webIdFederationData._valueAndPath:"
     r"userIdentity.sessionContext.webIdFederationData.federatedProvider\=*google*"),
    ("userIdentity.arn|endswith", "':user/bob'", r"userIdentity.arn:*\:user\/bob"),  # a keyword: untouched
    ("requestParameters.roleArn", "['arn:aws:iam::1:role/A', '*:role/B']",
     r"requestParameters.roleArn:arn\:aws\:iam\:\:1\:role\/A OR requestParameters._valueAndPath:requestParameters.roleArn\=*\:role\/B"),
])
def test_what_the_flat_object_rewrite_takes(tmp_path: Path, field: str, values: str, query: str) -> None:
    assert _query(tmp_path, field, values) == query


def test_a_field_outside_the_catalogue_fails_the_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "probe.yml").write_text(RULE.format(field="bogusField", values="x"))
    assert main(["sigma", "convert", "--target", "opensearch", str(tmp_path)]) == 1
    assert "opensearch has no such field" in capsys.readouterr().err


def test_the_bursts_become_bucket_level_monitors_on_the_given_index(tmp_path: Path) -> None:
    generated = tmp_path / "rules"
    assert main(["sigma", "generate", "--config", str(Path(opensearch.__file__).parents[1] / "samples" / "demo-config.yaml"),
                 "--out", str(generated)]) == 0
    monitors = [r.outputs[0] for r in convert(generated / "raw", "opensearch", index=("ct-*",)).results
                if isinstance(r.outputs[0], dict)]
    assert {m["name"] for m in monitors} == {"SIGMA - Burst of Failed Role Assumptions by One Identity (CloudTrail Fields)",
                                             "SIGMA - Burst of Trust Policies Rejected as Malformed for One Identity (CloudTrail Fields)"}
    for monitor in monitors:
        assert monitor["monitor_type"] == "bucket_level_monitor" and monitor["inputs"][0]["search"]["indices"] == ["ct-*"]
        assert monitor["schedule"] == {"period": {"interval": 5, "unit": "MINUTES"}}  # half the 10-minute window
        trigger = monitor["triggers"][0]["bucket_level_trigger"]
        assert trigger["condition"]["script"]["source"] == "params.event_count >= 6"  # more than 5 (the default)
        assert trigger["severity"] == "3"  # medium
